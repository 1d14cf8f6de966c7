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

from imagegen.blob_store import BlobChanged, BlobNotFound, BlobStore
from imagegen.errors import ImageGenError, JobNotFound, StorageError
from imagegen.models import ImageRequest

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
    operation_url: str | None = field(default=None, repr=False)  # legacy dialect: the upstream operation

    @classmethod
    def new(cls, request: ImageRequest, *, now: datetime, status: JobStatus = JobStatus.QUEUED) -> Job:
        return cls(id=str(uuid.uuid4()), status=status, request=request, created_at=now, updated_at=now)

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
        if self.operation_url is not None:
            record["operation_url"] = self.operation_url
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
            operation_url=record.get("operation_url"),
        )

    def succeeded(self, images: tuple[StoredImage, ...], now: datetime) -> Job:
        return replace(self, status=JobStatus.SUCCEEDED, images=images, updated_at=now, completed_at=now)

    def failed(self, error: ImageGenError, now: datetime) -> Job:
        body = error.to_json()
        if error.retry_after is not None:
            body["retry_after"] = round(error.retry_after, 3)
        return replace(self, status=JobStatus.FAILED, error=body, updated_at=now, completed_at=now)

    def image_blob_name(self, index: int, extension: str) -> str:
        """`{yyyy}/{mm}/{dd}/{job id}/{index}.{ext}` (DESIGN.md), dated by the job's creation."""
        return f"{self.created_at:%Y/%m/%d}/{self.id}/{index}.{extension}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobRepository:
    def __init__(self, store: BlobStore, container: str, *, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._container = container
        self._clock = clock

    @staticmethod
    def _name(job_id: str) -> str:
        return f"{job_id}.json"

    async def create(self, job: Job) -> str:
        """Write a new record; returns its ETag."""
        return await self._store.create_json(self._container, self._name(job.id), job.to_record())

    async def get(self, job_id: str) -> Job:
        try:
            uuid.UUID(job_id)
        except ValueError:
            raise JobNotFound(f"no job with id '{job_id[:64]}'") from None
        try:
            stored = await self._store.read_json(self._container, self._name(job_id))
        except BlobNotFound:
            raise JobNotFound(f"no job with id '{job_id}'") from None
        return Job.from_record(stored.document)

    async def update(self, job_id: str, change: Callable[[Job], Job | None]) -> Job:
        """Apply `change` to the current record and write it If-Match; retry on a lost race.

        `change` returns None to leave the record alone (e.g. it is already terminal).
        """
        for _ in range(MAX_UPDATE_ATTEMPTS):
            try:
                stored = await self._store.read_json(self._container, self._name(job_id))
            except BlobNotFound:
                raise JobNotFound(f"no job with id '{job_id}'") from None
            current = Job.from_record(stored.document)
            changed = change(current)
            if changed is None:
                return current
            try:
                await self._store.replace_json(
                    self._container, self._name(job_id), changed.to_record(), etag=stored.etag
                )
            except BlobChanged:
                continue
            return changed
        raise StorageError("a job record kept changing under us; try again")

    async def write_if_unchanged(self, job: Job, *, etag: str) -> str:
        """One conditional write when the caller holds the latest ETag; raises BlobChanged otherwise."""
        return await self._store.replace_json(self._container, self._name(job.id), job.to_record(), etag=etag)
