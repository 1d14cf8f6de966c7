"""Keyless callers with App Service Authentication: each caller sees and cancels only its own jobs,
and keeps its own idempotency keys; without Easy Auth, principal headers a client sends mean nothing."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest

from imagegen.domain.settings import Settings
from imagegen.edges.context import HandlerContext
from imagegen.edges.http_api import cancel_image, create_image, get_image
from tests.unit.fakes import World, fake_settings

ALICE = {
    "X-MS-CLIENT-PRINCIPAL-ID": "11111111-aaaa-4aaa-8aaa-000000000001",
    "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
}
BOB = {"X-MS-CLIENT-PRINCIPAL-ID": "22222222-bbbb-4bbb-8bbb-000000000002", "X-MS-CLIENT-PRINCIPAL-IDP": "aad"}


def _world(easy_auth: bool) -> World:
    settings = fake_settings()
    return World(settings=Settings(**{**settings.__dict__, "easy_auth": easy_auth}))


def _context(world: World) -> HandlerContext:
    service = world.instance("api")
    return HandlerContext(settings=lambda: world.settings, service=lambda: service)


async def _post(context: HandlerContext, headers: dict[str, str], **extra: str) -> func.HttpResponse:
    request = func.HttpRequest(
        "POST",
        "https://app.example/api/images",
        headers={"Content-Type": "application/json", "Prefer": "respond-async", **headers, **extra},
        body=json.dumps({"prompt": "a fox"}).encode(),
    )
    return await create_image(request, context)


async def _job(
    context: HandlerContext, method: str, job_id: str, headers: dict[str, str]
) -> func.HttpResponse:
    request = func.HttpRequest(
        method,
        f"https://app.example/api/images/{job_id}",
        headers=headers,
        body=b"",
        route_params={"id": job_id},
    )
    handler = get_image if method == "GET" else cancel_image
    return await handler(request, context)


def _body(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


async def test_with_easy_auth_a_request_without_a_caller_is_401() -> None:
    response = await _post(_context(_world(easy_auth=True)), {})
    assert response.status_code == 401
    assert _body(response)["error"]["code"] == "unauthorized"


async def test_with_easy_auth_another_callers_job_is_not_found_for_reading_or_canceling() -> None:
    world = _world(easy_auth=True)
    context = _context(world)
    created = await _post(context, ALICE)
    assert created.status_code == 202
    job_id = _body(created)["id"]
    assert world.record(job_id)["owner"] == ALICE["X-MS-CLIENT-PRINCIPAL-ID"]
    assert (await _job(context, "GET", job_id, ALICE)).status_code == 202
    for method in ("GET", "DELETE"):
        response = await _job(context, method, job_id, BOB)
        assert response.status_code == 404, method
        assert _body(response)["error"]["code"] == "not_found"
    assert world.record(job_id)["status"] == "queued"  # Bob's DELETE changed nothing
    assert (await _job(context, "DELETE", job_id, ALICE)).status_code == 200


async def test_with_easy_auth_idempotency_keys_belong_to_their_caller() -> None:
    context = _context(_world(easy_auth=True))
    alice = await _post(context, ALICE, **{"Idempotency-Key": "order-1"})
    bob = await _post(context, BOB, **{"Idempotency-Key": "order-1"})
    again = await _post(context, ALICE, **{"Idempotency-Key": "order-1"})
    assert _body(alice)["id"] != _body(bob)["id"]
    assert _body(again)["id"] == _body(alice)["id"]


@pytest.mark.parametrize("forged", [ALICE, {"x-ms-client-principal-id": "admin"}])
async def test_without_easy_auth_a_forged_principal_header_is_ignored(forged: dict[str, str]) -> None:
    world = _world(easy_auth=False)
    context = _context(world)
    job_id = _body(await _post(context, forged))["id"]
    assert world.record(job_id).get("owner") is None
    assert (await _job(context, "GET", job_id, {})).status_code == 202  # a key holder sees it


async def test_a_caller_over_its_daily_image_limit_gets_429_with_retry_after_and_others_do_not() -> None:
    settings = fake_settings()
    world = World(settings=Settings(**{**settings.__dict__, "easy_auth": True, "caller_daily_images": 3}))
    context = _context(world)
    for _ in range(3):
        assert (await _post(context, ALICE)).status_code == 202
    refused = await _post(context, ALICE)
    assert refused.status_code == 429
    assert _body(refused)["error"]["code"] == "caller_limit_reached"
    assert 0 < int(refused.headers["Retry-After"]) <= 24 * 3600
    assert len(world.job_ids()) == 3  # the refused request made no job
    assert (await _post(context, BOB)).status_code == 202  # the limit is per caller


def test_the_daily_limit_is_a_setting() -> None:
    base = {
        "AZURE_OPENAI_ENDPOINT": "https://my-aoai.openai.azure.com/",
        "AZURE_OPENAI_DEPLOYMENT": "gpt-image-2",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    }
    assert Settings.from_env(base).caller_daily_images is None
    assert Settings.from_env({**base, "CALLER_DAILY_IMAGES": "50"}).caller_daily_images == 50
