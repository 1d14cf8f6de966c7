"""The durability rules of docs/architecture.md and docs/decisions.md ("Durable jobs"), on in-memory
ports with the real ETag and visibility semantics (tests/unit/fakes.py).

Several ImageService instances on one World are instances of one function app sharing its storage
account; the test plays the Functions host with `deliver_next`. Time is a fake clock: leases lapse
and delayed messages appear when a test advances it, never by waiting.

Trust boundaries: an `image-jobs` message names a job and nothing else. Whatever else a message
carries (a record, an ETag, built by hand here as anyone who may write to the queue could) is
ignored; the worker reads the stored record and leases it If-Match with the ETag it read. A
finished job's record says what was published (`published`), so a replayed message sends nothing
that was already sent; that bookkeeping is the one write a finished record takes, and it changes
the record's ETag, never its state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from imagegen.adapters.blob_store import BlobStore
from imagegen.core.intake import build_submission
from imagegen.core.service import GRACE_MARGIN_SECONDS, ImageService, Submission
from imagegen.core.views import render_job
from imagegen.domain.errors import (
    IdempotencyKeyReused,
    JobConflict,
    ProcessingFailed,
    StorageError,
    UpstreamError,
)
from imagegen.domain.jobs import Job, JobStatus, Output, StoredImage, VersionedJob
from imagegen.domain.messages import JobMessage, message_text
from imagegen.domain.requests import ImageRequest
from imagegen.domain.settings import QUEUE_IMAGE_JOBS, QUEUE_IMAGE_RESULTS
from tests.unit.fakes import (
    LEASE_SECONDS,
    START,
    QueuedMessage,
    World,
    deliver_next,
    fake_settings,
    settle,
    soon,
    virtual_sleep,
)

JOBS, RESULTS, POISON = QUEUE_IMAGE_JOBS, QUEUE_IMAGE_RESULTS, f"{QUEUE_IMAGE_JOBS}-poison"
PROMPT = "a red fox on a snowy hill"
CALLBACK_URL = "https://hooks.example.com/image-done"
FORGED_CALLBACK_URL = "https://attacker.example.net/collect"
FORGED_PROMPT = "a forged prompt"
MADE_UP_ETAG = '"0xF0F0F0"'


@pytest.fixture
def world() -> World:
    return World()


async def submission(
    service: ImageService,
    prompt: str = PROMPT,
    *,
    key: str | None = None,
    n: int = 1,
    callback_url: str | None = None,
) -> Submission:
    """What a caller's POST body becomes (the callback is set directly: its SSRF check resolves DNS)."""
    built = await build_submission(
        {"prompt": prompt, "n": n},
        rules=service.rules,
        settings=service.settings,
        idempotency_key=key,
    )
    return dataclasses.replace(built, callback_url=callback_url) if callback_url else built


async def user_sees(service: ImageService, job_id: str) -> dict[str, Any]:
    """The job JSON a GET answers (its URLs on the configured API base, as results and webhooks)."""
    return render_job(await service.view(await service.jobs.get(job_id)), service.settings.api_base)


def published(world: World) -> list[dict[str, Any]]:
    return world.queue.payloads(RESULTS)


def published_statuses(world: World) -> list[str]:
    return [result["status"] for result in published(world)]


def webhooks(world: World) -> list[tuple[str, str]]:
    """Every callback delivered: (url, webhook-id)."""
    return [(delivery.url, delivery.message_id) for delivery in world.notifier.deliveries]


def state(record: dict[str, Any]) -> dict[str, Any]:
    """A job record without its publishing bookkeeping: what "a finished job never changes" is about."""
    return {name: value for name, value in record.items() if name != "published"}


def only_job_id(world: World) -> str:
    [job_id] = world.job_ids()
    return job_id


def on(queue: str) -> Callable[[str], bool]:
    return lambda name: name == queue


def set_aside(world: World) -> QueuedMessage:
    """The host hands out the job's genuine message (hidden for 10 minutes) to a worker that stalls."""
    received = world.queue.receive(JOBS)
    assert received is not None
    return received


async def deliver_by_hand(world: World, service: ImageService, payload: dict[str, Any]) -> Job | None:
    """Put `payload`, JSON built by hand, on image-jobs and play the host: it is the message delivered."""
    assert world.queue.visible(JOBS) == [], "set the genuine message aside first"
    await world.queue.send(JOBS, payload)
    return await deliver_next(service, world.queue)


def carrying(job_id: str, record: dict[str, Any] | Any, etag: str | Any) -> dict[str, Any]:
    """A job message as the old design wrote it: the id, a record and an ETag."""
    return {"job_id": job_id, "record": record, "etag": etag}


# --- leases: two workers, one job ----------------------------------------------------------------


async def test_two_workers_racing_for_one_job_run_it_once_and_the_loser_requeues_it(world: World) -> None:
    api, first, second = world.instance("api"), world.instance("worker-1"), world.instance("worker-2")
    job = await api.submit_async(await submission(api))
    received = world.queue.receive(JOBS)
    assert received is not None and received.payload == {"job_id": job.id}  # the id, nothing else
    message = JobMessage.parse(received.text)
    assert message == JobMessage(job.id)
    world.queue.complete(received)  # two deliveries of the job race (e.g. a redelivery and a re-check)

    world.generator.hold()  # the winner's generation stays in flight until the loser is back
    one = asyncio.ensure_future(first.handle_job_message(message.job_id))
    two = asyncio.ensure_future(second.handle_job_message(message.job_id))
    seen_when_the_loser_returned: dict[str, Any] = {}

    async def release_once_the_loser_returns() -> None:
        await asyncio.wait([one, two], return_when=asyncio.FIRST_COMPLETED)
        seen_when_the_loser_returned.update(
            calls=world.generator.calls,
            record=world.record(job.id),
            requeued=world.queue.messages(JOBS),
        )
        world.generator.release()

    results = await soon(asyncio.gather(one, two, release_once_the_loser_returns()))

    # Exactly one generation; the loser neither ran nor waited for it, it queued the job again.
    assert world.generator.calls == 1
    assert seen_when_the_loser_returned["calls"] == 1
    assert seen_when_the_loser_returned["record"]["status"] == "running"
    [requeued] = seen_when_the_loser_returned["requeued"]
    assert requeued.payload == {"job_id": job.id}
    assert requeued.delay_seconds >= GRACE_MARGIN_SECONDS
    assert world.queue.receive(JOBS) is None  # not visible yet: it is a delayed re-check

    [winner] = [r for r in results[:2] if isinstance(r, Job) and r.status is JobStatus.SUCCEEDED]
    [loser] = [r for r in results[:2] if r is not winner]
    assert loser is None or loser.status is JobStatus.RUNNING  # it answered without waiting
    record = world.record(job.id)
    assert record["status"] == "succeeded"
    assert record["attempts"] == 1
    assert record["lease_owner"] == winner.lease_owner
    assert record["published"] == ["results"]
    assert published_statuses(world) == ["succeeded"]
    assert sum(world.blobs.uploads.values()) == 1

    # The re-queued check comes back later, finds the job done and published: it changes nothing,
    # runs nothing, sends nothing.
    etag = world.etag(job.id)
    world.clock.advance(requeued.delay_seconds)
    again = await deliver_next(second, world.queue)
    assert again is not None and again.status is JobStatus.SUCCEEDED
    assert world.generator.calls == 1
    assert world.etag(job.id) == etag
    assert published_statuses(world) == ["succeeded"]
    assert world.queue.messages(JOBS) == []


