"""The Azure OpenAI client against a scripted in-process HTTP server (real aiohttp on loopback).

Sleeps are recorded, not slept, so retry timing is asserted exactly and the tests stay fast.
"""

from __future__ import annotations

import base64
import inspect
import io
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from imagegen.adapters.azure_openai import AzureOpenAIImages
from imagegen.domain.catalog import ApiStyle, model_entry
from imagegen.domain.errors import (
    ContentFiltered,
    InvalidRequest,
    UpstreamError,
    UpstreamThrottled,
    UpstreamTimeout,
)
from imagegen.domain.pricing import Usage
from imagegen.domain.requests import FLUX_1_1_PRO, GPT_IMAGE_2, ImageRequest
from imagegen.domain.settings import Settings, StorageSettings
from imagegen.edges.http_api import error_response


def _png(width: int = 32, height: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


Handler = Callable[[web.Request], web.StreamResponse]


class Script:
    """Answers requests in order; records what arrived."""

    def __init__(self) -> None:
        self.answers: list[Handler] = []
        self.seen: list[tuple[str, str, dict[str, str], Any]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.seen.append((request.method, request.path_qs, dict(request.headers), body))
        answer = self.answers.pop(0)(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer


async def _scripted_server() -> AsyncIterator[tuple[TestServer, Script]]:
    script = Script()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    test_server = TestServer(app)
    await test_server.start_server()
    yield test_server, script
    await test_server.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, Script]]:
    async for started in _scripted_server():
        yield started


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def _settings(
    server: TestServer, style: ApiStyle = ApiStyle.DEPLOYMENTS, *, api_key: str | None = "k"
) -> Settings:
    return Settings(
        openai_endpoint=str(server.make_url("")).rstrip("/"),
        api_style=style,
        deployment="dep",
        model="gpt-image-2",
        api_version=_api_version("gpt-image-2", style),
        openai_scope="https://ai.azure.com/.default",
        storage=StorageSettings("http://b", "http://q", connection_string="x"),
        api_key=api_key,
    )


def _client(
    server: TestServer, style: ApiStyle = ApiStyle.DEPLOYMENTS, *, api_key: str | None = "k"
) -> tuple[AzureOpenAIImages, Sleeps]:
    settings = _settings(server, style, api_key=api_key)
    sleeps = Sleeps()

    async def token() -> str:
        return "a-token"

    return AzureOpenAIImages(
        settings, GPT_IMAGE_2, token_provider=None if api_key else token, sleep=sleeps
    ), sleeps


def _api_version(model: str, style: ApiStyle) -> str:
    entry = model_entry(model)
    dialect = entry.dialect(style) if entry else None
    assert dialect is not None
    return dialect.api_version


def ok_images(count: int = 1) -> Handler:
    data = base64.b64encode(_png()).decode()
    return lambda _: web.json_response({"created": 1, "data": [{"b64_json": data}] * count})


def status(code: int, headers: dict[str, str] | None = None, body: Any = None) -> Handler:
    return lambda _: web.json_response(
        body or {"error": {"code": str(code), "message": "x"}}, status=code, headers=headers
    )


REQUEST = ImageRequest(prompt="a red fox", n=2)


def _deadline(seconds: float = 30) -> float:
    return time.monotonic() + seconds


async def test_deployments_dialect_sends_the_azure_request(server: tuple[TestServer, Script]) -> None:
    test_server, script = server
    client, _ = _client(test_server)
    script.answers = [ok_images(2)]
    images = (await client.generate(REQUEST, deadline=_deadline())).images
    await client.close()
    method, path, headers, body = script.seen[0]
    assert (method, path) == (
        "POST",
        "/openai/deployments/dep/images/generations?api-version=2025-04-01-preview",
    )
    assert headers["api-key"] == "k"
    assert body == {"prompt": "a red fox", "n": 2, "size": "1024x1024", "output_format": "png"}
    assert [(i.info.width, i.info.height, i.info.content_type) for i in images] == [(32, 16, "image/png")] * 2


async def test_v1_dialect_puts_the_model_in_the_body_and_uses_entra(
    server: tuple[TestServer, Script],
) -> None:
    test_server, script = server
    client, _ = _client(test_server, ApiStyle.V1, api_key=None)
    script.answers = [ok_images(2)]
    await client.generate(REQUEST, deadline=_deadline())
    await client.close()
    _, path, headers, body = script.seen[0]
    assert path == "/openai/v1/images/generations?api-version=preview"
    assert body["model"] == "dep"
    assert headers["Authorization"] == "Bearer a-token"
    assert "api-key" not in headers


async def test_429_waits_retry_after_ms_then_succeeds(server: tuple[TestServer, Script]) -> None:
    test_server, script = server
    client, sleeps = _client(test_server)
    script.answers = [status(429, {"retry-after": "3", "retry-after-ms": "1500"}), ok_images(2)]
    images = (await client.generate(REQUEST, deadline=_deadline())).images
    await client.close()
    assert len(images) == 2
    assert sleeps.calls == [1.5]


async def test_persistent_429_becomes_throttled_with_retry_after(server: tuple[TestServer, Script]) -> None:
    test_server, script = server
    client, sleeps = _client(test_server)
    script.answers = [status(429, {"retry-after": "2"})] * 6
    with pytest.raises(UpstreamThrottled) as caught:
        await client.generate(REQUEST, deadline=_deadline())
    await client.close()
    assert caught.value.retry_after == 2
    assert sleeps.calls == [2.0] * 5


async def test_429_longer_than_the_deadline_gives_up_at_once(server: tuple[TestServer, Script]) -> None:
    test_server, script = server
    client, sleeps = _client(test_server)
    script.answers = [status(429, {"retry-after": "60"})]
    with pytest.raises(UpstreamThrottled):
        await client.generate(REQUEST, deadline=_deadline(10))
    await client.close()
    assert sleeps.calls == []


@pytest.mark.parametrize("value", ["inf", "nan", "-5", "soon", "1e400"])
async def test_a_retry_after_that_is_not_a_finite_wait_is_ignored(
    server: tuple[TestServer, Script], value: str
) -> None:
    """The wait falls back to our own backoff, and the 503's Retry-After stays a number of seconds."""
    test_server, script = server
    client, sleeps = _client(test_server)
    script.answers = [status(429, {"retry-after": value})] * 6
    with pytest.raises(UpstreamThrottled) as caught:
        await client.generate(REQUEST, deadline=_deadline())
    await client.close()
    assert all(math.isfinite(s) and 0 <= s <= 60 for s in sleeps.calls)
    assert caught.value.retry_after is not None and math.isfinite(caught.value.retry_after)
    assert error_response(caught.value).headers["Retry-After"].isdigit()


async def test_5xx_backs_off_and_then_reports_upstream_error(server: tuple[TestServer, Script]) -> None:
    test_server, script = server
    client, sleeps = _client(test_server)
    script.answers = [status(500), status(503)] * 3
    with pytest.raises(UpstreamError):
        await client.generate(REQUEST, deadline=_deadline())
    await client.close()
    assert len(sleeps.calls) == 5
    assert sleeps.calls == sorted(sleeps.calls) or max(sleeps.calls) <= 8


@pytest.mark.parametrize(
    "body",
    [b"[" * 5000 + b"]" * 5000, b'{"data": [], "created": ' + b"9" * 5000 + b"}", b"\xff{"],
    ids=["nested too deeply", "number too long", "not UTF-8"],
)
async def test_an_answer_python_cannot_parse_is_an_upstream_error(
    server: tuple[TestServer, Script], body: bytes
) -> None:
    test_server, script = server
    client, _ = _client(test_server)
    script.answers = [lambda _: web.Response(body=body, content_type="application/json")]
    with pytest.raises(UpstreamError, match="not JSON"):
        await client.generate(REQUEST, deadline=_deadline())
    await client.close()


async def test_content_policy_violation_carries_the_categories(server: tuple[TestServer, Script]) -> None:
    test_server, script = server
    client, _ = _client(test_server)
    body = {
        "error": {
            "code": "content_policy_violation",
            "message": "blocked",
            "inner_error": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_results": {
                    "violence": {"filtered": True, "severity": "high"},
                    "hate": {"filtered": False, "severity": "safe"},
                },
            },
        }
    }
    script.answers = [status(400, body=body)]
    with pytest.raises(ContentFiltered) as caught:
        await client.generate(REQUEST, deadline=_deadline())
    await client.close()
    assert caught.value.details == {"categories": {"violence": {"filtered": True, "severity": "high"}}}


