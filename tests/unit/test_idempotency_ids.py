"""Job ids are random; an Idempotency-Key reaches its job through a keyed hash (HMAC with a secret the
app holds), so knowing a key (an order number, a Logic Apps run name) does not give the job's id."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest

from imagegen.core.intake import build_submission
from imagegen.core.service import ImageService, Submission
from imagegen.domain.errors import IdempotencyKeyReused
from imagegen.domain.settings import Settings
from tests.unit.fakes import World, fake_settings

# The formula of the first design, which anyone could compute offline.
OLD_NAMESPACE = uuid.UUID("5b0c7e2a-8f0b-4f0e-9d55-2f6b1f1e9a10")


async def _submission(service: ImageService, prompt: str, key: str, scope: str = "http") -> Submission:
    built = await build_submission(
        {"prompt": prompt}, rules=service.rules, settings=service.settings, idempotency_key=key
    )
    return built if scope == "http" else Submission(**{**built.__dict__, "idempotency_scope": scope})


@pytest.fixture
def world() -> World:
    return World()


async def test_a_keyed_job_id_cannot_be_computed_from_the_key(world: World) -> None:
    service = world.instance("api")
    key = "order-4711"
    job = await service.submit_async(await _submission(service, "a fox", key))
    guessed = str(uuid.uuid5(OLD_NAMESPACE, hashlib.sha256(key.encode()).hexdigest()))
    assert job.id != guessed
    assert uuid.UUID(job.id).version == 4
    stored_names = " ".join(world.blobs.names(world.settings.jobs_container))
    assert hashlib.sha256(key.encode()).hexdigest() not in stored_names
    assert key not in stored_names
    assert key not in str(world.record(job.id))


async def test_the_same_key_and_body_is_the_same_job_even_in_parallel_on_two_instances(world: World) -> None:
    one, two = world.instance("a"), world.instance("b")
    first, second = await asyncio.gather(
        one.submit_async(await _submission(one, "a fox", "k-1")),
        two.submit_async(await _submission(two, "a fox", "k-1")),
    )
    assert first.id == second.id
    assert len(world.job_ids()) == 1


async def test_another_body_with_the_key_is_refused_without_naming_the_job(world: World) -> None:
    service = world.instance("api")
    job = await service.submit_async(await _submission(service, "a fox", "k-2"))
    with pytest.raises(IdempotencyKeyReused) as caught:
        await service.submit_async(await _submission(service, "two foxes", "k-2"))
    assert job.id not in str(caught.value.to_json())


async def test_http_and_queue_keys_are_separate_spaces(world: World) -> None:
    service = world.instance("api")
    over_http = await service.submit_async(await _submission(service, "a fox", "shared"))
    from_queue = await service.submit_async(await _submission(service, "a fox", "shared", scope="queue"))
    assert over_http.id != from_queue.id


async def test_two_apps_with_different_secrets_map_one_key_to_different_records() -> None:
    def app(secret: str) -> World:
        settings = fake_settings()
        return World(settings=Settings(**{**settings.__dict__, "idempotency_secret": secret}))

    names = []
    for secret in ("s" * 32, "t" * 32):
        world = app(secret)
        service = world.instance("api")
        await service.submit_async(await _submission(service, "a fox", "same-key"))
        names.append(
            {n for n in world.blobs.names(world.settings.jobs_container) if n.startswith("idempotency/")}
        )
    assert names[0] and names[1] and names[0].isdisjoint(names[1])