# --- trust boundaries: a message names a job, nothing else ---------------------------------------


async def test_every_image_jobs_message_the_app_sends_carries_the_job_id_only(world: World) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    queued = await api.submit_async(await submission(api, "a queued job"))  # respond-async
    world.generator.hold()
    waiting = asyncio.ensure_future(api.submit_and_wait(await submission(api), wait_seconds=60))
    await soon(world.generator.started.wait())  # inline, backed by a delayed message
    [running_id] = [job_id for job_id in world.job_ids() if job_id != queued.id]
    await worker.handle_job_message(running_id)  # a live lease: re-checked later
    world.generator.release()
    await soon(waiting)
    await api.drain()

    sent = [message.payload for message in world.queue.sent if message.queue == JOBS]
    assert sent == [{"job_id": queued.id}, {"job_id": running_id}, {"job_id": running_id}]


def _stored_record_other_etag(stored: VersionedJob, other: VersionedJob) -> dict[str, Any]:
    """The stored record exactly, with an ETag made up: a stale or forged version."""
    return carrying(stored.job.id, stored.job.to_record(), MADE_UP_ETAG)


def _other_request_made_up_etag(stored: VersionedJob, other: VersionedJob) -> dict[str, Any]:
    forged = dataclasses.replace(
        stored.job, request=ImageRequest(prompt=FORGED_PROMPT, n=3), callback_url=FORGED_CALLBACK_URL
    )
    return carrying(stored.job.id, forged.to_record(), MADE_UP_ETAG)


def _other_request_current_etag(stored: VersionedJob, other: VersionedJob) -> dict[str, Any]:
    """The attack the old design let through: the current ETag made the forged record lease itself."""
    forged = dataclasses.replace(
        stored.job, request=ImageRequest(prompt=FORGED_PROMPT, n=3), callback_url=FORGED_CALLBACK_URL
    )
    return carrying(stored.job.id, forged.to_record(), stored.etag)


def _other_request_wildcard_etag(stored: VersionedJob, other: VersionedJob) -> dict[str, Any]:
    forged = dataclasses.replace(
        stored.job, request=ImageRequest(prompt=FORGED_PROMPT, n=3), callback_url=FORGED_CALLBACK_URL
    )
    return carrying(stored.job.id, forged.to_record(), "*")


def _another_jobs_record_and_etag(stored: VersionedJob, other: VersionedJob) -> dict[str, Any]:
    return carrying(stored.job.id, other.job.to_record(), other.etag)  # real, but another job's


def _claims_running_under_a_live_lease(stored: VersionedJob, other: VersionedJob) -> dict[str, Any]:
    """If believed, the job would look taken and be put off (a denial of service)."""
    leased = stored.job.leased("attacker", START + timedelta(days=1), START)
    return carrying(stored.job.id, leased.to_record(), stored.etag)


def _claims_succeeded_current_etag(stored: VersionedJob, other: VersionedJob) -> dict[str, Any]:
    image = StoredImage(0, "elsewhere/0.png", "image/png", 8, 8, 100)
    finished = stored.job.leased("attacker", START, START).succeeded((image,), START)
    return carrying(stored.job.id, dataclasses.replace(finished, attempts=0).to_record(), stored.etag)


def _claims_canceled_current_etag(stored: VersionedJob, other: VersionedJob) -> dict[str, Any]:
    return carrying(stored.job.id, stored.job.canceled(START).to_record(), stored.etag)


def _record_that_does_not_read(stored: VersionedJob, other: VersionedJob) -> dict[str, Any]:
    return carrying(stored.job.id, {"id": stored.job.id, "status": "exploded"}, 42)


FORGERIES: dict[str, Callable[[VersionedJob, VersionedJob], dict[str, Any]]] = {
    "stored-record-made-up-etag": _stored_record_other_etag,
    "other-prompt-n-callback-made-up-etag": _other_request_made_up_etag,
    "other-prompt-n-callback-current-etag": _other_request_current_etag,
    "other-prompt-n-callback-wildcard-etag": _other_request_wildcard_etag,
    "another-jobs-record-and-etag": _another_jobs_record_and_etag,
    "claims-running-under-a-live-lease-current-etag": _claims_running_under_a_live_lease,
    "claims-succeeded-current-etag": _claims_succeeded_current_etag,
    "claims-canceled-current-etag": _claims_canceled_current_etag,
    "record-that-does-not-read": _record_that_does_not_read,
}


async def _two_queued_jobs(world: World) -> tuple[VersionedJob, VersionedJob]:
    api = world.instance("api")
    job = await api.submit_async(await submission(api, key="job", callback_url=CALLBACK_URL))
    other = await api.submit_async(await submission(api, "a quiet harbour at dawn", key="other"))
    return await api.jobs.read(job.id), await api.jobs.read(other.id)


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
async def test_job_message_parse_keeps_the_job_id_and_drops_whatever_else_it_carries(
    world: World, forge: Callable[[VersionedJob, VersionedJob], dict[str, Any]]
) -> None:
    stored, other = await _two_queued_jobs(world)
    text = message_text(forge(stored, other))

    assert JobMessage.parse(text) == JobMessage(stored.job.id)
    assert JobMessage.parse(text.encode()) == JobMessage(stored.job.id)
    assert [field.name for field in dataclasses.fields(JobMessage)] == ["job_id"]
    assert JobMessage(stored.job.id).to_json() == {"job_id": stored.job.id}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