async def test_other_400_is_the_callers_invalid_request(server: tuple[TestServer, Script]) -> None:
    test_server, script = server
    client, _ = _client(test_server)
    script.answers = [
        status(400, body={"error": {"code": "invalid_value", "message": "bad size", "param": "size"}})
    ]
    with pytest.raises(InvalidRequest) as caught:
        await client.generate(REQUEST, deadline=_deadline())
    await client.close()
    assert caught.value.field == "size"


async def test_a_hang_ends_at_the_deadline(server: tuple[TestServer, Script]) -> None:
    test_server, script = server
    client, _ = _client(test_server)

    async def hang(_: web.Request) -> web.Response:
        import asyncio

        await asyncio.sleep(5)
        return web.Response()

    script.answers = [hang]  # type: ignore[list-item]
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await client.generate(REQUEST, deadline=_deadline(0.5))
    await client.close()
    assert time.monotonic() - started < 2


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[TestServer, Script]]:
    """A second server: another origin than the configured endpoint."""
    async for started in _scripted_server():
        yield started


def _flux_client(server: TestServer) -> AzureOpenAIImages:
    settings = replace(_settings(server), model="flux-1.1-pro", api_version="preview")
    return AzureOpenAIImages(settings, FLUX_1_1_PRO, token_provider=None, sleep=Sleeps())


