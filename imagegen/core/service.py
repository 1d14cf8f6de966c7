"""Jobs that survive: create, run inline or from the queue, resume, cancel, publish, call back.

The durability rules (docs/architecture.md):
- The job record is written before any answer; a queue message on `image-jobs` backs every job
  (visible at once for respond-async, after a grace period when the request waits inline).
- Whoever runs a job holds its lease (`lease_until`, ETag-written, renewed while it works). A message
  for a job under a live lease goes back to the queue with a delay; only an expired lease (a dead
  instance) is taken over, so a paid upstream call is repeated at most once, after a crash.
- A resumed job never repeats a finished step: images already in Blob Storage are not uploaded
  again (and are described from their blob).
- A queue message names a job only; the stored record decides, leased If-Match with the ETag read.
- Every backend's budget is shared by all instances (imagegen.core.pacer): a job takes a slot only
  when its turn comes within a few seconds; otherwise it waits in the queue (its message delayed
  until its estimated start), never holding a worker. A 429 cools that backend down and the job
  takes another slot or goes back to the queue; it fails for throttling only after its deadline.
- Whoever owns a job's message publishes its terminal state (to `image-results`, and to the
  callback) and only then lets the message go: delivery is at least once; the record then says it
  was published, so a replayed message sends nothing again.

Built once per process by imagegen.wiring, on first use, never at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from imagegen.core.pacer import Pacer
from imagegen.core.repository import JobRepository
from imagegen.core.views import poison_note, render_job, result_message
from imagegen.domain.catalog import rules_for_model
from imagegen.domain.errors import (
    CallerLimitReached,
    IdempotencyKeyReused,
    ImageGenError,
    JobConflict,
    JobNotFound,
    ProcessingFailed,
    StorageError,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from imagegen.domain.jobs import Job, JobStatus, JobView, Operation, Output, StoredImage, VersionedJob
from imagegen.domain.logtext import escaped
from imagegen.domain.messages import JobMessage
from imagegen.domain.pacing import FAILURES_TO_OPEN, Lane, NoSlot, Plan, Planner, Queued, Slot
from imagegen.domain.ports import (
    BlobAlreadyExists,
    BlobChanged,
    BlobPort,
    GeneratedImage,
    Generation,
    ImageGenerator,
    MessageQueue,
    Notifier,
    SentMessage,
)
from imagegen.domain.requests import ImageRequest, ModelRules
from imagegen.domain.settings import (
    QUEUE_IMAGE_JOBS,
    QUEUE_IMAGE_REQUESTS,
    QUEUE_IMAGE_RESULTS,
    Settings,
)

log = logging.getLogger(__name__)

# A job message becomes visible this long after its lease would lapse, so a live owner renews first.
GRACE_MARGIN_SECONDS = 5.0
EXISTING_JOB_POLL_SECONDS = (0.1, 0.2, 0.4, 0.8, 1.0)
SLOT_HOLD_SECONDS = 3.0  # a worker waits at most this long for a job's slot; longer, it re-queues it
SLOT_LEAD_SECONDS = 1.0  # a waiting job's message shows this long before its estimated start
MAX_THROTTLED_TRIES = 8  # 429s in one run before the job goes back to the queue
MAX_UNAVAILABLE_TRIES = 6  # 5xx / unreachable answers in one run before the job fails
THROTTLED_REQUEUE_SECONDS = 10.0


# The upstream call of each operation (a new operation adds its entry, its request type, its route).
UpstreamCall = Callable[[ImageGenerator, Job, float], Awaitable[Generation]]
OPERATIONS: dict[Operation, UpstreamCall] = {
    Operation.GENERATE: lambda generator, job, deadline: generator.generate(job.request, deadline=deadline),
}


class Closable(Protocol):
    async def close(self) -> None: ...


@dataclass(frozen=True)
class Submission:
    """A validated request plus what travels beside it."""

    request: ImageRequest
    body_hash: str
    idempotency_key: str | None = None
    callback_url: str | None = None
    idempotency_scope: str = "http"  # keys from HTTP and from the queue are separate spaces
    owner: str | None = None  # the caller (Easy Auth): its jobs, and its own idempotency keys

    @staticmethod
    def hash_body(document: dict[str, Any]) -> str:
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


class JobCanceledWhileRunning(Exception):
    """The job was canceled (DELETE) while this instance worked on it."""


class JobDeferred(Exception):
    """No backend has budget for the job soon: it goes back to the queue until `plan.at`."""

    def __init__(self, plan: Queued) -> None:
        super().__init__(plan)
        self.plan = plan


class _JobHandle:
    """The running job's latest record and ETag; every write of the runner goes through it."""

    def __init__(self, service: ImageService, versioned: VersionedJob) -> None:
        self._service = service
        self.job = versioned.job
        self.etag = versioned.etag
        self.canceled = False
        self._lock = asyncio.Lock()
        self.work: asyncio.Task[Job] | None = None
        self.task: asyncio.Task[Job] | None = None
        self.slot: Slot | None = None  # the slot it was given, if any (else it claims one)
        self.wait_until: float | None = None  # monotonic: a caller waits for it until then
        # Resolved as soon as the job's outcome is recorded (before publishing and callbacks).
        self.finished: asyncio.Future[Job] = asyncio.get_running_loop().create_future()

    def stop_canceled(self, canceled: Job) -> None:
        """DELETE reached the instance that runs the job: stop the work now."""
        self.canceled, self.job = True, canceled
        if self.work is not None:
            self.work.cancel()

    async def write(self, change: Callable[[Job], Job]) -> None:
        """Write `change(job)` If-Match; a lost race re-reads: a terminal job (canceled) stops us."""
        async with self._lock:
            try:
                updated = change(self.job)
                self.etag = await self._service.jobs.write_if_unchanged(updated, etag=self.etag)
                self.job = updated
                return
            except BlobChanged:
                pass
            current = await self._service.jobs.read(self.job.id)
            try:
                updated = change(current.job)
            except JobConflict:  # it ended meanwhile (canceled): a finished job never changes
                self.job, self.etag, self.canceled = current.job, current.etag, True
                raise JobCanceledWhileRunning(self.job.id) from None
            self.etag = await self._service.jobs.write_if_unchanged(updated, etag=current.etag)
            self.job = updated