async def test_a_message_carrying_a_forged_record_runs_only_what_the_stored_record_says(
    world: World, forge: Callable[[VersionedJob, VersionedJob], dict[str, Any]]
) -> None:
    worker = world.instance("worker")
    stored, other = await _two_queued_jobs(world)
    job_id, stored_record = stored.job.id, stored.job.to_record()
    genuine = set_aside(world)  # the job's own message is held up: the forged one arrives first
    world.queue.complete(set_aside(world))  # (the other job's message is not part of this story)
    assert genuine.payload == {"job_id": job_id}

    final = await deliver_by_hand(world, worker, forge(stored, other))

    assert final is not None and final.status is JobStatus.SUCCEEDED
    assert world.generator.requests == [stored.job.request]  # the stored prompt, n=1: nothing forged ran
    # No version of the record ever held what the message carried: queued, leased, done, published.
    versions = world.versions(job_id)
    assert [version["status"] for version in versions] == ["queued", "running", "succeeded", "succeeded"]
    for version in versions:
        assert version["id"] == job_id and version["request"] == stored_record["request"]
        assert version["callback_url"] == CALLBACK_URL
    assert versions[1]["lease_owner"] == "worker" and versions[1]["attempts"] == 1
    assert state(versions[3]) == versions[2] and versions[3]["published"] == ["results", "webhook"]
    record = world.record(job_id)
    assert len(record["images"]) == 1 and world.blobs.calls["upload"] == 1
    assert webhooks(world) == [(CALLBACK_URL, f"{job_id}.succeeded")]  # the forged URL got nothing
    assert [result["id"] for result in published(world)] == [job_id]
    assert world.versions(other.job.id) == [other.job.to_record()]  # the other job was not touched
    assert world.etag(other.job.id) == other.etag

    # The genuine message comes back after its visibility timeout: the job is done and published,
    # nothing more happens.
    etag = world.etag(job_id)
    world.clock.advance(600)
    again = await deliver_next(world.instance("worker-2"), world.queue)
    assert again is not None and again.status is JobStatus.SUCCEEDED
    assert world.etag(job_id) == etag and world.generator.calls == 1
    assert len(published(world)) == 1 and len(webhooks(world)) == 1
    assert world.queue.messages(JOBS) == []


def _stale_queued_record(queued: VersionedJob, canceled: VersionedJob) -> dict[str, Any]:
    """The record and ETag as they were when the job was queued: stale since the cancel."""
    return carrying(queued.job.id, queued.job.to_record(), queued.etag)


def _queued_other_prompt_made_up_etag(queued: VersionedJob, canceled: VersionedJob) -> dict[str, Any]:
    forged = dataclasses.replace(queued.job, request=ImageRequest(prompt="run me anyway"))
    return carrying(queued.job.id, forged.to_record(), canceled.etag + "x")


def _queued_other_prompt_current_etag(queued: VersionedJob, canceled: VersionedJob) -> dict[str, Any]:
    """Under the old design this leased the forged record over the cancel, and ran it."""
    forged = dataclasses.replace(
        queued.job, request=ImageRequest(prompt=FORGED_PROMPT, n=2), callback_url=FORGED_CALLBACK_URL
    )
    return carrying(queued.job.id, forged.to_record(), canceled.etag)


def _claims_already_published_current_etag(queued: VersionedJob, canceled: VersionedJob) -> dict[str, Any]:
    """If believed, nobody would ever hear that the job ended."""
    claimed = canceled.job.with_published(frozenset(Output))
    return carrying(queued.job.id, claimed.to_record(), canceled.etag)


OVER: dict[str, Callable[[VersionedJob, VersionedJob], dict[str, Any]]] = {
    "stale-queued-record-and-its-etag": _stale_queued_record,
    "queued-other-prompt-made-up-etag": _queued_other_prompt_made_up_etag,
    "queued-other-prompt-n-callback-current-etag": _queued_other_prompt_current_etag,
    "claims-already-published-current-etag": _claims_already_published_current_etag,
}


@pytest.mark.parametrize("forge", OVER.values(), ids=OVER.keys())
async def test_a_carried_record_never_runs_or_hides_a_job_the_stored_record_says_is_over(
    world: World, forge: Callable[[VersionedJob, VersionedJob], dict[str, Any]]
) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api, callback_url=CALLBACK_URL))
    queued = await api.jobs.read(job.id)
    genuine = set_aside(world)
    await api.cancel(job.id)
    canceled = await api.jobs.read(job.id)

    final = await deliver_by_hand(world, worker, forge(queued, canceled))

    assert final is not None and final.status is JobStatus.CANCELED
    assert world.generator.calls == 0 and world.blobs.calls["upload"] == 0
    versions = world.versions(job.id)
    assert [version["status"] for version in versions] == ["queued", "canceled", "canceled"]
    assert state(versions[2]) == canceled.job.to_record()  # only the publishing was recorded
    assert versions[2]["published"] == ["results", "webhook"]
    assert all(version["request"] == queued.job.request.to_record() for version in versions)
    # It was published once, as stored, to the stored callback: the forged one got nothing.
    assert published(world) == [await user_sees(api, job.id)]
    assert published_statuses(world) == ["canceled"]
    assert webhooks(world) == [(CALLBACK_URL, f"{job.id}.canceled")]

    # The genuine message comes back after its visibility timeout: nothing more happens.
    etag = world.etag(job.id)
    world.clock.advance(600)
    assert [message.id for message in world.queue.visible(JOBS)] == [genuine.id]
    again = await deliver_next(worker, world.queue)
    assert again is not None and again.status is JobStatus.CANCELED
    assert world.etag(job.id) == etag
    assert published_statuses(world) == ["canceled"] and len(webhooks(world)) == 1
    assert world.queue.messages(JOBS) == []


# --- replays: what was published is recorded ------------------------------------------------------


async def test_a_replayed_message_for_a_published_job_runs_nothing_and_sends_nothing(world: World) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api, callback_url=CALLBACK_URL))
    [message] = world.queue.messages(JOBS)
    final = await deliver_next(worker, world.queue)
    assert final is not None and final.status is JobStatus.SUCCEEDED
    seen = await user_sees(api, job.id)
    assert published(world) == [seen]
    assert webhooks(world) == [(CALLBACK_URL, f"{job.id}.succeeded")]
    assert world.record(job.id)["published"] == ["results", "webhook"]
    etag, versions = world.etag(job.id), len(world.versions(job.id))

    await world.queue.send(JOBS, message.payload)  # the same message, delivered once more
    again = await deliver_next(world.instance("worker-2"), world.queue)
    direct = await world.instance("worker-3").handle_job_message(job.id)  # {"job_id": <finished>}

    assert again is not None and again.status is JobStatus.SUCCEEDED
    assert direct is not None and direct.status is JobStatus.SUCCEEDED
    assert world.generator.calls == 1 and world.blobs.calls["upload"] == 1
    assert world.etag(job.id) == etag and len(world.versions(job.id)) == versions  # not even bookkeeping
    assert published(world) == [seen] and len(webhooks(world)) == 1
    assert await user_sees(api, job.id) == seen
    assert world.queue.messages(JOBS) == []


