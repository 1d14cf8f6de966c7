"""Job records in Blob Storage (one JSON blob per job), written with ETags so races are visible."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime

from imagegen.domain.errors import ImageGenError, JobNotFound, StorageError
from imagegen.domain.jobs import Job, VersionedJob, job_from_record
from imagegen.domain.ports import BlobAlreadyExists, BlobChanged, BlobNotFound, JobRecordStore

MAX_UPDATE_ATTEMPTS = 8
IDEMPOTENCY_PREFIX = "idempotency/"
IDEMPOTENCY_KEY_RECORD = "keys/idempotency.json"
USAGE_PREFIX = "usage/"


class JobRepository:
    def __init__(self, store: JobRecordStore, container: str, *, clock: Callable[[], datetime]) -> None:
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
        return VersionedJob(job_from_record(stored.document), stored.etag)

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
            current = job_from_record(stored.document)
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
        return await self.update(job_id, lambda current: current.failed_unless_finished(error, self._clock()))

    async def write_if_unchanged(self, job: Job, *, etag: str) -> str:
        """One conditional write when the caller holds the latest ETag; raises BlobChanged otherwise."""
        return await self._store.replace_json(self._container, self._name(job.id), job.to_record(), etag=etag)

    async def claim_idempotency(self, keyed_hash: str, job_id: str) -> str:
        """The job an idempotency record names: `job_id` when this call created the record (first
        come), else the one already named. Create-if-absent is the lock across instances."""
        name = f"{IDEMPOTENCY_PREFIX}{keyed_hash}.json"
        try:
            await self._store.create_json(self._container, name, {"job_id": job_id})
            return job_id
        except BlobAlreadyExists:
            pass
        try:
            stored = await self._store.read_json(self._container, name)
            named = str(uuid.UUID(str(stored.document["job_id"])))
        except (BlobNotFound, KeyError, ValueError):
            raise StorageError("an idempotency record is not readable") from None
        return named

    async def idempotency_key(self) -> bytes:
        """The HMAC key for idempotency records when IDEMPOTENCY_SECRET is not set: made once, at
        random, by the first instance that needs it, and kept with the job records."""
        fresh = secrets.token_bytes(32)
        try:
            await self._store.create_json(
                self._container, IDEMPOTENCY_KEY_RECORD, {"key": base64.b64encode(fresh).decode()}
            )
            return fresh
        except BlobAlreadyExists:
            stored = await self._store.read_json(self._container, IDEMPOTENCY_KEY_RECORD)
        try:
            return base64.b64decode(str(stored.document["key"]), validate=True)
        except (KeyError, ValueError):
            raise StorageError("the idempotency key record is not readable") from None

    async def count_images(self, day: str, caller_hash: str, images: int, *, limit: int) -> bool:
        """Add `images` to the caller's count for `day` unless that would pass `limit`; True when
        added. ETag-written, so parallel requests of one caller cannot both slip under the limit."""
        name = f"{USAGE_PREFIX}{day}/{caller_hash}.json"
        for _ in range(MAX_UPDATE_ATTEMPTS):
            try:
                stored = await self._store.read_json(self._container, name)
            except BlobNotFound:
                if images > limit:
                    return False
                try:
                    await self._store.create_json(self._container, name, {"images": images})
                    return True
                except BlobAlreadyExists:
                    continue
            used = stored.document.get("images", 0)
            used = used if isinstance(used, int) else 0
            if used + images > limit:
                return False
            try:
                await self._store.replace_json(
                    self._container, name, {"images": used + images}, etag=stored.etag
                )
                return True
            except BlobChanged:
                continue
        raise StorageError("a usage record kept changing under us; try again")
