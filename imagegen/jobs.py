"""The job record (blob `jobs/{id}.json`): what was asked, where it stands, where the images are.

Records are written with ETags: `JobRepository.update` re-reads and retries on a lost race, so two
writers never silently overwrite each other, and a terminal job is never changed again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from imagegen.blob_store import BlobChanged, BlobNotFound, BlobStore, SignedLink
from imagegen.errors import ImageGenError, JobNotFound, StorageError
from imagegen.models import ImageRequest
from imagegen.pricing import Cost, Usage

MAX_UPDATE_ATTEMPTS = 8


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


@dataclass(frozen=True)
class StoredImage:
    index: int
    blob: str
    content_type: str
    width: int
    height: int
    bytes: int
    revised_prompt: str | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "index": self.index,
            "blob": self.blob,
            "content_type": self.content_type,
            "width": self.width,
            "height": self.height,
            "bytes": self.bytes,
        }
        if self.revised_prompt is not None:
            record["revised_prompt"] = self.revised_prompt
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> StoredImage:
        return cls(**record)


@dataclass(frozen=True)
class Job:
    id: str
    status: JobStatus
    request: ImageRequest
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    images: tuple[StoredImage, ...] = ()
    error: dict[str, Any] | None = None
    model: str | None = None  # the model that draws (drew) it, as the catalog names it
    usage: Usage | None = None  # Azure's token counts (gpt-image models)
    cost: Cost | None = None  # from the price table, when the job succeeded
    # Durability: who works on the job until when (ETag-written), and how many runs started.
    lease_owner: str | None = None
    lease_until: datetime | None = None
    attempts: int = 0
    # Idempotency: hashes only (never the key or body themselves).
    idempotency_key_hash: str | None = None
    body_hash: str | None = None
    callback_url: str | None = field(default=None, repr=False)
    api_base: str | None = None  # e.g. https://app.azurewebsites.net/api, for links in results

    @classmethod
    def new(
        cls,
        request: ImageRequest,
        *,
        now: datetime,
        job_id: str | None = None,
        status: JobStatus = JobStatus.QUEUED,
        callback_url: str | None = None,
        idempotency_key_hash: str | None = None,
        body_hash: str | None = None,
        api_base: str | None = None,
        model: str | None = None,
    ) -> Job:
        return cls(
            id=job_id or str(uuid.uuid4()),
            status=status,
            request=request,
            created_at=now,
            updated_at=now,
            callback_url=callback_url,
            idempotency_key_hash=idempotency_key_hash,
            body_hash=body_hash,
            api_base=api_base,
            model=model,
        )

    def lease_is_live(self, now: datetime) -> bool:
        return self.lease_until is not None and self.lease_until > now

    def leased(self, owner: str, until: datetime, now: datetime) -> Job:
        """A new run by `owner`, leased until `until` (renewals change `lease_until` only)."""
        return replace(
            self,
            status=JobStatus.RUNNING,
            lease_owner=owner,
            lease_until=until,
            attempts=self.attempts + 1,
            updated_at=now,
        )

    def canceled(self, now: datetime) -> Job:
        return replace(
            self,
            status=JobStatus.CANCELED,
            error={"code": "canceled", "message": "the job was canceled"},
            updated_at=now,
            completed_at=now,
            lease_until=None,
        )

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "status": self.status.value,
            "request": self.request.to_record(),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "images": [image.to_record() for image in self.images],
        }
        if self.completed_at is not None:
            record["completed_at"] = _iso(self.completed_at)
        if self.error is not None:
            record["error"] = self.error
        optional = {
            "model": self.model,
            "usage": self.usage.to_json() if self.usage else None,
            "cost": self.cost.to_json() if self.cost else None,
            "lease_owner": self.lease_owner,
            "lease_until": _iso(self.lease_until) if self.lease_until else None,
            "idempotency_key_hash": self.idempotency_key_hash,
            "body_hash": self.body_hash,
            "callback_url": self.callback_url,
            "api_base": self.api_base,
        }
        record.update({k: v for k, v in optional.items() if v is not None})
        record["attempts"] = self.attempts
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        return cls(
            id=record["id"],
            status=JobStatus(record["status"]),
            request=ImageRequest.from_record(record["request"]),
            created_at=datetime.fromisoformat(record["created_at"]),
            updated_at=datetime.fromisoformat(record["updated_at"]),
            completed_at=datetime.fromisoformat(record["completed_at"])
            if record.get("completed_at")
            else None,
            images=tuple(StoredImage.from_record(item) for item in record.get("images", [])),
            error=record.get("error"),
            model=record.get("model"),
            usage=Usage.from_answer(record.get("usage")),
            cost=Cost.from_json(record.get("cost")),
            lease_owner=record.get("lease_owner"),
            lease_until=datetime.fromisoformat(record["lease_until"]) if record.get("lease_until") else None,
            attempts=int(record.get("attempts", 0)),
            idempotency_key_hash=record.get("idempotency_key_hash"),
            body_hash=record.get("body_hash"),
            callback_url=record.get("callback_url"),
            api_base=record.get("api_base"),
        )

    def succeeded(
        self,
        images: tuple[StoredImage, ...],
        now: datetime,
        *,
        usage: Usage | None = None,
        cost: Cost | None = None,
    ) -> Job:
        return replace(
            self,
            status=JobStatus.SUCCEEDED,
            images=images,
            usage=usage,
            cost=cost,
            updated_at=now,
            completed_at=now,
            lease_until=None,
        )

    def failed(self, error: ImageGenError, now: datetime) -> Job:
        body = error.to_json()
        if error.retry_after is not None:
            body["retry_after"] = round(error.retry_after, 3)
        return replace(
            self, status=JobStatus.FAILED, error=body, updated_at=now, completed_at=now, lease_until=None
        )

    def image_blob_name(self, index: int, extension: str) -> str:
        """`{yyyy}/{mm}/{dd}/{job id}/{index}.{ext}` dated by the job's creation."""
        return f"{self.created_at:%Y/%m/%d}/{self.id}/{index}.{extension}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class JobView:
    """A job and a fresh read link per image (links are minted on every read, never stored)."""

    job: Job
    links: tuple[SignedLink, ...]