async def test_a_failed_publish_from_the_queue_keeps_the_message_and_the_retry_publishes_the_job(
    world: World,
) -> None:
    api, first, second = world.instance("api"), world.instance("worker-1"), world.instance("worker-2")
    job = await api.submit_async(await submission(api, n=2, callback_url=CALLBACK_URL))
    world.queue.fail_next("send", StorageError("Queue Storage is unavailable"), where=on(RESULTS))

    with pytest.raises(StorageError):  # the trigger raises: the host keeps the message and retries
        await deliver_next(first, world.queue)
    before = world.record(job.id)
    assert before["status"] == "succeeded" and "published" not in before
    assert published(world) == [] and webhooks(world) == []  # nothing went out, nothing is recorded
    assert len(world.queue.messages(JOBS)) == 1
    uploads = dict(world.blobs.uploads)

    await deliver_next(second, world.queue)

    # The missing outputs, once each, the job exactly as stored; only the bookkeeping was written.
    assert published(world) == [await user_sees(api, job.id)]
    assert webhooks(world) == [(CALLBACK_URL, f"{job.id}.succeeded")]
    after = world.record(job.id)
    assert state(after) == before and after["published"] == ["results", "webhook"]
    assert dict(world.blobs.uploads) == uploads
    assert world.generator.calls == 1
    assert world.queue.messages(JOBS) == []

    etag = world.etag(job.id)  # recorded: a further replay sends nothing and writes nothing
    await world.instance("worker-3").handle_job_message(job.id)
    assert world.etag(job.id) == etag and len(published(world)) == 1 and len(webhooks(world)) == 1


async def test_a_record_that_lacks_only_the_webhook_gets_only_the_webhook_on_replay(world: World) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api, callback_url=CALLBACK_URL))
    await deliver_next(worker, world.queue)
    document = world.record(job.id)
    name = f"{job.id}.json"
    await world.blobs.replace_json(  # the record says: the result message went out, the webhook did not
        world.settings.jobs_container, name, {**document, "published": ["results"]}, etag=world.etag(job.id)
    )
    seen = await user_sees(api, job.id)

    await world.instance("worker-2").handle_job_message(job.id)

    assert published(world) == [seen]  # not sent again
    assert webhooks(world) == [(CALLBACK_URL, f"{job.id}.succeeded")] * 2  # the missing one, same id
    assert world.record(job.id) == document  # both recorded again, the state as it was
    etag = world.etag(job.id)
    await world.instance("worker-3").handle_job_message(job.id)
    assert world.etag(job.id) == etag and len(published(world)) == 1 and len(webhooks(world)) == 2


async def test_a_webhook_that_raised_is_retried_with_the_message_and_the_result_goes_again(
    world: World,
) -> None:
    """Publishing is recorded once, after both outputs: a webhook that raises leaves both unrecorded,
    so the retry sends the result message again (at least once: receivers dedupe on the job id and
    the webhook-id), then records both."""
    api, first, second = world.instance("api"), world.instance("worker-1"), world.instance("worker-2")
    job = await api.submit_async(await submission(api, callback_url=CALLBACK_URL))
    world.notifier.fail_next(ConnectionResetError("the receiver hung up"))

    with pytest.raises(ConnectionResetError):
        await deliver_next(first, world.queue)
    assert len(published(world)) == 1 and webhooks(world) == []
    assert "published" not in world.record(job.id)

    await deliver_next(second, world.queue)

    seen = await user_sees(api, job.id)
    assert published(world) == [seen, seen]
    assert webhooks(world) == [(CALLBACK_URL, f"{job.id}.succeeded")]
    assert world.record(job.id)["published"] == ["results", "webhook"]
    assert world.generator.calls == 1 and world.queue.messages(JOBS) == []
    etag = world.etag(job.id)
    await world.instance("worker-3").handle_job_message(job.id)
    assert world.etag(job.id) == etag and len(published(world)) == 2 and len(webhooks(world)) == 1


async def test_an_instance_that_died_before_recording_its_publishing_leaves_it_to_the_retry(
    world: World,
) -> None:
    api, dead, worker = world.instance("api"), world.instance("dead"), world.instance("worker")
    job = await api.submit_async(await submission(api, callback_url=CALLBACK_URL))
    sending = world.queue.hold("send", where=on(RESULTS))
    running = asyncio.ensure_future(deliver_next(dead, world.queue))
    await soon(sending.reached.wait())  # the outcome is recorded; publishing has begun
    recording = world.blobs.hold("replace_json", where=lambda name: name == f"{job.id}.json")
    sending.release()
    await soon(recording.reached.wait())  # both outputs are out; the bookkeeping is about to be written
    await dead.close()  # the instance dies: the host neither completes nor abandons its message
    await settle(running.done)
    assert running.cancelled()
    finished = world.record(job.id)
    assert finished["status"] == "succeeded" and "published" not in finished
    assert len(published(world)) == 1 and len(webhooks(world)) == 1

    world.clock.advance(600)  # the message's visibility timeout ends
    again = await deliver_next(worker, world.queue)

    assert again is not None and again.status is JobStatus.SUCCEEDED
    seen = await user_sees(api, job.id)  # (its read links are fresh: 10 minutes went by)
    assert [(result["id"], result["status"]) for result in published(world)] == [(job.id, "succeeded")] * 2
    assert published(world)[-1] == seen  # at least once: the same job, the same webhook-id
    assert webhooks(world) == [(CALLBACK_URL, f"{job.id}.succeeded")] * 2
    record = world.record(job.id)
    assert state(record) == finished and record["published"] == ["results", "webhook"]
    assert world.generator.calls == 1 and world.queue.messages(JOBS) == []
    etag = world.etag(job.id)
    await world.instance("worker-2").handle_job_message(job.id)
    assert world.etag(job.id) == etag and len(published(world)) == 2 and len(webhooks(world)) == 2


