"""The job record (blob `jobs/{id}.json`): what was asked, where it stands, where the images are.

Records are written with ETags: `JobRepository.update` re-reads and retries on a lost race, so two
writers never silently overwrite each other, and a terminal job is never changed again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from imagegen.domain.errors import ImageGenError, JobConflict, StorageError
from imagegen.domain.ports import SignedLink
from imagegen.domain.pricing import Cost, Usage
from imagegen.domain.requests import ImageRequest


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


class Operation(StrEnum):
    """What a job asks the model to do; the record says which, and the runner calls the matching
    upstream operation. A new operation adds a request type, an upstream call and a route."""

    GENERATE = "generate"


class Output(StrEnum):
    """Where a finished job is published; the record says which have been done."""

    RESULTS = "results"  # the image-results queue
    WEBHOOK = "webhook"  # the callback_url


# How each operation's request is read back from a job record.
REQUEST_TYPES: dict[Operation, type[ImageRequest]] = {Operation.GENERATE: ImageRequest}


@dataclass(frozen=True)
class Job:
    """A job record. Its transitions (leased, renewed, succeeded, failed, canceled) are the only way
    to change its state, and each refuses a job that has already finished (JobConflict): a terminal
    job never changes again, whoever tries."""

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
    operation: Operation = Operation.GENERATE
    published: frozenset[Output] = frozenset()  # outputs done for the terminal state
    owner: str | None = None  # the caller's principal id, with Easy Auth; None: any key holder
    # While it waits for a backend's budget: when it should start, and its place in line (1: next).
    estimated_start: datetime | None = None
    queue_position: int | None = None

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
        model: str | None = None,
        operation: Operation = Operation.GENERATE,
        owner: str | None = None,
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
            model=model,
            operation=operation,
            owner=owner,
        )

    def _still_open(self) -> None:
        if self.status.terminal:
            raise JobConflict(
                f"the job is already {self.status.value}", details={"status": self.status.value}
            )

    def lease_is_live(self, now: datetime) -> bool:
        return self.lease_until is not None and self.lease_until > now

    def leased(self, owner: str, until: datetime, now: datetime) -> Job:
        """A new run by `owner`, leased until `until` (renewals change `lease_until` only)."""
        self._still_open()
        return replace(
            self,
            status=JobStatus.RUNNING,
            lease_owner=owner,
            lease_until=until,
            attempts=self.attempts + 1,
            updated_at=now,
            estimated_start=None,
            queue_position=None,
        )

    def waiting(self, estimated_start: datetime, position: int, now: datetime) -> Job:
        """Back in the queue until a backend has budget for it (its run, if any, let go)."""
        self._still_open()
        return replace(
            self,
            status=JobStatus.QUEUED,
            lease_owner=None,
            lease_until=None,
            estimated_start=estimated_start,
            queue_position=position,
            updated_at=now,
        )

    def renewed(self, until: datetime, now: datetime) -> Job:
        """The same run, its lease extended to `until`."""
        self._still_open()
        return replace(self, lease_until=until, updated_at=now)

    def canceled(self, now: datetime) -> Job:
        self._still_open()
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
            "owner": self.owner,
            "estimated_start": _iso(self.estimated_start) if self.estimated_start else None,
            "queue_position": self.queue_position,
        }
        record["operation"] = self.operation.value
        if self.published:
            record["published"] = sorted(output.value for output in self.published)
        record.update({k: v for k, v in optional.items() if v is not None})
        record["attempts"] = self.attempts
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        operation = Operation(record.get("operation", Operation.GENERATE.value))
        return cls(
            id=record["id"],
            status=JobStatus(record["status"]),
            request=REQUEST_TYPES[operation].from_record(record["request"]),
            operation=operation,
            published=frozenset(Output(value) for value in record.get("published", [])),
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
            owner=record.get("owner"),
            estimated_start=datetime.fromisoformat(record["estimated_start"])
            if record.get("estimated_start")
            else None,
            queue_position=int(record["queue_position"]) if record.get("queue_position") else None,
        )

    def succeeded(
        self,
        images: tuple[StoredImage, ...],
        now: datetime,
        *,
        usage: Usage | None = None,
        cost: Cost | None = None,
    ) -> Job:
        self._still_open()
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
        self._still_open()
        body = error.to_json()
        if error.retry_after is not None:
            body["retry_after"] = round(error.retry_after, 3)
        return replace(
            self, status=JobStatus.FAILED, error=body, updated_at=now, completed_at=now, lease_until=None
        )

    def with_published(self, outputs: frozenset[Output]) -> Job:
        """Bookkeeping on a finished job (its state stays as it is): these outputs were done."""
        if not self.status.terminal:
            raise JobConflict("only a finished job is published", details={"status": self.status.value})
        return replace(self, published=self.published | outputs)

    def failed_unless_finished(self, error: ImageGenError, now: datetime) -> Job | None:
        """`failed`, or None when the job has already ended (it then stays as it is)."""
        return None if self.status.terminal else self.failed(error, now)

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


def job_from_record(record: dict[str, Any]) -> Job:
    """A stored record as a Job; one that does not read (written by something else) is a storage fault."""
    try:
        return Job.from_record(record)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise StorageError("a job record is not readable") from None
