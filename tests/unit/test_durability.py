"""The durability rules of docs/architecture.md and docs/decisions.md ("Durable jobs"), on in-memory
ports with the real ETag and visibility semantics (tests/unit/fakes.py).

Several ImageService instances on one World are instances of one function app sharing its storage
account; the test plays the Functions host with `deliver_next`. Time is a fake clock: leases lapse
and delayed messages appear when a test advances it, never by waiting.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

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
from imagegen.domain.jobs import Job, JobStatus, StoredImage, VersionedJob
from imagegen.domain.messages import JobMessage
from imagegen.domain.requests import ImageRequest
from imagegen.domain.settings import QUEUE_IMAGE_JOBS, QUEUE_IMAGE_RESULTS
from tests.unit.fakes import (
    LEASE_SECONDS,
    START,
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
        api_base=None,
    )
    return dataclasses.replace(built, callback_url=callback_url) if callback_url else built


async def user_sees(service: ImageService, job_id: str) -> dict[str, Any]:
    """The job JSON a GET answers."""
    return render_job(await service.view(await service.jobs.get(job_id)), None)


def published(world: World) -> list[dict[str, Any]]:
    return world.queue.payloads(RESULTS)


def published_statuses(world: World) -> list[str]:
    return [result["status"] for result in published(world)]


def only_job_id(world: World) -> str:
    [job_id] = world.job_ids()
    return job_id


def on(queue: str) -> Callable[[str], bool]:
    return lambda name: name == queue


# --- leases: two workers, one job ----------------------------------------------------------------


@pytest.mark.parametrize(
    "carried", [True, False], ids=["message-carries-the-record", "message-has-only-the-id"]
)
async def test_two_workers_racing_for_one_job_run_it_once_and_the_loser_requeues_it(
    world: World, carried: bool
) -> None:
    api, first, second = world.instance("api"), world.instance("worker-1"), world.instance("worker-2")
    job = await api.submit_async(await submission(api))
    received = world.queue.receive(JOBS)
    assert received is not None
    message = JobMessage.parse(received.text)
    assert message is not None and message.carried is not None  # respond-async carries its record
    sent = message.carried if carried else None
    world.queue.complete(received)  # two deliveries of the job race (e.g. a redelivery and a re-check)

    world.generator.hold()  # the winner's generation stays in flight until the loser is back
    one = asyncio.ensure_future(first.handle_job_message(job.id, sent))
    two = asyncio.ensure_future(second.handle_job_message(job.id, sent))
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
    assert published_statuses(world) == ["succeeded"]
    assert sum(world.blobs.uploads.values()) == 1

    # The re-queued check comes back later, finds the job done, changes nothing and runs nothing.
    etag = world.etag(job.id)
    world.clock.advance(requeued.delay_seconds)
    again = await deliver_next(second, world.queue)
    assert again is not None and again.status is JobStatus.SUCCEEDED
    assert world.generator.calls == 1
    assert world.etag(job.id) == etag
    assert world.queue.messages(JOBS) == []


# --- carried records: stale and forged ------------------------------------------------------------


async def test_a_stale_carried_record_never_runs_a_job_canceled_since(world: World) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api))
    await api.cancel(job.id)  # the message still carries the queued record and its old ETag
    etag = world.etag(job.id)

    handled = await deliver_next(worker, world.queue)

    assert handled is not None and handled.status is JobStatus.CANCELED
    assert world.generator.calls == 0
    assert world.blobs.calls["upload"] == 0
    assert world.etag(job.id) == etag and world.record(job.id)["status"] == "canceled"
    assert published_statuses(world) == ["canceled"]
    assert world.queue.messages(JOBS) == []


async def test_a_redelivered_message_never_runs_a_finished_job_again(world: World) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api))
    [message] = world.queue.messages(JOBS)
    assert (await deliver_next(worker, world.queue)) is not None
    etag, seen = world.etag(job.id), await user_sees(api, job.id)

    parsed = JobMessage.parse(message.text)  # the same message, delivered once more
    assert parsed is not None and parsed.carried is not None
    again = await world.instance("worker-2").handle_job_message(parsed.job_id, parsed.carried)

    assert again is not None and again.status is JobStatus.SUCCEEDED
    assert world.generator.calls == 1
    assert world.etag(job.id) == etag
    assert await user_sees(api, job.id) == seen


def _forged_prompt(stored: VersionedJob, other: VersionedJob) -> VersionedJob:
    forged = dataclasses.replace(stored.job, request=ImageRequest(prompt="a forged prompt", n=3))
    return VersionedJob(forged, '"0xF0F0F0"')


def _forged_other_job(stored: VersionedJob, other: VersionedJob) -> VersionedJob:
    return other  # another job's real record and ETag, under this job's id


def _forged_status(stored: VersionedJob, other: VersionedJob) -> VersionedJob:
    return VersionedJob(dataclasses.replace(stored.job, status=JobStatus.QUEUED, attempts=0), '"0xBAD"')


def _forged_finished(stored: VersionedJob, other: VersionedJob) -> VersionedJob:
    image = StoredImage(0, "elsewhere/0.png", "image/png", 8, 8, 100)
    finished = stored.job.leased("x", START, START).succeeded((image,), START)
    return VersionedJob(dataclasses.replace(finished, attempts=0), stored.etag)


FORGERIES = {
    "other-request-made-up-etag": _forged_prompt,
    "another-jobs-record-and-etag": _forged_other_job,
    "claims-queued-made-up-etag": _forged_status,
    "claims-succeeded-current-etag": _forged_finished,
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
async def test_a_forged_carried_record_runs_only_what_the_stored_record_says(
    world: World, forge: Callable[[VersionedJob, VersionedJob], VersionedJob]
) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api, key="job"))
    other = await api.submit_async(await submission(api, "a quiet harbour at dawn", key="other"))
    stored, other_stored = await api.jobs.read(job.id), await api.jobs.read(other.id)

    final = await worker.handle_job_message(job.id, forge(stored, other_stored))

    assert final is not None and final.status is JobStatus.SUCCEEDED
    assert world.generator.requests == [stored.job.request]  # the stored prompt, n=1: nothing forged ran
    record = world.record(job.id)
    assert record["request"] == stored.job.request.to_record()
    assert len(record["images"]) == 1
    assert world.etag(other.id) == other_stored.etag  # the other job was not touched
    assert world.record(other.id)["status"] == "queued"


async def test_a_forged_carried_record_never_runs_a_job_the_stored_record_says_is_over(world: World) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api))
    queued = await api.jobs.read(job.id)
    await api.cancel(job.id)
    etag = world.etag(job.id)
    forged = VersionedJob(
        dataclasses.replace(queued.job, request=ImageRequest(prompt="run me anyway")), etag + "x"
    )

    final = await worker.handle_job_message(job.id, forged)

    assert final is not None and final.status is JobStatus.CANCELED
    assert world.generator.calls == 0
    assert world.etag(job.id) == etag


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
    etag = world.etag(answer.id)
    with pytest.raises(JobConflict) as conflict:
        await api.cancel(answer.id)
    publishing.release()
    await api.drain()

    assert answer.status is JobStatus.SUCCEEDED
    assert conflict.value.http_status == 409 and conflict.value.details == {"status": "succeeded"}
    assert world.etag(answer.id) == etag and world.record(answer.id)["status"] == "succeeded"
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
    assert published_statuses(world) == ["succeeded"]
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
    await settle(lambda: world.blobs.calls["read_json"] == 1 and world.clock.sleepers == 2)  # polling

    world.generator.release()
    answer = await soon(first)
    world.clock.advance(0.1)
    duplicate = await soon(second)
    await one.drain()

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

    assert refused.value.http_status == 422 and refused.value.details == {"job_id": first.id}
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


async def test_a_poisoned_message_leaves_a_finished_job_as_it_is(world: World) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api))
    await deliver_next(worker, world.queue)
    etag, seen = world.etag(job.id), await user_sees(api, job.id)

    final = await worker.handle_poisoned_job_message(job.id, 5)

    assert final is not None and final.status is JobStatus.SUCCEEDED
    assert world.etag(job.id) == etag
    assert await user_sees(api, job.id) == seen
    assert published(world) == [seen, seen]  # published again, unchanged (at least once)


# --- publishing is at least once ------------------------------------------------------------------


async def test_a_failed_publish_from_the_queue_keeps_the_message_and_the_retry_publishes_the_job(
    world: World,
) -> None:
    api, first, second = world.instance("api"), world.instance("worker-1"), world.instance("worker-2")
    job = await api.submit_async(await submission(api, n=2))
    world.queue.fail_next("send", StorageError("Queue Storage is unavailable"), where=on(RESULTS))

    with pytest.raises(StorageError):  # the trigger raises: the host keeps the message and retries
        await deliver_next(first, world.queue)
    assert world.record(job.id)["status"] == "succeeded" and published(world) == []
    assert len(world.queue.messages(JOBS)) == 1
    etag, uploads = world.etag(job.id), dict(world.blobs.uploads)

    await deliver_next(second, world.queue)

    assert published(world) == [await user_sees(api, job.id)]  # the job exactly as stored
    assert world.etag(job.id) == etag and dict(world.blobs.uploads) == uploads
    assert world.generator.calls == 1
    assert world.queue.messages(JOBS) == []


async def test_a_failed_publish_of_an_inline_job_leaves_its_backing_message_to_publish_later(
    world: World,
) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    world.queue.fail_next("send", StorageError("Queue Storage is unavailable"), where=on(RESULTS))

    answer = await api.submit_and_wait(await submission(api), wait_seconds=60)
    await api.drain()  # the run returns without raising; its message stays

    assert answer.status is JobStatus.SUCCEEDED and published(world) == []
    assert world.queue.calls["delete"] == 0 and len(world.queue.messages(JOBS)) == 1
    world.clock.advance(LEASE_SECONDS + GRACE_MARGIN_SECONDS)
    await deliver_next(worker, world.queue)
    assert published(world) == [await user_sees(api, answer.id)]
    assert world.generator.calls == 1
    assert world.queue.messages(JOBS) == []


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
    world.blobs.fail_next("create_json", StorageError("Blob Storage is unavailable"))

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
async def test_a_finished_job_stays_as_stored_whatever_reaches_it(world: World, status: JobStatus) -> None:
    api, worker = world.instance("api"), world.instance("worker")
    job = await api.submit_async(await submission(api))
    [message] = world.queue.messages(JOBS)
    if status is JobStatus.CANCELED:
        await api.cancel(job.id)
        world.queue.complete(message)
    else:
        if status is JobStatus.FAILED:
            world.generator.fail_with(UpstreamError("the model failed"))
        await deliver_next(worker, world.queue)
    etag, seen = world.etag(job.id), await user_sees(api, job.id)
    assert seen["status"] == status.value
    parsed = JobMessage.parse(message.text)
    assert parsed is not None

    with pytest.raises(JobConflict):
        await api.cancel(job.id)
    await worker.handle_job_message(job.id, parsed.carried)  # its old message, redelivered
    await worker.handle_job_message(job.id)
    await worker.handle_poisoned_job_message(job.id, 5)

    assert world.etag(job.id) == etag
    assert await user_sees(api, job.id) == seen
    assert world.generator.calls == (0 if status is JobStatus.CANCELED else 1)
    assert set(published_statuses(world)) == {status.value}