async def test_a_failed_publish_of_an_inline_job_leaves_its_backing_message_to_publish_later(
    world: World,
) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    world.queue.fail_next("send", StorageError("Queue Storage is unavailable"), where=on(RESULTS))

    answer = await api.submit_and_wait(await submission(api), wait_seconds=60)
    await api.drain()  # the run returns without raising; its message stays

    assert answer.status is JobStatus.SUCCEEDED and published(world) == []
    assert "published" not in world.record(answer.id)
    assert world.queue.calls["delete"] == 0 and len(world.queue.messages(JOBS)) == 1
    world.clock.advance(LEASE_SECONDS + GRACE_MARGIN_SECONDS)
    await deliver_next(worker, world.queue)
    assert published(world) == [await user_sees(api, answer.id)]
    assert world.record(answer.id)["published"] == ["results"]
    assert world.generator.calls == 1
    assert world.queue.messages(JOBS) == []
    etag = world.etag(answer.id)
    await worker.handle_job_message(answer.id)
    assert world.etag(answer.id) == etag and len(published(world)) == 1


# --- cancel ----------------------------------------------------------------------------------------


async def test_cancel_while_running_on_this_instance_stops_the_call_and_the_job_ends_canceled(
    world: World,
) -> None:
    api = world.instance("api")
    world.generator.hold()
    waiting = asyncio.ensure_future(api.submit_and_wait(await submission(api), wait_seconds=60))
    await soon(world.generator.started.wait())
    job_id = only_job_id(world)

    canceled = await api.cancel(job_id)
    answer = await soon(waiting)
    await api.drain()

    assert canceled.status is JobStatus.CANCELED and answer.status is JobStatus.CANCELED
    assert world.generator.canceled == 1  # the paid call was stopped, not left to finish
    assert world.blobs.calls["upload"] == 0
    seen = await user_sees(api, job_id)
    assert seen["status"] == "canceled" and seen["error"]["code"] == "canceled" and seen["images"] == []
    assert published_statuses(world) == ["canceled"]
    assert world.record(job_id)["published"] == ["results"]
    assert world.queue.messages(JOBS) == []  # the backing message is gone: nobody resumes it


async def test_cancel_from_another_instance_is_never_overwritten_by_the_outcome(world: World) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api))
    world.generator.hold()
    running = asyncio.ensure_future(deliver_next(worker, world.queue))
    await soon(world.generator.started.wait())

    await api.cancel(job.id)  # reaches an instance that does not run the job
    world.generator.release()  # the generation ends after the cancel: its outcome must not win
    final = await soon(running)

    assert final is not None and final.status is JobStatus.CANCELED
    seen = await user_sees(api, job.id)
    assert seen["status"] == "canceled" and seen["images"] == [] and "usage" not in seen
    assert published_statuses(world) == ["canceled"]
    assert world.record(job.id)["published"] == ["results"]
    assert world.queue.messages(JOBS) == []


async def test_the_lease_renewer_sees_a_cancel_from_another_instance_and_stops_the_work(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The renewer must tick: the service's asyncio.sleep runs on the fake clock (virtual_sleep)."""
    virtual_sleep(monkeypatch, world.clock)
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api))
    world.generator.hold()  # never released: only the renewer can stop this generation
    running = asyncio.ensure_future(deliver_next(worker, world.queue))
    await soon(world.generator.started.wait())
    await settle(lambda: world.clock.sleepers == 1)  # the renewer waits for its first tick

    await api.cancel(job.id)
    world.clock.advance(LEASE_SECONDS / 3)
    final = await soon(running)

    assert final is not None and final.status is JobStatus.CANCELED
    assert world.generator.canceled == 1
    assert world.record(job.id)["status"] == "canceled"
    assert published_statuses(world) == ["canceled"]


async def test_cancel_while_publishing_is_409_and_the_job_stays_succeeded(world: World) -> None:
    api = world.instance("api")
    publishing = world.queue.hold("send", where=on(RESULTS))

    answer = await soon(api.submit_and_wait(await submission(api), wait_seconds=60))
    await soon(publishing.reached.wait())  # the outcome is recorded; the result message is on its way
    etag, finished = world.etag(answer.id), world.record(answer.id)
    with pytest.raises(JobConflict) as conflict:
        await api.cancel(answer.id)
    assert world.etag(answer.id) == etag  # the refused cancel wrote nothing
    publishing.release()
    await api.drain()

    assert answer.status is JobStatus.SUCCEEDED
    assert conflict.value.http_status == 409 and conflict.value.details == {"status": "succeeded"}
    # After the outcome, one write only: the publishing bookkeeping, the state as it was.
    [*_, outcome, bookkeeping] = world.versions(answer.id)
    assert outcome == finished and state(bookkeeping) == finished
    assert bookkeeping["published"] == ["results"] and bookkeeping == world.record(answer.id)
    assert published_statuses(world) == ["succeeded"]
    assert world.queue.messages(JOBS) == []


# --- a lost instance, a live lease -----------------------------------------------------------------


async def test_a_job_whose_instance_died_is_resumed_without_uploading_stored_images_again(
    world: World,
) -> None:
    dead, worker = world.instance("dead"), world.instance("worker")
    second_image = world.blobs.hold("upload", where=lambda name: name.endswith("/1.png"))
    waiting = asyncio.ensure_future(dead.submit_and_wait(await submission(dead, n=2), wait_seconds=60))
    await soon(second_image.reached.wait())  # image 0 is stored, image 1 is on its way: the instance dies
    job_id = only_job_id(world)
    await dead.close()
    await settle(waiting.done)
    with pytest.raises(StorageError):
        waiting.result()
    before = world.record(job_id)
    assert (before["status"], before["lease_owner"], before["attempts"]) == ("running", "dead", 1)
    image_0 = f"{START:%Y/%m/%d}/{job_id}/0.png"
    assert dict(world.blobs.uploads) == {image_0: 1}
    assert world.queue.receive(JOBS) is None  # the backing message waits past the lease

    world.clock.advance(LEASE_SECONDS + GRACE_MARGIN_SECONDS)  # the lease lapses; the message appears
    final = await deliver_next(worker, world.queue)

    assert final is not None and final.status is JobStatus.SUCCEEDED
    record = world.record(job_id)
    assert (record["lease_owner"], record["attempts"]) == ("worker", 2)
    assert world.generator.calls == 2  # repeated once, after the crash
    assert dict(world.blobs.uploads) == {image_0: 1, f"{START:%Y/%m/%d}/{job_id}/1.png": 1}
    seen = await user_sees(worker, job_id)
    assert seen["status"] == "succeeded" and [image["blob"] for image in seen["images"]] == [
        image_0,
        f"{START:%Y/%m/%d}/{job_id}/1.png",
    ]
    assert published_statuses(world) == ["succeeded"] and record["published"] == ["results"]
    assert world.queue.messages(JOBS) == []


