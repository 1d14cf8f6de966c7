"""The pool's shared pacing state: one JSON blob in the jobs container, changed with ETags.

Every instance (Flex Consumption scales out) reads and writes the same document, so all of them
together spend each backend's budget once. A change is computed on the last state this instance
saw and written If-Match; a lost race re-reads and computes again. Nothing is held between calls,
so an instance that dies blocks nobody. With pacing off (UPSTREAM_PACING=off, the baseline of the
measurements) the state stays in this process and nothing is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from imagegen.domain.errors import StorageError
from imagegen.domain.pacing import Lane, Plan, Planner, PoolState, Queued
from imagegen.domain.ports import BlobAlreadyExists, BlobChanged, BlobNotFound, JobRecordStore

log = logging.getLogger(__name__)

PACING_BLOB = "pacing/pool.json"
MAX_CONFLICTS = 25
T = TypeVar("T")


class Pacer:
    def __init__(
        self,
        planner: Planner,
        store: JobRecordStore | None,
        container: str,
        *,
        clock: Callable[[], float],
    ) -> None:
        self.planner = planner
        self._store = store
        self._container = container
        self._clock = clock
        self._pending: list[tuple[Callable[[PoolState], Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Future[None] | None = None  # one write out at a time per instance
        self._seen: tuple[dict[str, Any], str | None] | None = None  # (document, ETag) last read or written

    async def _load(self) -> tuple[dict[str, Any], str | None]:
        if self._store is None:
            return (self._seen or ({}, None))[0], None
        try:
            found = await self._store.read_json(self._container, PACING_BLOB)
            return found.document, found.etag
        except BlobNotFound:
            return {}, None

    async def _change(self, change: Callable[[PoolState], T]) -> T:
        """Apply `change` to the shared state. Changes asked for while a write is out go together
        in the next one (a group commit): a burst of jobs costs a few writes, not one each."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((change, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        result: T = await future
        return result

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self._commit([change for change, _ in batch])
            except Exception as error:  # noqa: BLE001 - every waiting caller gets the failure, none hangs
                failure = (
                    error
                    if isinstance(error, StorageError)
                    else StorageError("the pacing state is unreadable")
                )
                for _, future in batch:
                    if not future.done():
                        future.set_exception(failure)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _commit(self, changes: list[Callable[[PoolState], Any]]) -> list[Any]:
        for _ in range(MAX_CONFLICTS):
            if self._seen is None:
                self._seen = await self._load()
            document, etag = self._seen
            state = PoolState.from_json(document)
            results = [change(state) for change in changes]
            written = state.to_json()
            if self._store is None:
                self._seen = (written, None)
                return results
            try:
                if etag is None:
                    new_etag = await self._store.create_json(self._container, PACING_BLOB, written)
                else:
                    new_etag = await self._store.replace_json(
                        self._container, PACING_BLOB, written, etag=etag
                    )
            except (BlobChanged, BlobAlreadyExists, BlobNotFound):
                # Another instance wrote first (or the state was deleted): read it, compute again.
                self._seen = None
                await asyncio.sleep(0)
                continue
            self._seen = (written, new_etag)
            return results
        raise StorageError("the pacing state is too contended to change; try again")

    async def enqueue(self, job_id: str, lane: Lane) -> Queued:
        now = self._clock()
        return await self._change(lambda state: self.planner.enqueue(state, job_id, lane, now))

    async def claim(self, job_id: str, lane: Lane, *, hold: float, deadline: float) -> Plan:
        now = self._clock()
        return await self._change(
            lambda state: self.planner.claim(state, job_id, lane, now, hold=hold, deadline=deadline)
        )

    async def release(self, job_id: str) -> None:
        await self._change(lambda state: self.planner.release(state, job_id))

    async def throttled(self, backend_id: str, retry_after: float | None) -> None:
        now = self._clock()
        await self._best_effort(lambda state: self.planner.throttled(state, backend_id, retry_after, now))

    async def failed(self, backend_id: str) -> None:
        now = self._clock()
        await self._best_effort(lambda state: self.planner.failed(state, backend_id, now))

    async def succeeded(self, backend_id: str) -> None:
        """Written only when it changes something (a failure count, an open circuit)."""
        if self._seen is not None:
            current = PoolState.from_json(self._seen[0])
            if not self.planner.succeeded(current, backend_id):
                return
        await self._best_effort(lambda state: self.planner.succeeded(state, backend_id))

    async def _best_effort(self, change: Callable[[PoolState], object]) -> None:
        """What a backend answered is worth sharing, but a job does not fail for want of it."""
        try:
            await self._change(change)
        except StorageError as error:
            log.warning("the pacing state could not be updated: %s", error.message)

    async def describe(self) -> list[dict[str, Any]]:
        """Each backend's state as the pool's document says now (a fresh read)."""
        document, _ = await self._load()
        return self.planner.describe(PoolState.from_json(document), self._clock())
