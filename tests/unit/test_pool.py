"""Throughput under quota, on the in-memory ports: a pool of backends, one budget shared by every
instance, jobs that wait in the queue instead of failing, 429s and 5xx routed around, the deadline.

Time is the fake clock; a delayed message appears when the test advances it (tests/unit/fakes.py).
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from imagegen.core.intake import build_submission
from imagegen.core.service import SLOT_LEAD_SECONDS, ImageService, Submission
from imagegen.core.views import render_job
from imagegen.domain.errors import UpstreamThrottled, UpstreamTimeout, UpstreamUnavailable
from imagegen.domain.jobs import JobStatus
from imagegen.domain.pacing import Lane
from imagegen.domain.settings import QUEUE_IMAGE_JOBS, QUEUE_IMAGE_RESULTS
from imagegen.edges.http_api import job_response
from tests.unit.fakes import ScriptedGenerator, World, deliver_next, fake_settings

JOBS = QUEUE_IMAGE_JOBS
EAST, WEST = "east/gpt-image-2", "west/gpt-image-2"


def pool(*backends: tuple[str, int], **extra: str) -> World:
    """A World whose app has these backends (label, rpm), each with its own scripted model."""
    items = [
        {
            "endpoint": f"https://{label}.openai.azure.com",
            "deployment": "gpt-image-2",
            "rpm": rpm,
            "label": label,
        }
        for label, rpm in backends
    ]
    return World(settings=fake_settings(AZURE_OPENAI_BACKENDS=json.dumps(items), **extra))


class Models:
    def __init__(self, world: World) -> None:
        self.world = world
        self.by_backend = {backend.id: ScriptedGenerator() for backend in world.settings.backends}

    def instance(self, name: str) -> ImageService:
        world = self.world
        return ImageService(
            world.settings,
            self.by_backend,
            world.blobs,
            world.queue,
            webhooks=world.notifier,
            clock=world.clock.now,
            monotonic=world.clock.monotonic,
            instance_id=name,
        )

    def calls(self) -> dict[str, int]:
        return {name: generator.calls for name, generator in self.by_backend.items()}


async def submission(service: ImageService, prompt: str = "a lighthouse at dusk") -> Submission:
    return await build_submission(
        {"prompt": prompt}, rules=service.rules, settings=service.settings, idempotency_key=None
    )


async def run_until_done(world: World, worker: ImageService, *, seconds: float = 600) -> float:
    """Play the host: deliver visible messages, advance the clock to the next one; the elapsed time."""
    elapsed = 0.0
    while elapsed < seconds:
        if world.queue.visible(JOBS):
            await deliver_next(worker, world.queue)
            continue
        pending = world.queue.messages(JOBS)
        if not pending:
            return elapsed
        # To the next message, and on to the start it was delayed for (no worker sleeps for it here).
        step = (min(m.visible_at for m in pending) - world.clock.now()).total_seconds() + SLOT_LEAD_SECONDS
        world.clock.advance(step)
        elapsed += step
    raise AssertionError("jobs were still queued after the time allowed")


def statuses(world: World) -> list[str]:
    return [world.record(job_id)["status"] for job_id in world.job_ids()]


async def test_a_burst_beyond_the_quota_waits_in_the_queue_and_every_job_succeeds_paid_once() -> None:
    world = pool(("east", 12))
    models = Models(world)
    api, worker = models.instance("api"), models.instance("worker")
    jobs = [await api.submit_async(await submission(api, f"job {i}")) for i in range(8)]

    # The first two go at once; the others wait with an estimate and their place in line.
    assert [job.queue_position for job in jobs] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert len(world.queue.visible(JOBS)) == 2
    last = jobs[-1]
    assert last.estimated_start is not None
    assert last.estimated_start - world.clock.now() >= timedelta(seconds=30)
    seen = render_job(await api.view(last), api.settings.api_base)
    assert seen["status"] == "queued" and seen["queue_position"] == 8 and "estimated_start" in seen

    elapsed = await run_until_done(world, worker)

    assert statuses(world) == ["succeeded"] * 8
    assert models.calls() == {EAST: 8}  # one paid generation per job, no 429 spent
    assert elapsed == pytest.approx(3 * 11.0, abs=0.5)  # four windows of two


async def test_two_instances_spend_one_budget() -> None:
    world = pool(("east", 12))
    models = Models(world)
    a, b = models.instance("a"), models.instance("b")
    first = await a.submit_and_wait(await submission(a), wait_seconds=0)
    second = await b.submit_and_wait(await submission(b), wait_seconds=0)
    third = await a.submit_async(await submission(a))
    fourth = await b.submit_and_wait(await submission(b), wait_seconds=1)
    await a.drain()
    await b.drain()
    assert first.status is second.status is JobStatus.RUNNING
    assert third.status is JobStatus.QUEUED and third.queue_position is not None
    # A waiting caller that cannot start within its wait is answered at once, queued, with its
    # estimate; it goes before the queued job that came first.
    assert fourth.status is JobStatus.QUEUED and fourth.queue_position == 1
    assert third.queue_position == 1
    assert (await a.jobs.get(third.id)).queue_position == 1  # recorded at submission
    assert models.calls() == {EAST: 2}


async def test_a_waiting_post_that_cannot_start_answers_202_with_a_retry_after_from_its_estimate() -> None:
    world = pool(("east", 6))
    models = Models(world)
    api = models.instance("api")
    await api.submit_async(await submission(api))
    await deliver_next(api, world.queue)  # spends the window
    job = await api.submit_and_wait(await submission(api), wait_seconds=2)
    assert job.status is JobStatus.QUEUED
    response = await job_response(api, job)
    assert response.status_code == 202
    assert response.headers["Location"].endswith(f"/images/{job.id}")
    assert job.estimated_start is not None
    wait = (job.estimated_start - world.clock.now()).total_seconds()
    assert wait == pytest.approx(11.0, abs=0.1)
    assert response.headers["Retry-After"] == "11"


async def test_a_429_sends_the_job_to_the_other_backend_at_once_and_cools_the_first() -> None:
    world = pool(("east", 60), ("west", 60))
    models = Models(world)
    models.by_backend[EAST].fail_with(UpstreamThrottled("busy", retry_after=20))
    api = models.instance("api")
    job = await api.submit_and_wait(await submission(api), wait_seconds=30)
    assert job.status is JobStatus.SUCCEEDED
    assert models.calls() == {EAST: 1, WEST: 1}
    health = {entry["label"]: entry for entry in await api.backends_health()}
    assert health["east"]["state"] == "cooling" and health["east"]["throttles"] == 1
    # The next job does not try east while it cools.
    await api.submit_and_wait(await submission(api), wait_seconds=30)
    assert models.calls() == {EAST: 1, WEST: 2}


async def test_when_every_backend_throttles_the_job_goes_back_to_the_queue_not_to_failed() -> None:
    world = pool(("east", 60))
    models = Models(world)
    models.by_backend[EAST].fail_with(UpstreamThrottled("busy", retry_after=30))
    api, worker = models.instance("api"), models.instance("worker")
    job = await api.submit_async(await submission(api))
    after_429 = await deliver_next(worker, world.queue)
    assert after_429 is not None and after_429.status is JobStatus.QUEUED
    [message] = world.queue.messages(JOBS)
    assert (message.visible_at - world.clock.now()).total_seconds() == pytest.approx(
        30 - SLOT_LEAD_SECONDS, abs=0.1
    )
    record = world.record(job.id)
    assert record["status"] == "queued" and "lease_until" not in record and record["estimated_start"]
    await run_until_done(world, worker)
    assert world.record(job.id)["status"] == "succeeded"
    assert models.calls() == {EAST: 2}
    assert world.queue.payloads(QUEUE_IMAGE_RESULTS)[-1]["status"] == "succeeded"


async def test_a_backend_answering_5xx_is_routed_around_and_its_circuit_opens() -> None:
    world = pool(("east", 600), ("west", 600))
    models = Models(world)
    for _ in range(3):
        models.by_backend[EAST].fail_with(UpstreamUnavailable("Azure OpenAI answered 500"))
    api = models.instance("api")
    results = []
    for _ in range(6):
        results.append(await api.submit_and_wait(await submission(api), wait_seconds=30))
        world.clock.advance(1)
    assert [job.status for job in results] == [JobStatus.SUCCEEDED] * 6
    assert models.calls()[EAST] == 3  # failed three times, then left alone while its circuit is open
    assert models.calls()[WEST] == 6
    health = {entry["label"]: entry for entry in await api.backends_health()}
    assert health["east"]["state"] == "circuit-open"


async def test_a_timeout_may_have_been_paid_so_the_job_fails_and_is_not_sent_again() -> None:
    world = pool(("east", 600), ("west", 600))
    models = Models(world)
    models.by_backend[EAST].fail_with(UpstreamTimeout("Azure OpenAI did not answer in time"))
    models.by_backend[WEST].fail_with(UpstreamTimeout("Azure OpenAI did not answer in time"))
    api = models.instance("api")
    job = await api.submit_and_wait(await submission(api), wait_seconds=30)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error["code"] == "upstream_timeout"
    assert sum(models.calls().values()) == 1


async def test_a_job_that_can_never_get_a_slot_ends_upstream_throttled_at_its_deadline() -> None:
    world = pool(("east", 60), JOB_DEADLINE_SECONDS="30")
    models = Models(world)
    for _ in range(10):
        models.by_backend[EAST].fail_with(UpstreamThrottled("busy", retry_after=12))
    api, worker = models.instance("api"), models.instance("worker")
    job = await api.submit_async(await submission(api))
    await run_until_done(world, worker, seconds=120)
    record = world.record(job.id)
    assert record["status"] == "failed" and record["error"]["code"] == "upstream_throttled"
    assert "deadline" in record["error"]["message"]
    assert 1 <= models.calls()[EAST] <= 3  # it kept trying until the deadline, paced by the cool-down
    assert world.queue.payloads(QUEUE_IMAGE_RESULTS)[-1]["status"] == "failed"


async def test_a_job_already_past_its_deadline_when_a_waiting_post_arrives_fails_at_once() -> None:
    world = pool(("east", 6), JOB_DEADLINE_SECONDS="5")
    models = Models(world)
    api = models.instance("api")
    await api.submit_and_wait(await submission(api), wait_seconds=30)
    job = await api.submit_and_wait(await submission(api), wait_seconds=30)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error["code"] == "upstream_throttled"
    assert (await job_response(api, job)).status_code == 503


async def test_a_canceled_waiting_job_leaves_the_line() -> None:
    world = pool(("east", 6))
    models = Models(world)
    api = models.instance("api")
    await api.submit_async(await submission(api))
    waiting = await api.submit_async(await submission(api))
    behind = await api.submit_async(await submission(api))
    assert behind.queue_position == 3
    await api.cancel(waiting.id)
    again = await api.pacer.enqueue(behind.id, Lane.QUEUED)
    assert again.position == 2


async def test_with_pacing_off_nothing_is_written_and_429s_are_what_slows_jobs() -> None:
    world = pool(("east", 6), UPSTREAM_PACING="off")
    models = Models(world)
    api = models.instance("api")
    for _ in range(4):
        await api.submit_and_wait(await submission(api), wait_seconds=30)
    assert models.calls() == {EAST: 4}  # no budget spent ahead: every request goes at once
    assert not any(name.startswith("pacing/") for name in world.blobs.names(world.settings.jobs_container))


async def test_the_pacing_state_is_one_blob_and_an_unreadable_one_starts_afresh() -> None:
    world = pool(("east", 12))
    models = Models(world)
    api = models.instance("api")
    await api.submit_async(await submission(api))
    document = world.blobs.document(world.settings.jobs_container, "pacing/pool.json")
    assert set(document) == {"version", "backends", "waiting"}
    # Someone writes nonsense there: the next instance carries on from a fresh state.
    await world.blobs.replace_json(
        world.settings.jobs_container,
        "pacing/pool.json",
        {"backends": "nonsense"},
        etag=world.blobs.etag(world.settings.jobs_container, "pacing/pool.json"),
    )
    fresh = models.instance("fresh")
    job = await fresh.submit_and_wait(await submission(fresh), wait_seconds=30)
    assert job.status is JobStatus.SUCCEEDED


def test_the_pool_setting_is_checked_field_by_field() -> None:
    from imagegen.domain.errors import SettingsError

    base = [{"endpoint": "https://east.openai.azure.com", "deployment": "gpt-image-2"}]
    cases = {
        "[]": "non-empty",
        "{}": "non-empty",
        "not json": "JSON array",
        json.dumps([{"deployment": "d"}]): "endpoint is required",
        json.dumps([{**base[0], "endpoint": "ftp://x"}]): "https URL",
        json.dumps(
            [base[0], {**base[0], "deployment": "d2", "model": "gpt-image-1.5"}]
        ): "never changes model",
        json.dumps([{**base[0], "rpm": 0}]): "rpm",
        json.dumps([{**base[0], "rpm": True}]): "rpm",
        json.dumps([{**base[0], "priority": 0}]): "priority",
        json.dumps([{**base[0], "api_style": "legacy"}]): "api_style",
        json.dumps([{**base[0], "label": "bad label!"}]): "label",
        json.dumps([{**base[0], "api_key": "sk-..."}]): "unknown field",
        json.dumps(base * 2): "same backend twice",
    }
    for text, problem in cases.items():
        with pytest.raises(SettingsError, match=problem) as raised:
            fake_settings(AZURE_OPENAI_BACKENDS=text)
        assert raised.value.name == "AZURE_OPENAI_BACKENDS"


def test_without_a_pool_the_single_deployment_is_a_pool_of_one_at_the_catalogs_quota() -> None:
    from imagegen.domain.settings import Settings

    settings = Settings.from_env(
        {
            "AZURE_OPENAI_ENDPOINT": "https://one.openai.azure.com",
            "AZURE_OPENAI_DEPLOYMENT": "images",
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        }
    )
    [only] = settings.backends
    assert (only.endpoint, only.deployment, only.model, only.rpm) == (
        "https://one.openai.azure.com",
        "images",
        "gpt-image-2",
        settings.catalog_model.lifecycle.default_rpm,
    )
    assert settings.job_deadline_seconds == 3600 and settings.pacing is True


def test_a_pool_alone_is_enough_and_its_first_backend_is_the_primary() -> None:
    from imagegen.domain.settings import Settings

    settings = Settings.from_env(
        {
            "AZURE_OPENAI_BACKENDS": json.dumps(
                [
                    {
                        "endpoint": "https://a.openai.azure.com/",
                        "deployment": "d1",
                        "label": "swedencentral",
                        "rpm": 9,
                    },
                    {"endpoint": "https://b.openai.azure.com", "deployment": "d2", "priority": 2},
                ]
            ),
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        }
    )
    assert settings.openai_endpoint == "https://a.openai.azure.com" and settings.deployment == "d1"
    assert [b.id for b in settings.backends] == ["swedencentral/d1", "b.openai.azure.com/d2"]
    assert [b.rpm for b in settings.backends] == [9, settings.catalog_model.lifecycle.default_rpm]


async def test_a_lone_backend_that_keeps_failing_ends_the_job_upstream_error_not_waiting() -> None:
    """5xx is failing, not busy: after three in a row, with no other backend free, the job ends (502)
    instead of waiting for the circuit, and no attempt drew anything."""
    world = pool(("east", 600))
    models = Models(world)
    for _ in range(5):
        models.by_backend[EAST].fail_with(UpstreamUnavailable("Azure OpenAI answered 500"))
    api = models.instance("api")
    job = await api.submit_and_wait(await submission(api), wait_seconds=60)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error["code"] == "upstream_error"
    assert models.calls() == {EAST: 3}
    assert (await job_response(api, job)).status_code == 502


async def test_a_failing_backend_beside_a_busy_healthy_one_sends_the_job_to_the_queue_not_to_failed() -> None:
    world = pool(("east", 6), ("west", 600))
    models = Models(world)
    for _ in range(5):
        models.by_backend[WEST].fail_with(UpstreamUnavailable("Azure OpenAI answered 500"))
    api, worker = models.instance("api"), models.instance("worker")
    await api.submit_and_wait(await submission(api), wait_seconds=0)  # spends east's window
    await api.drain()
    job = await api.submit_async(await submission(api))
    await run_until_done(world, worker)
    assert world.record(job.id)["status"] == "succeeded"
    assert models.calls()[WEST] == 3 and models.calls()[EAST] == 2


async def test_a_burst_on_one_instance_shares_pacing_writes() -> None:
    """Changes asked for while a write is out go together in the next one (a group commit)."""
    world = pool(("east", 12))
    models = Models(world)
    api = models.instance("api")
    writes_before = world.blobs.calls["replace_json"] + world.blobs.calls["create_json"]
    submissions = [await submission(api, f"job {i}") for i in range(20)]
    jobs = await asyncio.gather(*(api.submit_async(one) for one in submissions))
    job_writes = 20  # each job record is created once
    pacing_writes = (
        world.blobs.calls["replace_json"] + world.blobs.calls["create_json"] - writes_before - job_writes
    )
    assert 1 <= pacing_writes <= 5
    assert sorted(job.queue_position or 0 for job in jobs) == list(range(1, 21))  # one line, no gaps