@dataclass(frozen=True)
class VersionedJob:
    job: Job
    etag: str


class JobRepository:
    def __init__(self, store: BlobStore, container: str, *, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._container = container
        self._clock = clock

    @staticmethod
    def _name(job_id: str) -> str:
        """The record's blob name; ids are UUIDs, read in any form uuid accepts (upper case too)."""
        try:
            canonical = uuid.UUID(job_id)
        except ValueError:
            raise JobNotFound(f"no job with id '{job_id[:64]}'") from None
        return f"{canonical}.json"

    async def create(self, job: Job) -> str:
        """Write a new record; returns its ETag."""
        return await self._store.create_json(self._container, self._name(job.id), job.to_record())

    async def get(self, job_id: str) -> Job:
        return (await self.read(job_id)).job

    async def read(self, job_id: str) -> VersionedJob:
        name = self._name(job_id)
        try:
            stored = await self._store.read_json(self._container, name)
        except BlobNotFound:
            raise JobNotFound(f"no job with id '{job_id}'") from None
        return VersionedJob(_job_from(stored.document), stored.etag)

    async def update(self, job_id: str, change: Callable[[Job], Job | None]) -> Job:
        """Apply `change` to the current record and write it If-Match; retry on a lost race.

        `change` returns None to leave the record alone (e.g. it is already terminal).
        """
        name = self._name(job_id)
        for _ in range(MAX_UPDATE_ATTEMPTS):
            try:
                stored = await self._store.read_json(self._container, name)
            except BlobNotFound:
                raise JobNotFound(f"no job with id '{job_id}'") from None
            current = _job_from(stored.document)
            changed = change(current)
            if changed is None:
                return current
            try:
                await self._store.replace_json(self._container, name, changed.to_record(), etag=stored.etag)
            except BlobChanged:
                continue
            return changed
        raise StorageError("a job record kept changing under us; try again")

    async def fail_unless_finished(self, job_id: str, error: ImageGenError) -> Job:
        """End the job as failed with `error`, unless it has already ended (then it stays as it is)."""
        return await self.update(
            job_id, lambda current: None if current.status.terminal else current.failed(error, self._clock())
        )

    async def write_if_unchanged(self, job: Job, *, etag: str) -> str:
        """One conditional write when the caller holds the latest ETag; raises BlobChanged otherwise."""
        return await self._store.replace_json(self._container, self._name(job.id), job.to_record(), etag=etag)


def _job_from(record: dict[str, Any]) -> Job:
    """A stored record as a Job; one that does not read (written by something else) is a storage fault."""
    try:
        return Job.from_record(record)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise StorageError("a job record is not readable") from None