@pytest.mark.parametrize("receiver", ["another-instance", "the-running-instance"])
async def test_a_job_under_a_live_lease_is_not_taken_and_is_checked_again_after_the_lease(
    world: World, receiver: str
) -> None:
    api = world.instance("api")
    other = world.instance("worker") if receiver == "another-instance" else api
    world.generator.hold()
    waiting = asyncio.ensure_future(api.submit_and_wait(await submission(api), wait_seconds=60))
    await soon(world.generator.started.wait())
    job_id = only_job_id(world)
    world.clock.advance(2.0)  # 3 s of the 5 s lease left
    etag = world.etag(job_id)

    seen = await other.handle_job_message(job_id)  # e.g. a redelivered message, early

    assert seen is not None and seen.status is JobStatus.RUNNING
    assert world.generator.calls == 1
    assert world.etag(job_id) == etag and world.record(job_id)["lease_owner"] == "api"
    requeued = world.queue.sent[-1]
    assert (requeued.queue, requeued.payload) == (JOBS, {"job_id": job_id})
    assert requeued.delay_seconds == pytest.approx(LEASE_SECONDS - 2.0 + GRACE_MARGIN_SECONDS)
    world.generator.release()
    assert (await soon(waiting)).status is JobStatus.SUCCEEDED
    await api.drain()
    assert world.record(job_id)["attempts"] == 1


async def test_a_renewed_lease_stays_live_past_its_first_length(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The renewer must tick: the service's asyncio.sleep runs on the fake clock (virtual_sleep)."""
    virtual_sleep(monkeypatch, world.clock)
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api))
    world.generator.hold()
    running = asyncio.ensure_future(deliver_next(api, world.queue))
    await soon(world.generator.started.wait())
    for renewals in range(1, 4):  # three renewals: one whole lease length
        await settle(lambda: world.clock.sleepers == 1)  # the renewer waits for its next tick
        world.clock.advance(LEASE_SECONDS / 3)
        await settle(lambda: world.record(job.id)["updated_at"] == _iso(world.clock.now()))
        renewed_until = _iso(world.clock.now() + timedelta(seconds=LEASE_SECONDS))
        assert world.record(job.id)["lease_until"] == renewed_until, renewals

    seen = await worker.handle_job_message(job.id)  # the first lease would have lapsed by now

    assert seen is not None and seen.status is JobStatus.RUNNING and world.generator.calls == 1
    world.generator.release()
    final = await soon(running)
    assert final is not None and final.status is JobStatus.SUCCEEDED and final.attempts == 1


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- idempotency ----------------------------------------------------------------------------------


async def test_parallel_duplicate_async_submissions_are_one_job_and_one_generation(world: World) -> None:
    one, two, worker = world.instance("api-1"), world.instance("api-2"), world.instance("worker")
    same = await submission(one, key="order-42")

    first, second = await asyncio.gather(one.submit_async(same), two.submit_async(same))

    assert first.id == second.id and world.job_ids() == [first.id]
    assert len(world.queue.messages(JOBS)) == 1
    await deliver_next(worker, world.queue)
    with pytest.raises(LookupError):
        await deliver_next(worker, world.queue)
    assert world.generator.calls == 1
    assert (await user_sees(worker, first.id))["status"] == "succeeded"


async def test_parallel_duplicate_waiting_submissions_get_the_one_job(world: World) -> None:
    api = world.instance("api")
    same = await submission(api, key="order-43")

    first, second = await asyncio.gather(
        api.submit_and_wait(same, wait_seconds=60), api.submit_and_wait(same, wait_seconds=60)
    )
    await api.drain()

    assert first.id == second.id and world.job_ids() == [first.id]
    assert first.status is second.status is JobStatus.SUCCEEDED
    assert world.generator.calls == 1
    assert published_statuses(world) == ["succeeded"]
    assert world.queue.messages(JOBS) == []  # both backing messages are gone