class ImageService:
    def __init__(
        self,
        settings: Settings,
        generator: ImageGenerator | Mapping[str, ImageGenerator],
        store: BlobPort,
        queues: MessageQueue,
        *,
        webhooks: Notifier | None = None,
        credential: Closable | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        instance_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.rules: ModelRules = rules_for_model(settings.model)
        # One generator per backend of the pool (a single one serves them all in tests).
        self._generators: dict[str, ImageGenerator] = (
            dict(generator)
            if isinstance(generator, Mapping)
            else {backend.id: generator for backend in settings.backends}
        )
        self._store = store
        self.queues = queues
        self._webhooks = webhooks
        self._credential = credential
        self._clock = clock
        self._monotonic = monotonic
        self.instance_id = instance_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.jobs = JobRepository(store, settings.jobs_container, clock=clock)
        self._handles: dict[str, _JobHandle] = {}
        self._lease = timedelta(seconds=settings.job_lease_seconds)
        self._idempotency_hmac_key: bytes | None = None
        self.pacer = Pacer(
            Planner(settings.backends, pacing=settings.pacing),
            store if settings.pacing else None,
            settings.jobs_container,
            clock=lambda: self._clock().timestamp(),
        )

    async def close(self) -> None:
        for handle in list(self._handles.values()):
            if handle.task is not None:
                handle.task.cancel()
        for generator in {id(g): g for g in self._generators.values()}.values():
            await generator.close()
        await self._store.close()
        await self.queues.close()
        if self._webhooks is not None:
            await self._webhooks.close()
        if self._credential is not None:
            await self._credential.close()

    async def drain(self) -> None:
        """Wait for the jobs this instance is running, publishing included."""
        tasks = [handle.task for handle in self._handles.values() if handle.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- submitting --------------------------------------------------------------------------

    async def _new_job(self, submission: Submission, status: JobStatus) -> tuple[Job, bool]:
        """A random job id; with an Idempotency-Key, the id its idempotency record names (the first
        submission's). The record is found by an HMAC of scope and key with a secret the app holds,
        so a key alone never gives a job's id; the job record's create-if-absent stays the lock."""
        job_id, key_hash = str(uuid.uuid4()), None
        candidate = job_id
        if submission.idempotency_key is not None:
            scope = submission.idempotency_scope + (f":{submission.owner}" if submission.owner else "")
            key_hash = await self._keyed_hash(scope, submission.idempotency_key)
            job_id = await self.jobs.claim_idempotency(key_hash, job_id)
        job = Job.new(
            submission.request,
            now=self._clock(),
            job_id=job_id,
            status=status,
            callback_url=submission.callback_url,
            idempotency_key_hash=key_hash,
            body_hash=submission.body_hash,
            model=self.settings.catalog_model.name,
            owner=submission.owner,
        )
        return job, job_id == candidate  # False: a repeated key, the first submission's job

    async def _keyed_hash(self, scope: str, key: str) -> str:
        if self._idempotency_hmac_key is None:
            secret = self.settings.idempotency_secret
            self._idempotency_hmac_key = secret.encode() if secret else await self.jobs.idempotency_key()
        return hmac.new(self._idempotency_hmac_key, f"{scope}\n{key}".encode(), hashlib.sha256).hexdigest()

    async def _within_daily_limit(self, submission: Submission, job: Job) -> None:
        """CALLER_DAILY_IMAGES: a caller's images per UTC day, counted when its job is recorded."""
        limit = self.settings.caller_daily_images
        if limit is None or submission.owner is None:
            return
        now = self._clock()
        caller_hash = await self._keyed_hash("caller", submission.owner)
        if not await self.jobs.count_images(f"{now:%Y-%m-%d}", caller_hash, job.request.n, limit=limit):
            midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
            raise CallerLimitReached(
                f"this caller has used its {limit} images for today",
                retry_after=max(1.0, (midnight - now).total_seconds()),
            )

    async def submit_async(self, submission: Submission) -> Job:
        """Record the job and queue it for a worker at once (Prefer: respond-async, queue input)."""
        job, fresh = await self._new_job(submission, JobStatus.QUEUED)
        delay = 0.0
        if fresh:
            await self._within_daily_limit(submission, job)
            job, delay = await self._in_line(job)
        try:
            await self.jobs.create(job)
        except BlobAlreadyExists:
            return await self._existing(job.id, submission, wait_seconds=0)
        try:
            await self.queues.send(QUEUE_IMAGE_JOBS, JobMessage(job.id).to_json(), delay_seconds=delay)
        except StorageError as error:
            # Without its message nobody would ever run it: end it rather than leave it queued for ever.
            await self.jobs.fail_unless_finished(job.id, error)
            raise
        log.info("job %s queued (n=%d, size=%s)", job.id, job.request.n, job.request.size)
        return job

    async def _in_line(self, job: Job) -> tuple[Job, float]:
        """Put a new queued job in line: its estimated start, and the delay of its first message."""
        try:
            queued = await self.pacer.enqueue(job.id, Lane.QUEUED)
        except StorageError as error:  # it still runs; a worker puts it in line when it comes
            log.warning("job %s: could not be put in line for a slot (%s)", job.id, error.message)
            return job, 0.0
        return self._waiting(job, queued), self._message_delay(queued)

    def _waiting(self, job: Job, queued: Queued) -> Job:
        return job.waiting(datetime.fromtimestamp(queued.at, UTC), queued.position, self._clock())

    def _message_delay(self, queued: Queued) -> float:
        return max(0.0, queued.at - self._clock().timestamp() - SLOT_LEAD_SECONDS)

    def _deadline(self, job: Job) -> float:
        return job.created_at.timestamp() + self.settings.job_deadline_seconds

    async def _claim(self, job: Job, lane: Lane, hold: float) -> Plan:
        return await self.pacer.claim(job.id, lane, hold=hold, deadline=self._deadline(job))

    def _out_of_time(self, plan: NoSlot) -> UpstreamThrottled:
        """Its deadline comes before any backend has budget for it; Retry-After says when one will."""
        return UpstreamThrottled(
            "no backend had budget for this job before its deadline (JOB_DEADLINE_SECONDS "
            f"{self.settings.job_deadline_seconds:g}); submit it again later",
            retry_after=max(1.0, plan.earliest - self._clock().timestamp()),
        )

    async def submit_and_wait(self, submission: Submission, wait_seconds: float) -> Job:
        """Record the job, back it with a delayed message, run it here; answer when done or at the wait."""
        started = self._monotonic()
        new, fresh = await self._new_job(submission, JobStatus.RUNNING)
        slot: Slot | None = None
        if fresh:
            await self._within_daily_limit(submission, new)
            # A waiting caller goes before queued jobs; if even so its turn is beyond its wait, the
            # job is queued at once and the answer (202) says when to come back.
            plan = await self._claim(new, Lane.WAITING, hold=wait_seconds - (self._monotonic() - started))
            if not isinstance(plan, Slot):
                return await self._queued_instead(new, submission, plan)
            slot = plan
        job = self._leased(new)
        # The record and its backing message are written together (one round trip, not two); both
        # exist before the upstream call. A message whose record was never written is dropped.
        created, sent = await asyncio.gather(
            self.jobs.create(job),
            self.queues.send(
                QUEUE_IMAGE_JOBS,
                JobMessage(job.id).to_json(),
                delay_seconds=self._lease.total_seconds() + GRACE_MARGIN_SECONDS,
            ),
            return_exceptions=True,
        )
        if isinstance(created, BlobAlreadyExists):
            if isinstance(sent, SentMessage):
                await self.queues.delete(sent)
            return await self._existing(job.id, submission, wait_seconds=wait_seconds)
        if isinstance(created, BaseException):
            raise created
        if isinstance(sent, BaseException):
            # Without its backing message the job must not start: end it rather than leave it stuck.
            failure = (
                sent if isinstance(sent, StorageError) else StorageError("the job could not be scheduled")
            )
            await self.jobs.fail_unless_finished(job.id, failure)
            raise sent
        etag, message = created, sent
        log.info("job %s running inline (n=%d, size=%s)", job.id, job.request.n, job.request.size)
        handle = self._start(VersionedJob(job, etag), message, slot=slot)
        handle.wait_until = started + wait_seconds
        remaining = wait_seconds - (self._monotonic() - started)
        return await self._wait_for(handle, remaining)

    async def _queued_instead(self, new: Job, submission: Submission, plan: Queued | NoSlot) -> Job:
        """A waiting POST whose job cannot start within the wait: recorded queued (or, past its
        deadline already, failed) and answered at once."""
        if isinstance(plan, NoSlot):
            failed = replace(new, status=JobStatus.QUEUED).failed(self._out_of_time(plan), self._clock())
            try:
                await self.jobs.create(failed)
            except BlobAlreadyExists:
                return await self._existing(failed.id, submission, wait_seconds=0)
            await self._after_terminal(failed)
            return failed
        job = self._waiting(new, plan)
        try:
            await self.jobs.create(job)
        except BlobAlreadyExists:
            return await self._existing(job.id, submission, wait_seconds=0)
        delay = self._message_delay(plan)
        try:
            await self.queues.send(QUEUE_IMAGE_JOBS, JobMessage(job.id).to_json(), delay_seconds=delay)
        except StorageError as error:
            await self.jobs.fail_unless_finished(job.id, error)
            raise
        log.info("job %s waits for a slot: position %d, about %.0f s", job.id, plan.position, delay)
        return job

    @staticmethod
    async def _wait_for(handle: _JobHandle, seconds: float) -> Job:
        """The outcome if it is recorded within `seconds`, else the job as it stands (still running)."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(handle.finished), timeout=seconds)
        return handle.job

    async def _existing(self, job_id: str, submission: Submission, *, wait_seconds: float) -> Job:
        """A repeated Idempotency-Key: the same body gets the same job (waited for like the first)."""
        job = await self.jobs.get(job_id)
        if job.body_hash != submission.body_hash:
            # No job id in the answer: whoever guesses a key must not learn whose job it names.
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
        deadline = self._monotonic() + wait_seconds
        polls = iter(EXISTING_JOB_POLL_SECONDS)
        while not job.status.terminal and self._monotonic() < deadline:
            running_here = self._handles.get(job_id)
            if running_here is not None:
                return await self._wait_for(running_here, deadline - self._monotonic())
            await asyncio.sleep(
                min(next(polls, EXISTING_JOB_POLL_SECONDS[-1]), max(0.0, deadline - self._monotonic()))
            )
            job = await self.jobs.get(job_id)
        return job

    # --- running -----------------------------------------------------------------------------

    def _start(
        self, versioned: VersionedJob, message: SentMessage | None, *, slot: Slot | None = None
    ) -> _JobHandle:
        handle = _JobHandle(self, versioned)
        handle.slot = slot
        job_id = versioned.job.id
        handle.task = asyncio.create_task(self._run(handle, message), name=f"job-{job_id}")
        self._handles[job_id] = handle
        handle.task.add_done_callback(lambda _: self._handles.pop(job_id, None))
        return handle

    async def _run(self, handle: _JobHandle, message: SentMessage | None) -> Job:
        """Run a leased job to its end, publish it, then let its backing message go."""
        work = handle.work = asyncio.create_task(self._work(handle))
        renewer = asyncio.create_task(self._renew_lease(handle, work))
        try:
            try:
                final = await work
            except asyncio.CancelledError:
                if not handle.canceled:
                    raise
                final = handle.job
            except JobCanceledWhileRunning:
                final = handle.job
            finally:
                renewer.cancel()
        except BaseException as error:
            if not handle.finished.done():
                handle.finished.set_exception(
                    error if isinstance(error, Exception) else StorageError("stopped")
                )
                handle.finished.exception()  # retrieved: waiters may be gone
            raise
        if not handle.finished.done():
            handle.finished.set_result(final)
        if not final.status.terminal:  # back in the queue (JobDeferred): its new message is sent
            if message is not None:
                with contextlib.suppress(StorageError):
                    await self.queues.delete(message)
            return final
        try:
            # The handle holds the final record's ETag (unless a cancel replaced it meanwhile).
            await self._after_terminal(final, handle.etag if handle.job == final else None)
        except StorageError:
            if message is None:
                raise  # the host retries the message, and with it the publishing
            log.warning("job %s: publishing failed; its queue message stays for a worker to retry", final.id)
            return final
        if message is not None:
            try:
                await self.queues.delete(message)
            except StorageError:
                log.warning(
                    "job %s: its queue message could not be deleted; a worker will find it done", final.id
                )
        return final

    async def _work(self, handle: _JobHandle) -> Job:
        job = handle.job
        resumed = job.attempts > 1

        try:
            generation = await self._generate(handle)
            stored = await self._store_images(job, generation.images, skip_existing=resumed)
            cost = self.settings.prices.cost(self.settings.model, generation.usage, len(stored))
            outcome = "succeeded"
        except JobDeferred as deferred:
            await self._defer(handle, deferred.plan)
            return handle.job
        except ImageGenError as error:
            log.info("job %s failed: %s", job.id, error.code)
            failure = error
            outcome = "failed"
        now = self._clock()
        if outcome == "succeeded":
            await handle.write(
                lambda current: current.succeeded(stored, now, usage=generation.usage, cost=cost)
            )
        else:
            await handle.write(lambda current: current.failed(failure, now))
        log.info("job %s %s (attempt %d)", job.id, handle.job.status.value, handle.job.attempts)
        return handle.job

    async def _generate(self, handle: _JobHandle) -> Generation:
        """The upstream call on a slot of the pool: a 429 cools that backend down and the job takes
        another slot (or goes back to the queue: JobDeferred); a 5xx or a lost connection, which
        drew nothing, backs that backend off and tries again (after three, when every backend has
        failed it and none is free soon, the job ends: that is failing, not busy); a timeout, which may have drawn
        (and been paid for), ends the job. A paid generation starts at most once per run."""
        job = handle.job
        slot, handle.slot = handle.slot, None
        throttled = unavailable = 0
        broken: UpstreamUnavailable | None = None  # set once every backend failed this job
        failed_on: set[str] = set()
        while True:
            if slot is None:
                if throttled >= MAX_THROTTLED_TRIES:
                    now = self._clock().timestamp()
                    raise JobDeferred(Queued(now + THROTTLED_REQUEUE_SECONDS, 1))
                waiting = handle.wait_until - self._monotonic() if handle.wait_until is not None else 0.0
                hold = SLOT_HOLD_SECONDS if broken is not None else max(SLOT_HOLD_SECONDS, waiting)
                plan = await self._claim(job, Lane.RETRY, hold=hold)
                if broken is not None and not isinstance(plan, Slot):
                    raise broken  # failing, not busy, and no other backend free soon: it ends
                if isinstance(plan, NoSlot):
                    raise self._out_of_time(plan)
                if isinstance(plan, Queued):
                    raise JobDeferred(plan)
                slot = plan
            pause = slot.at - self._clock().timestamp()
            if pause > 0:
                await asyncio.sleep(pause)
            # UPSTREAM_TIMEOUT_SECONDS is for the call itself, from when its slot came.
            deadline = self._monotonic() + self.settings.upstream_timeout_seconds
            try:
                generation = await OPERATIONS[job.operation](self._generators[slot.backend], job, deadline)
            except UpstreamThrottled as error:
                throttled += 1
                log.info("job %s: backend %s answered 429; it cools down", job.id, slot.backend)
                await self.pacer.throttled(slot.backend, error.retry_after)
            except UpstreamUnavailable as error:
                unavailable += 1
                log.warning("job %s: backend %s failed (%s)", job.id, slot.backend, error.message)
                await self.pacer.failed(slot.backend)
                if unavailable >= MAX_UNAVAILABLE_TRIES:
                    raise
                failed_on.add(slot.backend)
                if unavailable >= FAILURES_TO_OPEN and failed_on >= set(self._generators):
                    broken = error  # every backend failed it: if none is free soon, it ends
            except UpstreamTimeout:
                await self.pacer.failed(slot.backend)
                raise
            except ImageGenError:
                await self.pacer.succeeded(slot.backend)  # it answered: the backend itself is well
                raise
            else:
                await self.pacer.succeeded(slot.backend)
                return generation
            slot = None

    async def _defer(self, handle: _JobHandle, plan: Queued) -> None:
        """Back to the queue: the record says when it should start, a delayed message brings it back."""
        await handle.write(lambda current: self._waiting(current, plan))
        await self.queues.send(
            QUEUE_IMAGE_JOBS, JobMessage(handle.job.id).to_json(), delay_seconds=self._message_delay(plan)
        )
        log.info(
            "job %s waits for a slot: position %d, about %.0f s",
            handle.job.id,
            plan.position,
            plan.at - self._clock().timestamp(),
        )

    async def _renew_lease(self, handle: _JobHandle, work: asyncio.Task[Job]) -> None:
        """Extend the lease every third of its length; a canceled job stops the work."""
        interval = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await handle.write(self._renewed)
            except JobCanceledWhileRunning:
                work.cancel()
                return
            except StorageError:
                log.warning("job %s: could not renew its lease; retrying", handle.job.id)

    def _leased(self, job: Job) -> Job:
        """`job` as a new run of this instance, leased for JOB_LEASE_SECONDS from now."""
        now = self._clock()
        return job.leased(self.instance_id, now + self._lease, now)

    def _renewed(self, current: Job) -> Job:
        now = self._clock()
        return current.renewed(now + self._lease, now)

    async def _store_images(
        self, job: Job, generated: tuple[GeneratedImage, ...], *, skip_existing: bool
    ) -> tuple[StoredImage, ...]:
        async def store_one(index: int, image: GeneratedImage) -> StoredImage:
            name = job.image_blob_name(index, image.info.extension)
            kept = await self._store.stored(self.settings.images_container, name) if skip_existing else None
            if kept is not None:
                # Stored by the run that died: keep it, and describe it, not what was drawn again.
                return StoredImage(
                    index=index,
                    blob=name,
                    content_type=kept.content_type,
                    width=_int_or(kept.metadata.get("width"), image.info.width),
                    height=_int_or(kept.metadata.get("height"), image.info.height),
                    bytes=kept.size,
                )
            await self._store.upload(
                self.settings.images_container,
                name,
                image.data,
                content_type=image.info.content_type,
                metadata={
                    "job_id": job.id,
                    "index": str(index),
                    "width": str(image.info.width),
                    "height": str(image.info.height),
                },
            )
            return StoredImage(
                index=index,
                blob=name,
                content_type=image.info.content_type,
                width=image.info.width,
                height=image.info.height,
                bytes=len(image.data),
                revised_prompt=image.revised_prompt,
            )

        return tuple(await asyncio.gather(*(store_one(i, image) for i, image in enumerate(generated))))

    # --- the queue worker ----------------------------------------------------------------------

    async def handle_job_message(self, job_id: str) -> Job | None:
        """`image-jobs`: run, resume, re-delay or finish publishing one job.

        The message names the job only; the stored record decides, leased If-Match with the ETag read.
        """
        try:
            versioned = await self.jobs.read(job_id)
        except JobNotFound:
            log.warning("job message for unknown job %s dropped", escaped(job_id, limit=64))
            return None
        job, now = versioned.job, self._clock()
        if job.status.terminal:
            # Only what is not recorded as delivered: a replay sends nothing.
            await self._after_terminal(job, versioned.etag)
            return job
        if job.id in self._handles or job.lease_is_live(now):
            remaining = (
                (job.lease_until - now).total_seconds() if job.lease_until else self._lease.total_seconds()
            )
            await self.queues.send(
                QUEUE_IMAGE_JOBS, JobMessage(job.id).to_json(), delay_seconds=remaining + GRACE_MARGIN_SECONDS
            )
            log.info("job %s is leased by a live worker; checking again in %.0f s", job.id, remaining)
            return job
        plan = await self._claim(job, Lane.RETRY if job.attempts else Lane.QUEUED, hold=SLOT_HOLD_SECONDS)
        if isinstance(plan, NoSlot):
            return await self._end_out_of_time(versioned, plan)
        if isinstance(plan, Queued):
            return await self._requeue(versioned, plan)
        if job.attempts:
            log.warning(
                "job %s resumed: its previous worker stopped renewing (attempt %d)", job.id, job.attempts + 1
            )
        leased = self._leased(job)
        try:
            etag = await self.jobs.write_if_unchanged(leased, etag=versioned.etag)
        except BlobChanged:
            # Someone else took it (or canceled it) just now: look again later.
            await self.queues.send(
                QUEUE_IMAGE_JOBS, JobMessage(job.id).to_json(), delay_seconds=GRACE_MARGIN_SECONDS
            )
            return None
        return await self._run_leased(VersionedJob(leased, etag), plan)

    async def _requeue(self, versioned: VersionedJob, plan: Queued) -> Job | None:
        """Not its turn yet: the record says when, and a message delayed until then brings it back."""
        waiting = self._waiting(versioned.job, plan)
        try:
            await self.jobs.write_if_unchanged(waiting, etag=versioned.etag)
        except BlobChanged:
            current = await self.jobs.get(versioned.job.id)
            if current.status.terminal:  # canceled meanwhile: nothing to bring back
                await self.pacer.release(current.id)
                return current
        await self.queues.send(
            QUEUE_IMAGE_JOBS, JobMessage(waiting.id).to_json(), delay_seconds=self._message_delay(plan)
        )
        log.info(
            "job %s waits for a slot: position %d, about %.0f s",
            waiting.id,
            plan.position,
            plan.at - self._clock().timestamp(),
        )
        return waiting

    async def _end_out_of_time(self, versioned: VersionedJob, plan: NoSlot) -> Job | None:
        """Its deadline passed (or will, before any backend has budget): upstream_throttled."""
        failed = versioned.job.failed(self._out_of_time(plan), self._clock())
        try:
            etag = await self.jobs.write_if_unchanged(failed, etag=versioned.etag)
        except BlobChanged:
            await self.queues.send(
                QUEUE_IMAGE_JOBS, JobMessage(failed.id).to_json(), delay_seconds=GRACE_MARGIN_SECONDS
            )
            return None
        log.info("job %s failed: no slot before its deadline", failed.id)
        await self._after_terminal(failed, etag)
        return failed

    async def _run_leased(self, versioned: VersionedJob, slot: Slot | None = None) -> Job:
        """Run a job this worker just leased, within the queue trigger's invocation."""
        handle = self._start(versioned, None, slot=slot)
        assert handle.task is not None
        return await handle.task

    async def handle_poisoned_job_message(self, job_id: str, dequeue_count: int | None) -> Job | None:
        """`image-jobs-poison`: the job could not be processed; end it as failed, with the reason."""
        error = ProcessingFailed(
            "the job could not be processed after repeated attempts (its queue message was poisoned)",
            details={"dequeue_count": dequeue_count} if dequeue_count else None,
        )
        try:
            job = await self.jobs.fail_unless_finished(job_id, error)
        except JobNotFound:
            log.warning("poison message for unknown job %s dropped", escaped(job_id, limit=64))
            return None
        await self._after_terminal(job)
        return job

    async def reject_request_message(self, text: str, error: ImageGenError) -> None:
        """A malformed `image-requests` message goes to its poison queue at once, with the reason."""
        await self.queues.send(f"{QUEUE_IMAGE_REQUESTS}-poison", poison_note(text, error.to_json()))

    # --- cancel, read ------------------------------------------------------------------------

    async def job_for(self, job_id: str, owner: str | None) -> Job:
        """The job, if the caller may see it: with Easy Auth only its owner; another caller's job is
        answered like one that does not exist."""
        return self._visible_to(await self.jobs.get(job_id), owner)

    def _visible_to(self, job: Job, owner: str | None) -> Job:
        if self.settings.easy_auth and job.owner != owner:
            raise JobNotFound(f"no job with id '{job.id}'")
        return job

    async def cancel(self, job_id: str, owner: str | None = None) -> Job:
        # The owner is checked on the record the update reads: one read, not two.
        job = await self.jobs.update(
            job_id, lambda current: self._visible_to(current, owner).canceled(self._clock())
        )
        log.info("job %s canceled", job.id)
        with contextlib.suppress(StorageError):
            await self.pacer.release(job.id)  # its place in line, if it had one
        running_here = self._handles.get(job.id)
        if running_here is not None:
            running_here.stop_canceled(job)
        return job

    async def view(self, job: Job) -> JobView:
        ttl = timedelta(minutes=self.settings.sas_ttl_minutes)
        links = await asyncio.gather(
            *(
                self._store.read_link(self.settings.images_container, image.blob, ttl=ttl)
                for image in job.images
            )
        )
        return JobView(job, tuple(links))

    def now(self) -> datetime:
        """The service's clock (estimates and Retry-After are counted from it)."""
        return self._clock()

    async def backends_health(self) -> list[dict[str, Any]]:
        """Each backend of the pool: budget, cooling, circuit (nothing secret)."""
        return await self.pacer.describe()

    async def check_storage(self) -> None:
        """Blob and Queue Storage probed at once; the first failure (Blob's if both) is raised."""
        outcomes = await asyncio.gather(
            self._store.check_reachable(self.settings.jobs_container),
            self.queues.check_reachable(QUEUE_IMAGE_JOBS),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    # --- after the end -----------------------------------------------------------------------

    async def _after_terminal(self, job: Job, etag: str | None = None) -> None:
        """Publish to `image-results` and POST the callback, then record that both were done.

        At least once: a crash before the record is written publishes again (ids let receivers
        dedupe); once recorded, a replayed message sends nothing.
        """
        outputs = self._outputs(job)
        missing = outputs - job.published
        if not missing:
            return
        body = render_job(await self.view(job), self.settings.api_base)
        if Output.RESULTS in missing:
            await self.queues.send(QUEUE_IMAGE_RESULTS, result_message(body))
        if Output.WEBHOOK in missing and job.callback_url and self._webhooks is not None:
            payload = json.dumps(body, separators=(",", ":")).encode()
            # Delivered, or refused for good (the sender retries what may still succeed): done.
            await self._webhooks.deliver(job.callback_url, f"{job.id}.{job.status.value}", payload)
        if etag is not None:  # one conditional write when the record is as we last wrote or read it
            try:
                await self.jobs.write_if_unchanged(job.with_published(outputs), etag=etag)
                return
            except BlobChanged:
                pass
        await self.jobs.update(job.id, lambda current: current.with_published(outputs))

    def _outputs(self, job: Job) -> frozenset[Output]:
        wants_webhook = job.callback_url is not None and self._webhooks is not None
        return frozenset({Output.RESULTS, *((Output.WEBHOOK,) if wants_webhook else ())})


def _int_or(text: str | None, fallback: int) -> int:
    return int(text) if text is not None and text.isdigit() else fallback