async def test_flux_answers_a_url_that_is_downloaded_without_credentials(
    server: tuple[TestServer, Script], elsewhere: tuple[TestServer, Script]
) -> None:
    test_server, script = server
    other_server, other_script = elsewhere
    client = _flux_client(test_server)
    result_url = str(other_server.make_url("/results/0.png?sig=abc"))
    script.answers = [lambda _: web.json_response({"created": 1, "data": [{"url": result_url}]})]
    other_script.answers = [lambda _: web.Response(body=_png(64, 48), content_type="image/png")]
    generation = await client.generate(ImageRequest(prompt="a red fox"), deadline=_deadline())
    await client.close()
    _, path, _, body = script.seen[0]
    assert path == "/openai/deployments/dep/images/generations?api-version=preview"
    assert body == {"prompt": "a red fox", "n": 1, "size": "1024x1024"}  # nothing FLUX does not take
    assert "api-key" not in other_script.seen[0][2]  # the result URL is pre-signed
    assert "Authorization" not in other_script.seen[0][2]
    assert (generation.images[0].info.width, generation.images[0].info.height) == (64, 48)
    assert generation.usage is None  # FLUX counts no tokens: priced per image


@pytest.mark.parametrize("api_key", ["k", None], ids=["api-key", "entra-token"])
async def test_credentials_never_follow_a_redirect_to_another_origin(
    server: tuple[TestServer, Script], elsewhere: tuple[TestServer, Script], api_key: str | None
) -> None:
    test_server, script = server
    other_server, other_script = elsewhere
    foreign = str(other_server.make_url("/openai/deployments/dep/images/generations"))
    sync, _ = _client(test_server, api_key=api_key)
    script.answers = [lambda _: web.Response(status=307, headers={"Location": foreign})]
    with pytest.raises(UpstreamError):
        await sync.generate(REQUEST, deadline=_deadline())
    await sync.close()
    assert other_script.seen == []
    assert len(script.seen) == 1


async def test_an_output_image_the_safety_system_withheld_fails_the_job(
    server: tuple[TestServer, Script],
) -> None:
    test_server, script = server
    client, _ = _client(test_server)
    data = base64.b64encode(_png()).decode()
    script.answers = [
        lambda _: web.json_response(
            {
                "data": [
                    {"b64_json": data, "content_filter_results": {}},
                    {"content_filter_results": {"violence": {"filtered": True, "severity": "high"}}},
                ]
            }
        )
    ]
    with pytest.raises(ContentFiltered) as caught:
        await client.generate(REQUEST, deadline=_deadline())
    await client.close()
    assert caught.value.details == {
        "images": [{"index": 1, "categories": {"violence": {"filtered": True, "severity": "high"}}}]
    }


async def test_a_truncated_download_is_fetched_again(server: tuple[TestServer, Script]) -> None:
    test_server, script = server
    client = _flux_client(test_server)
    result_url = str(test_server.make_url("/r.png"))
    whole = _png()
    script.answers = [
        lambda _: web.json_response({"data": [{"url": result_url}]}),
        lambda _: web.Response(body=whole[: len(whole) // 2], content_type="image/png"),
        lambda _: web.Response(body=whole, content_type="image/png"),
    ]
    generation = await client.generate(ImageRequest(prompt="p"), deadline=_deadline())
    assert generation.images[0].data == whole
    script.answers = [lambda _: web.json_response({"data": [{"url": result_url}]})] + [
        lambda _: web.Response(body=whole[:40], content_type="image/png")
    ] * 3
    with pytest.raises(UpstreamError, match="could not be downloaded whole"):
        await client.generate(ImageRequest(prompt="p"), deadline=_deadline())
    await client.close()


async def test_usage_is_read_from_the_answer(server: tuple[TestServer, Script]) -> None:
    test_server, script = server
    client, _ = _client(test_server)
    data = base64.b64encode(_png()).decode()
    usage = {
        "input_tokens": 50,
        "input_tokens_details": {"text_tokens": 40, "image_tokens": 10},
        "output_tokens": 4160,
        "total_tokens": 4210,
    }
    script.answers = [lambda _: web.json_response({"data": [{"b64_json": data}], "usage": usage})]
    generation = await client.generate(REQUEST, deadline=_deadline())
    await client.close()
    assert generation.usage == Usage(text_tokens=40, image_tokens=10, output_tokens=4160)
    assert generation.usage.to_json() == usage


@pytest.mark.parametrize(
    "item", [{"b64_json": "not base64!"}, {"b64_json": "aGVsbG8="}, {"revised_prompt": "x"}]
)
async def test_a_broken_image_entry_is_an_upstream_error(
    server: tuple[TestServer, Script], item: dict[str, str]
) -> None:
    test_server, script = server
    client, _ = _client(test_server)
    script.answers = [lambda _: web.json_response({"created": 1, "data": [item]})]
    with pytest.raises(UpstreamError):
        await client.generate(REQUEST, deadline=_deadline())
    await client.close()