async def test_a_duplicate_waiting_on_another_instance_answers_the_one_job(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The duplicate polls the record (EXISTING_JOB_POLL_SECONDS): its sleep runs on the fake clock."""
    virtual_sleep(monkeypatch, world.clock)
    one, two = world.instance("api-1"), world.instance("api-2")
    same = await submission(one, key="order-44")
    world.generator.hold()
    first = asyncio.ensure_future(one.submit_and_wait(same, wait_seconds=60))
    second = asyncio.ensure_future(two.submit_and_wait(same, wait_seconds=60))
    await settle(lambda: world.clock.sleepers == 2)  # the renewer, and the duplicate polling the record

    world.generator.release()
    # Whichever instance recorded the job runs it; the other polls the record on the fake clock.
    both = asyncio.gather(first, second)
    for _ in range(50):
        for _ in range(50):
            await asyncio.sleep(0)
        if both.done():
            break
        world.clock.advance(0.2)
    answer, duplicate = await soon(both)
    await one.drain()
    await two.drain()

    assert answer.status is JobStatus.SUCCEEDED
    assert (duplicate.id, duplicate.status) == (answer.id, JobStatus.SUCCEEDED)
    assert world.generator.calls == 1
    assert world.queue.messages(JOBS) == []


@pytest.mark.parametrize("wait", [False, True], ids=["respond-async", "waiting"])
async def test_the_same_key_with_another_body_is_refused_and_changes_nothing(
    world: World, wait: bool
) -> None:
    api = world.instance("api")
    first = await api.submit_async(await submission(api, key="order-45"))
    etag = world.etag(first.id)
    other = await submission(api, "a blue whale", key="order-45")

    with pytest.raises(IdempotencyKeyReused) as refused:
        await (api.submit_and_wait(other, wait_seconds=60) if wait else api.submit_async(other))

    assert refused.value.http_status == 422
    assert first.id not in json.dumps(refused.value.to_json())  # it does not say whose job the key names
    assert world.etag(first.id) == etag
    assert world.queue.payloads(JOBS) == [world.queue.sent[0].payload]  # only the first job's message
    assert world.generator.calls == 0


# --- poison ---------------------------------------------------------------------------------------


async def test_a_poisoned_message_ends_its_open_job_failed_and_publishes_it() -> None:
    world = World(settings=fake_settings(WEBHOOK_SECRET="a-webhook-secret-of-32-bytes-ok!"))
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api, callback_url=CALLBACK_URL))
    world.blobs.fail_next("replace_json", StorageError("Blob Storage is unavailable"), times=5)
    for _ in range(5):  # every try fails; the host gives up after maxDequeueCount
        with pytest.raises(StorageError):
            await deliver_next(worker, world.queue)
    assert world.queue.messages(JOBS) == [] and len(world.queue.messages(POISON)) == 1

    final = await deliver_next(worker, world.queue, POISON)

    assert final is not None and final.status is JobStatus.FAILED
    assert world.generator.calls == 0
    seen = await user_sees(api, job.id)
    assert seen["status"] == "failed" and seen["error"]["code"] == ProcessingFailed.code
    assert published(world) == [seen]
    [delivery] = world.notifier.deliveries
    assert (delivery.url, delivery.message_id) == (CALLBACK_URL, f"{job.id}.failed")
    assert delivery.body["error"]["code"] == "processing_failed"
    assert world.record(job.id)["published"] == ["results", "webhook"]

    etag = world.etag(job.id)  # the poison message again, and a job message: nothing new
    await worker.handle_poisoned_job_message(job.id, 5)
    await worker.handle_job_message(job.id)
    assert world.etag(job.id) == etag
    assert published(world) == [seen] and world.notifier.deliveries == [delivery]


async def test_a_poisoned_message_leaves_a_finished_job_as_it_is(world: World) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api))
    await deliver_next(worker, world.queue)
    etag, seen = world.etag(job.id), await user_sees(api, job.id)

    final = await worker.handle_poisoned_job_message(job.id, 5)

    assert final is not None and final.status is JobStatus.SUCCEEDED
    assert world.etag(job.id) == etag  # nothing written, not even bookkeeping
    assert await user_sees(api, job.id) == seen
    assert published(world) == [seen]  # its publishing is recorded: not sent again


async def test_a_poisoned_message_publishes_a_finished_job_whose_publishing_is_not_recorded(
    world: World,
) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api, callback_url=CALLBACK_URL))
    await api.cancel(job.id)  # canceled before any worker saw it: not published yet
    canceled = world.record(job.id)

    final = await worker.handle_poisoned_job_message(job.id, 5)

    assert final is not None and final.status is JobStatus.CANCELED  # not turned into a failure
    record = world.record(job.id)
    assert state(record) == canceled and record["published"] == ["results", "webhook"]
    assert published(world) == [await user_sees(api, job.id)]
    assert webhooks(world) == [(CALLBACK_URL, f"{job.id}.canceled")]
    etag = world.etag(job.id)
    await worker.handle_poisoned_job_message(job.id, 5)
    assert world.etag(job.id) == etag and len(published(world)) == 1 and len(webhooks(world)) == 1


# --- a job always has its record and its message --------------------------------------------------


async def test_a_waiting_job_without_its_backing_message_ends_failed_instead_of_stuck(world: World) -> None:
    api = world.instance("api")
    world.queue.fail_next("send", StorageError("Queue Storage is unavailable"), where=on(JOBS))

    with pytest.raises(StorageError):
        await api.submit_and_wait(await submission(api), wait_seconds=60)

    seen = await user_sees(api, only_job_id(world))
    assert seen["status"] == "failed" and seen["error"]["code"] == "storage_error"
    assert world.generator.calls == 0


async def test_a_respond_async_job_whose_message_was_not_sent_ends_failed_instead_of_stuck(
    world: World,
) -> None:
    api = world.instance("api")
    world.queue.fail_next("send", StorageError("Queue Storage is unavailable"), where=on(JOBS))
    with pytest.raises(StorageError):
        await api.submit_async(await submission(api, key="order-46"))
    job_id = only_job_id(world)

    retried = await api.submit_async(await submission(api, key="order-46"))  # the caller tries again

    # Every job is backed by a message on image-jobs, or has ended: none waits "queued" for ever.
    assert retried.id == job_id
    assert retried.status.terminal or world.queue.messages(JOBS) != []
    seen = await user_sees(api, job_id)
    assert seen["status"] == "failed" and seen["error"]["code"] == "storage_error"
    assert world.generator.calls == 0


async def test_a_backing_message_whose_record_was_never_written_runs_nothing(world: World) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    world.blobs.fail_next(
        "create_json", StorageError("Blob Storage is unavailable"), where=lambda key: "pacing/" not in key
    )

    with pytest.raises(StorageError):
        await api.submit_and_wait(await submission(api), wait_seconds=60)
    world.clock.advance(LEASE_SECONDS + GRACE_MARGIN_SECONDS)

    assert await deliver_next(worker, world.queue) is None  # dropped: no job to run
    assert world.job_ids() == [] and world.generator.calls == 0
    assert world.queue.messages(JOBS) == []


# --- a finished job never changes -----------------------------------------------------------------

NOW = START + timedelta(minutes=1)
TRANSITIONS: dict[str, Callable[[Job], Job]] = {
    "leased": lambda job: job.leased("another-instance", NOW + timedelta(seconds=30), NOW),
    "renewed": lambda job: job.renewed(NOW + timedelta(seconds=30), NOW),
    "succeeded": lambda job: job.succeeded((StoredImage(0, "x/0.png", "image/png", 8, 8, 100),), NOW),
    "failed": lambda job: job.failed(UpstreamError("the model failed"), NOW),
    "canceled": lambda job: job.canceled(NOW),
}


def _finished(status: JobStatus) -> Job:
    running = Job.new(ImageRequest(prompt=PROMPT), now=START).leased(
        "api", START + timedelta(seconds=5), START
    )
    if status is JobStatus.SUCCEEDED:
        return running.succeeded((), START)
    if status is JobStatus.FAILED:
        return running.failed(UpstreamError("the model failed"), START)
    return running.canceled(START)


TERMINAL = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED]


@pytest.mark.parametrize("transition", TRANSITIONS.values(), ids=TRANSITIONS.keys())
@pytest.mark.parametrize("status", TERMINAL, ids=[status.value for status in TERMINAL])
def test_every_transition_of_a_finished_job_is_a_conflict(
    status: JobStatus, transition: Callable[[Job], Job]
) -> None:
    finished = _finished(status)
    assert finished.status is status

    with pytest.raises(JobConflict) as conflict:
        transition(finished)

    assert conflict.value.http_status == 409 and conflict.value.details == {"status": status.value}
    assert finished.failed_unless_finished(ProcessingFailed("poisoned"), NOW) is None


@pytest.mark.parametrize("status", TERMINAL, ids=[status.value for status in TERMINAL])
def test_publishing_bookkeeping_is_the_one_change_a_finished_job_takes(status: JobStatus) -> None:
    finished = _finished(status)

    results = finished.with_published(frozenset({Output.RESULTS}))
    both = results.with_published(frozenset({Output.WEBHOOK}))

    assert results.published == {Output.RESULTS} and both.published == {Output.RESULTS, Output.WEBHOOK}
    assert both.with_published(frozenset({Output.RESULTS})) == both  # recording again changes nothing
    assert state(both.to_record()) == finished.to_record()  # status, times, images, error: as they were
    assert both.to_record()["published"] == ["results", "webhook"]
    assert Job.from_record(both.to_record()) == both


@pytest.mark.parametrize("open_job", ["queued", "running"])
def test_an_open_job_is_never_recorded_as_published(open_job: str) -> None:
    queued = Job.new(ImageRequest(prompt=PROMPT), now=START)
    job = queued if open_job == "queued" else queued.leased("api", START + timedelta(seconds=5), START)

    with pytest.raises(JobConflict) as conflict:
        job.with_published(frozenset({Output.RESULTS}))

    assert conflict.value.details == {"status": open_job}


@pytest.mark.parametrize("status", TERMINAL, ids=[status.value for status in TERMINAL])
async def test_a_finished_job_stays_as_stored_whatever_reaches_it(world: World, status: JobStatus) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api, callback_url=CALLBACK_URL))
    [message] = world.queue.messages(JOBS)
    if status is JobStatus.CANCELED:
        await api.cancel(job.id)  # nobody has published it yet: the first message to reach it will
        world.queue.complete(message)
    else:
        if status is JobStatus.FAILED:
            world.generator.fail_with(UpstreamError("the model failed"))
        await deliver_next(worker, world.queue)
    finished, seen = state(world.record(job.id)), await user_sees(api, job.id)
    assert seen["status"] == status.value
    generations = world.generator.calls
    forged = dataclasses.replace(
        Job.from_record(world.record(job.id)),
        status=JobStatus.QUEUED,
        request=ImageRequest(prompt=FORGED_PROMPT, n=2),
        callback_url=FORGED_CALLBACK_URL,
        published=frozenset(),
        attempts=0,
        lease_owner=None,
        lease_until=None,
    )

    async def everything_reaches_it() -> None:
        with pytest.raises(JobConflict):
            await api.cancel(job.id)
        await world.queue.send(JOBS, message.payload)  # its old message, redelivered
        await deliver_next(worker, world.queue)
        # A forged message: the current ETag and a record saying "queued, another prompt, not published".
        await deliver_by_hand(world, worker, carrying(job.id, forged.to_record(), world.etag(job.id)))
        await world.instance("worker-2").handle_job_message(job.id)
        await worker.handle_poisoned_job_message(job.id, 5)

    await everything_reaches_it()

    # Its state is as stored; it was published once (the canceled one by the first message to reach
    # it, which recorded it: that bookkeeping is the one write it took).
    assert state(world.record(job.id)) == finished
    assert all(state(version) == finished for version in world.versions(job.id)[-2:])
    assert await user_sees(api, job.id) == seen
    assert world.record(job.id)["published"] == ["results", "webhook"]
    assert published(world) == [seen]
    assert webhooks(world) == [(CALLBACK_URL, f"{job.id}.{status.value}")]
    assert world.generator.calls == generations == (0 if status is JobStatus.CANCELED else 1)

    # Once its publishing is recorded, the same again does not even change its ETag.
    etag, versions = world.etag(job.id), len(world.versions(job.id))
    await everything_reaches_it()
    assert world.etag(job.id) == etag and len(world.versions(job.id)) == versions
    assert published(world) == [seen] and len(webhooks(world)) == 1
    assert world.generator.calls == generations
    assert world.queue.messages(JOBS) == []


# --- no wildcard ETag -----------------------------------------------------------------------------


@pytest.mark.parametrize("etag", ["*", " * ", ""], ids=["star", "star-with-spaces", "empty"])
@pytest.mark.parametrize("store", ["in-memory-fake", "blob-adapter"])
async def test_a_record_is_never_replaced_with_a_wildcard_etag(world: World, store: str, etag: str) -> None:
    api = world.instance("api")
    job = await api.submit_async(await submission(api))
    document, current = world.record(job.id), world.etag(job.id)
    adapter = BlobStore(world.settings.storage, credential=None)
    target = world.blobs if store == "in-memory-fake" else adapter

    with pytest.raises(ValueError, match="wildcard"):
        await target.replace_json(
            world.settings.jobs_container, f"{job.id}.json", {**document, "status": "canceled"}, etag=etag
        )

    await adapter.close()
    assert world.record(job.id) == document and world.etag(job.id) == current
    assert world.blobs.calls["replace_json"] == 0  # refused before any round trip


async def test_a_resumed_job_describes_the_image_it_kept_not_the_one_it_drew_again(world: World) -> None:
    """Resume keeps image 0 as stored (not uploaded again); the record must then say what that blob
    is (its size, width and height), not what the repeated generation drew."""
    from tests.unit.fakes import StoredFile, png_bytes

    dead, worker = world.instance("dead"), world.instance("worker")
    second_image = world.blobs.hold("upload", where=lambda name: name.endswith("/1.png"))
    waiting = asyncio.ensure_future(dead.submit_and_wait(await submission(dead, n=2), wait_seconds=60))
    await soon(second_image.reached.wait())
    job_id = only_job_id(world)
    await dead.close()
    await settle(waiting.done)
    image_0 = f"{START:%Y/%m/%d}/{job_id}/0.png"
    kept = png_bytes(48, 32, (10, 20, 30))  # what the first run stored: another size than a redraw
    stored = world.blobs.files["images", image_0]
    world.blobs.files["images", image_0] = StoredFile(
        kept, "image/png", {**stored.metadata, "width": "48", "height": "32"}
    )

    world.clock.advance(LEASE_SECONDS + GRACE_MARGIN_SECONDS)
    await deliver_next(worker, world.queue)

    first = (await user_sees(worker, job_id))["images"][0]
    assert (first["bytes"], first["width"], first["height"]) == (len(kept), 48, 32)
    assert world.blobs.uploads[image_0] == 1
