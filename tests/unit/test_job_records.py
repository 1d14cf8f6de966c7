"""A stored job record that does not read (written by something else) is a storage fault with a code,
never an exception the host turns into a bare 500."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from imagegen.core.repository import JobRepository
from imagegen.domain.errors import JobNotFound, StorageError
from imagegen.domain.jobs import Job, JobStatus
from imagegen.domain.ports import JobRecordStore, JsonBlob
from imagegen.domain.requests import ImageRequest

GOOD = Job.new(ImageRequest(prompt="a"), now=datetime.now(UTC), status=JobStatus.QUEUED).to_record()


class OneRecordStore:
    """The BlobStore port, holding one JSON document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.writes = 0
        self.names_read: list[str] = []

    async def read_json(self, container: str, name: str) -> JsonBlob:
        self.names_read.append(name)
        return JsonBlob(self.document, '"etag-1"')

    async def replace_json(self, container: str, name: str, document: Any, *, etag: str) -> str:
        self.writes += 1
        return '"etag-2"'


BROKEN_RECORDS = [
    {},
    {"id": 1},
    {**GOOD, "request": "a cat"},
    {**GOOD, "request": {}},
    {**GOOD, "images": "x"},
    {**GOOD, "images": [1]},
    {**GOOD, "status": "bogus"},
    {**GOOD, "created_at": "yesterday"},
    {**GOOD, "attempts": "x"},
]


@pytest.mark.parametrize("record", BROKEN_RECORDS)
async def test_a_record_that_does_not_read_is_a_storage_error(record: dict[str, Any]) -> None:
    store = OneRecordStore(record)
    jobs = JobRepository(cast(JobRecordStore, store), "jobs", clock=lambda: datetime.now(UTC))
    job_id = str(uuid.uuid4())
    with pytest.raises(StorageError) as caught:
        await jobs.get(job_id)
    assert caught.value.code == "storage_error"
    with pytest.raises(StorageError):
        await jobs.update(job_id, lambda current: current)
    assert store.writes == 0


async def test_a_good_record_reads() -> None:
    jobs = JobRepository(cast(JobRecordStore, OneRecordStore(GOOD)), "jobs", clock=lambda: datetime.now(UTC))
    assert (await jobs.get(GOOD["id"])).to_record() == GOOD


async def test_an_id_in_another_uuid_form_reads_the_same_record() -> None:
    store = OneRecordStore(GOOD)
    jobs = JobRepository(cast(JobRecordStore, store), "jobs", clock=lambda: datetime.now(UTC))
    for form in (GOOD["id"].upper(), "{" + GOOD["id"] + "}", GOOD["id"].replace("-", "")):
        assert (await jobs.get(form)).id == GOOD["id"]
    assert store.names_read == [f"{GOOD['id']}.json"] * 3


@pytest.mark.parametrize("job_id", ["not-a-job", "", "../x", GOOD["id"] + "0"])
async def test_an_id_that_is_not_a_uuid_is_not_found_without_a_storage_call(job_id: str) -> None:
    store = OneRecordStore(GOOD)
    jobs = JobRepository(cast(JobRecordStore, store), "jobs", clock=lambda: datetime.now(UTC))
    with pytest.raises(JobNotFound):
        await jobs.get(job_id)
    with pytest.raises(JobNotFound):
        await jobs.update(job_id, lambda current: current)
    assert store.names_read == []


def test_a_succeeded_job_keeps_its_model_usage_and_cost_through_storage() -> None:
    from decimal import Decimal

    from imagegen.domain.pricing import Cost, Usage

    now = datetime.now(UTC)
    job = Job.new(ImageRequest(prompt="a"), now=now, model="gpt-image-2")
    usage = Usage(text_tokens=3, image_tokens=0, output_tokens=4160)
    done = job.succeeded((), now, usage=usage, cost=Cost(Decimal("0.124815"), "USD", "2026-04-29"))
    again = Job.from_record(done.to_record())
    assert (again.model, again.usage, again.cost) == ("gpt-image-2", usage, done.cost)
    assert done.to_record()["cost"] == {"amount": 0.124815, "currency": "USD", "prices_as_of": "2026-04-29"}
