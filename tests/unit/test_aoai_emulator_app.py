"""Azure OpenAI emulator HTTP behaviour, in-process with aiohttp's test client."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from devtools.aoai_emulator.app import STATE_KEY, create_app
from devtools.aoai_emulator.state import Config

KEY = "unit-test-key"
AUTH = {"api-key": KEY}
DEPLOY = "/openai/deployments/{}/images/generations?api-version=2025-04-01-preview"
FLUX_DEPLOY = "/openai/deployments/{}/images/generations?api-version=preview"  # as the FLUX docs call it
V1 = "/openai/v1/images/generations?api-version=preview"
SUBMIT = "/openai/images/generations:submit?api-version=2023-06-01-preview"


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    config = Config(
        latency_seconds=0, legacy_queue_seconds=0.05, legacy_latency_seconds=0.05, retry_after_seconds=0.5
    )
    async with TestClient(TestServer(create_app(config, api_key=KEY))) as test_client:
        yield test_client


async def _json(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = await response.json()
    return body


async def _configure(client: TestClient[Any, Any], **patch: Any) -> None:
    response = await client.post("/_emulator/config", json=patch)
    assert response.status == 200, await response.text()


async def test_gpt_image_answers_b64_png_and_usage(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        DEPLOY.format("gpt-image-1.5"), json={"prompt": "a fox", "n": 2, "size": "1536x1024"}, headers=AUTH
    )
    assert response.status == 200
    for header in ("apim-request-id", "x-request-id", "x-ms-region"):
        assert response.headers[header]
    body = await _json(response)
    assert set(body) == {"created", "data", "usage"}
    pictures = [base64.b64decode(item["b64_json"]) for item in body["data"]]
    assert pictures[0] != pictures[1]
    for picture in pictures:
        with Image.open(io.BytesIO(picture)) as image:
            assert (image.format, image.size) == ("PNG", (1536, 1024))
    assert body["usage"]["total_tokens"] > 0
    assert "revised_prompt" not in body["data"][0]


async def test_gpt_image_output_format_webp_is_refused_as_on_azure(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        DEPLOY.format("gpt-image-2"), json={"prompt": "a fox", "output_format": "webp"}, headers=AUTH
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "output_format")


async def test_gpt_image_2_answers_a_free_size_and_refuses_one_outside_its_rule(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post(
        DEPLOY.format("gpt-image-2"), json={"prompt": "a fox", "size": "2048x1152"}, headers=AUTH
    )
    body = await _json(response)
    with Image.open(io.BytesIO(base64.b64decode(body["data"][0]["b64_json"]))) as image:
        assert image.size == (2048, 1152)
    assert body["usage"]["output_tokens"] > 4160  # more pixels than 1024x1024 at high quality
    refused = await client.post(
        DEPLOY.format("gpt-image-2"), json={"prompt": "a fox", "size": "1000x1000"}, headers=AUTH
    )
    assert refused.status == 400
    assert "multiples of 16" in (await refused.json())["error"]["message"]


def _path(client: TestClient[Any, Any], url: str) -> str:
    return url.split(str(client.server.port), 1)[1]


@pytest.mark.parametrize(
    ("deployment", "size"), [("FLUX-1.1-pro", "1440x1152"), ("FLUX.1-Kontext-pro", "1344x576")]
)
async def test_flux_answers_one_png_url_that_downloads_without_auth(
    client: TestClient[Any, Any], deployment: str, size: str
) -> None:
    response = await client.post(
        FLUX_DEPLOY.format(deployment),
        json={"prompt": "a fox", "n": 1, "size": size, "model": "ignored", "user": "u1"},
        headers=AUTH,
    )
    assert response.status == 200, await response.text()
    body = await _json(response)
    assert set(body) == {"created", "data"}  # no usage
    assert isinstance(body["created"], int)
    [item] = body["data"]
    assert set(item) == {"url"}  # no b64_json, no revised_prompt
    download = await client.get(_path(client, item["url"]))
    assert download.status == 200
    assert download.content_type == "image/png"
    width, height = (int(edge) for edge in size.split("x"))
    with Image.open(io.BytesIO(await download.read())) as image:
        assert (image.format, image.size) == ("PNG", (width, height))


async def test_flux_defaults_to_1024_square_and_answers_jpeg_on_request(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        FLUX_DEPLOY.format("FLUX-1.1-pro"), json={"prompt": "a fox", "output_format": "jpeg"}, headers=AUTH
    )
    url = (await _json(response))["data"][0]["url"]
    assert ".jpg?" in url
    download = await client.get(_path(client, url))
    assert download.content_type == "image/jpeg"
    with Image.open(io.BytesIO(await download.read())) as image:
        assert (image.format, image.size) == ("JPEG", (1024, 1024))


@pytest.mark.parametrize("deployment", ["FLUX-1.1-pro", "FLUX.1-Kontext-pro"])
async def test_flux_refuses_more_than_one_image_on_both_sync_paths(
    client: TestClient[Any, Any], deployment: str
) -> None:
    for path, body in (
        (FLUX_DEPLOY.format(deployment), {"prompt": "p", "n": 2}),
        (V1, {"model": deployment, "prompt": "p", "n": 2}),
    ):
        response = await client.post(path, json=body, headers=AUTH)
        assert response.status == 400
        error = (await _json(response))["error"]
        assert (error["code"], error["param"], error["type"]) == (
            "integer_above_max_value",
            "n",
            "invalid_request_error",
        )
    assert (await _json(await client.get("/_emulator/stats")))["paid_generations"] == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("quality", "high"),
        ("background", "opaque"),
        ("style", "vivid"),
        ("response_format", "url"),
        ("output_compression", 50),
        ("moderation", "low"),
        ("seed", 7),
    ],
)
async def test_flux_refuses_parameters_it_does_not_know(
    client: TestClient[Any, Any], name: str, value: object
) -> None:
    response = await client.post(
        FLUX_DEPLOY.format("FLUX.1-Kontext-pro"), json={"prompt": "p", name: value}, headers=AUTH
    )
    assert response.status == 400
    error = (await _json(response))["error"]
    assert (error["code"], error["param"]) == ("unknown_parameter", name)
    assert name in error["message"]


@pytest.mark.parametrize(
    ("deployment", "size", "rule"),
    [
        ("FLUX-1.1-pro", "1000x1000", "multiples of 32"),
        ("FLUX-1.1-pro", "1472x1024", "between 256 and 1440"),
        ("FLUX-1.1-pro", "1440x1440", "at most 1,677,721 (1.6 MP)"),
        ("FLUX.1-Kontext-pro", "1280x1024", "at most 1,048,576 (1 MP)"),
        ("FLUX.1-Kontext-pro", "1440x544", "21:9"),
        ("FLUX.1-Kontext-pro", "auto", "WIDTHxHEIGHT"),
    ],
)
async def test_flux_size_outside_its_rule_names_the_rule(
    client: TestClient[Any, Any], deployment: str, size: str, rule: str
) -> None:
    response = await client.post(
        FLUX_DEPLOY.format(deployment), json={"prompt": "p", "size": size}, headers=AUTH
    )
    assert response.status == 400
    error = (await _json(response))["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "size")
    assert rule in error["message"]


async def test_flux_prompt_limit_is_5000_estimated_tokens(client: TestClient[Any, Any]) -> None:
    ok = await client.post(FLUX_DEPLOY.format("FLUX-1.1-pro"), json={"prompt": "x" * 20_000}, headers=AUTH)
    assert ok.status == 200
    long = await client.post(FLUX_DEPLOY.format("FLUX-1.1-pro"), json={"prompt": "x" * 20_001}, headers=AUTH)
    error = (await _json(long))["error"]
    assert (long.status, error["code"], error["param"]) == (400, "string_above_max_length", "prompt")
    assert "5000 tokens" in error["message"]


async def test_flux_on_the_v1_path_and_under_quota_faults_and_filter(client: TestClient[Any, Any]) -> None:
    v1 = await client.post(V1, json={"model": "FLUX.1-Kontext-pro", "prompt": "a fox"}, headers=AUTH)
    assert v1.status == 200
    assert set((await _json(v1))["data"][0]) == {"url"}
    filtered = await client.post(
        FLUX_DEPLOY.format("FLUX-1.1-pro"), json={"prompt": "forbidden"}, headers=AUTH
    )
    assert (await _json(filtered))["error"]["code"] == "content_policy_violation"
    await client.post("/_emulator/faults", json={"kind": "503", "deployment": "FLUX-1.1-pro"})
    unavailable = await client.post(FLUX_DEPLOY.format("FLUX-1.1-pro"), json={"prompt": "p"}, headers=AUTH)
    assert unavailable.status == 503
    await _configure(client, requests_per_minute=6)  # one request per 10 s
    assert (
        await client.post(FLUX_DEPLOY.format("FLUX-1.1-pro"), json={"prompt": "p"}, headers=AUTH)
    ).status == 200
    throttled = await client.post(FLUX_DEPLOY.format("FLUX-1.1-pro"), json={"prompt": "p"}, headers=AUTH)
    assert throttled.status == 429
    await _configure(client, requests_per_minute=None, filter_output_index=0)
    [item] = (
        await _json(await client.post(V1, json={"model": "FLUX-1.1-pro", "prompt": "p"}, headers=AUTH))
    )["data"]
    assert "url" not in item
    assert item["content_filter_results"]["violence"]["filtered"] is True


RETIRED = [("gpt-image-1", "2026-10-23"), ("dall-e-3", "2026-03-04"), ("dall-e-2", "2025-01-27")]


@pytest.mark.parametrize(("model", "retired"), RETIRED)
async def test_retired_models_answer_410_on_both_sync_paths(
    client: TestClient[Any, Any], model: str, retired: str
) -> None:
    await client.post("/_emulator/faults", json={"kind": "500", "scope": "generate"})
    for path, body in ((DEPLOY.format(model), {"prompt": "p"}), (V1, {"model": model, "prompt": "p"})):
        response = await client.post(path, json=body, headers=AUTH)
        assert response.status == 410
        assert response.headers["apim-request-id"]
        error = (await _json(response))["error"]
        assert error["code"] == "ModelRetired"
        assert model in error["message"]
        assert retired in error["message"]
        assert "gpt-image-2" in error["message"]
    log = (await _json(await client.get("/_emulator/requests")))["requests"]
    assert [(e["status"], e["model"], e["paid"], e["fault"]) for e in log] == [(410, model, False, None)] * 2
    # Not paid, no fault used up: the scripted 500 still fires on the next live call.
    assert (await client.post(DEPLOY.format("gpt-image-2"), json={"prompt": "p"}, headers=AUTH)).status == 500


async def test_retired_deployment_under_another_name_and_before_validation(
    client: TestClient[Any, Any],
) -> None:
    await _configure(client, deployments={"pictures": "DALL-E-3", "live": "gpt-image-1.5"})
    response = await client.post(DEPLOY.format("pictures"), json={"n": 99, "colour": "red"}, headers=AUTH)
    assert response.status == 410
    assert "2026-03-04" in (await _json(response))["error"]["message"]
    assert (await client.post(DEPLOY.format("live"), json={"prompt": "p"}, headers=AUTH)).status == 200


async def test_legacy_submit_still_serves_dall_e_2_while_its_deployment_is_retired(
    client: TestClient[Any, Any],
) -> None:
    assert (await client.post(DEPLOY.format("dall-e-2"), json={"prompt": "p"}, headers=AUTH)).status == 410
    submit = await client.post(SUBMIT, json={"prompt": "a fox", "size": "256x256"}, headers=AUTH)
    assert submit.status == 202
    done = await _poll_until_done(client, submit.headers["operation-location"])
    assert done["status"] == "succeeded"
    download = await client.get(_path(client, done["result"]["data"][0]["url"]))
    with Image.open(io.BytesIO(await download.read())) as image:
        assert (image.format, image.size) == ("PNG", (256, 256))
    models = [
        e["model"] for e in (await _json(await client.get("/_emulator/requests?dialect=legacy")))["requests"]
    ]
    assert set(models) == {"dall-e-2"}


async def test_usage_follows_the_model_default_quality(client: TestClient[Any, Any]) -> None:
    tokens = {}
    for deployment in ("gpt-image-2", "gpt-image-1.5", "gpt-image-1-mini"):
        response = await client.post(DEPLOY.format(deployment), json={"prompt": "a" * 40}, headers=AUTH)
        usage = (await _json(response))["usage"]
        assert usage["input_tokens_details"] == {"image_tokens": 0, "text_tokens": 10}
        tokens[deployment] = usage["output_tokens"]
    assert tokens == {"gpt-image-2": 4160, "gpt-image-1.5": 4160, "gpt-image-1-mini": 1056}


async def test_v1_dialect_takes_the_deployment_from_model(client: TestClient[Any, Any]) -> None:
    response = await client.post(V1, json={"model": "gpt-image-1-mini", "prompt": "p", "n": 3}, headers=AUTH)
    assert response.status == 200
    assert len((await _json(response))["data"]) == 3
    missing = await client.post("/openai/v1/images/generations", json={"prompt": "p"}, headers=AUTH)
    assert (await _json(missing))["error"]["param"] == "model"
    unknown = await client.post(
        "/openai/v1/images/generations", json={"model": "nope", "prompt": "p"}, headers=AUTH
    )
    assert unknown.status == 404
    assert (await _json(unknown))["error"]["code"] == "DeploymentNotFound"


async def test_unknown_deployment_and_missing_api_version(client: TestClient[Any, Any]) -> None:
    unknown = await client.post(DEPLOY.format("nope"), json={"prompt": "p"}, headers=AUTH)
    assert unknown.status == 404
    assert (await _json(unknown))["error"]["code"] == "DeploymentNotFound"
    no_version = await client.post(
        "/openai/deployments/gpt-image-2/images/generations", json={"prompt": "p"}, headers=AUTH
    )
    assert no_version.status == 404
    assert (await _json(no_version))["error"] == {"code": "404", "message": "Resource not found"}


async def test_unauthenticated_calls_get_401_before_anything_else(client: TestClient[Any, Any]) -> None:
    response = await client.post(DEPLOY.format("nope"), json={"prompt": "p"})
    assert response.status == 401
    assert (await _json(response))["error"]["code"] == "401"


async def test_prompt_content_filter_sync_shape(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        DEPLOY.format("gpt-image-2"), json={"prompt": "something forbidden"}, headers=AUTH
    )
    assert response.status == 400
    error = (await _json(response))["error"]
    assert error["code"] == "content_policy_violation"
    assert error["param"] == "prompt"
    assert error["type"] == "invalid_request_error"
    assert error["inner_error"]["code"] == "ResponsibleAIPolicyViolation"
    results = error["inner_error"]["content_filter_results"]
    assert results["violence"] == {"filtered": True, "severity": "high"}
    assert results["hate"] == {"filtered": False, "severity": "safe"}
    stats = await _json(await client.get("/_emulator/stats"))
    assert stats["paid_generations"] == 0


async def test_filtered_output_index_sync(client: TestClient[Any, Any]) -> None:
    await _configure(client, filter_output_index=1)
    response = await client.post(DEPLOY.format("gpt-image-1.5"), json={"prompt": "p", "n": 3}, headers=AUTH)
    data = (await _json(response))["data"]
    assert "b64_json" in data[0]
    assert "b64_json" not in data[1]
    assert "url" not in data[1]
    assert data[1]["content_filter_results"]["violence"]["filtered"] is True
    assert "b64_json" in data[2]


async def _poll_until_done(client: TestClient[Any, Any], location: str) -> dict[str, Any]:
    path = location.split(str(client.server.port), 1)[1]
    seen: list[str] = []
    for _ in range(100):
        response = await client.get(path, headers=AUTH)
        body = await _json(response)
        seen.append(body["status"])
        if body["status"] in ("succeeded", "failed", "canceled"):
            assert "retry-after" not in response.headers
            body["_seen"] = seen
            return body
        assert response.headers["retry-after"] == "0.5"
        await asyncio.sleep(0.02)
    raise AssertionError(f"operation never finished: {seen}")


async def test_legacy_flow_submit_poll_download(client: TestClient[Any, Any]) -> None:
    submit = await client.post(SUBMIT, json={"prompt": "a fox", "size": "512x512", "n": 2}, headers=AUTH)
    assert submit.status == 202
    submitted = await _json(submit)
    assert submitted["status"] == "notRunning"
    location = submit.headers["operation-location"]
    assert f"/openai/operations/images/{submitted['id']}?api-version=2023-06-01-preview" in location
    done = await _poll_until_done(client, location)
    assert done["status"] == "succeeded"
    assert "running" in done["_seen"]
    assert set(done) - {"_seen"} == {"created", "expires", "id", "result", "status"}
    assert len(done["result"]["data"]) == 2
    download = await client.get(done["result"]["data"][0]["url"].split(str(client.server.port), 1)[1])
    with Image.open(io.BytesIO(await download.read())) as image:
        assert image.size == (512, 512)


async def test_legacy_content_filter_and_filtered_output(client: TestClient[Any, Any]) -> None:
    submit = await client.post(SUBMIT, json={"prompt": "FORBIDDEN things"}, headers=AUTH)
    failed = await _poll_until_done(client, submit.headers["operation-location"])
    assert failed["status"] == "failed"
    assert failed["error"] == {
        "code": "contentFilter",
        "message": "Your task failed as a result of our safety system.",
    }
    await _configure(client, filter_output_index=0)
    submit = await client.post(SUBMIT, json={"prompt": "ok", "n": 2}, headers=AUTH)
    done = await _poll_until_done(client, submit.headers["operation-location"])
    assert done["result"]["data"][0]["error"]["code"] == "contentFilter"
    assert "url" in done["result"]["data"][1]


async def test_legacy_operation_id_is_idempotent(client: TestClient[Any, Any]) -> None:
    headers = {**AUTH, "Operation-Id": "op-123"}
    first = await client.post(SUBMIT, json={"prompt": "p"}, headers=headers)
    second = await client.post(SUBMIT, json={"prompt": "p"}, headers=headers)
    assert (await _json(first))["id"] == (await _json(second))["id"] == "op-123"
    assert first.headers["operation-location"] == second.headers["operation-location"]
    log = (await _json(await client.get("/_emulator/requests?kind=submit")))["requests"]
    assert [entry["paid"] for entry in log] == [True, False]
    assert [entry["operation_id"] for entry in log] == ["op-123", "op-123"]
    assert (await _json(await client.get("/_emulator/stats")))["paid_generations"] == 1


async def test_legacy_delete_cancels(client: TestClient[Any, Any]) -> None:
    await _configure(client, legacy_queue_seconds=60)
    submit = await client.post(SUBMIT, json={"prompt": "p"}, headers=AUTH)
    path = submit.headers["operation-location"].split(str(client.server.port), 1)[1]
    deleted = await client.delete(path, headers=AUTH)
    assert deleted.status == 204
    assert (await _json(await client.get(path, headers=AUTH)))["status"] == "canceled"
    missing = await client.get("/openai/operations/images/nope?api-version=2023-06-01-preview", headers=AUTH)
    assert missing.status == 404


async def test_result_urls_expire_with_403(client: TestClient[Any, Any]) -> None:
    await _configure(client, result_ttl_seconds=0)
    response = await client.post(FLUX_DEPLOY.format("FLUX-1.1-pro"), json={"prompt": "p"}, headers=AUTH)
    url = (await _json(response))["data"][0]["url"]
    download = await client.get(url.split(str(client.server.port), 1)[1])
    assert download.status == 403
    assert "AuthenticationFailed" in await download.text()
    assert (await client.get("/_emulator/results/nothing/0.png")).status == 404


async def test_scripted_429_500_503(client: TestClient[Any, Any]) -> None:
    faults = [{"kind": "429", "retry_after": 1.5}, {"kind": "500"}, {"kind": "503", "retry_after": 2}]
    assert (await client.post("/_emulator/faults", json={"faults": faults})).status == 200
    throttled = await client.post(
        FLUX_DEPLOY.format("FLUX.1-Kontext-pro"), json={"prompt": "p"}, headers=AUTH
    )
    assert throttled.status == 429
    assert throttled.headers["retry-after"] == "2"
    assert throttled.headers["retry-after-ms"] == "1500"
    assert (await _json(throttled))["error"]["code"] == "429"
    failed = await client.post(FLUX_DEPLOY.format("FLUX.1-Kontext-pro"), json={"prompt": "p"}, headers=AUTH)
    assert failed.status == 500
    unavailable = await client.post(
        FLUX_DEPLOY.format("FLUX.1-Kontext-pro"), json={"prompt": "p"}, headers=AUTH
    )
    assert unavailable.status == 503
    assert unavailable.headers["retry-after"] == "2"
    ok = await client.post(FLUX_DEPLOY.format("FLUX.1-Kontext-pro"), json={"prompt": "p"}, headers=AUTH)
    assert ok.status == 200
    statuses = [e["status"] for e in (await _json(await client.get("/_emulator/requests")))["requests"]]
    assert statuses == [429, 500, 503, 200]


LIMIT = "x-ratelimit-limit-requests"
REMAINING = "x-ratelimit-remaining-requests"


def _fake_clock(client: TestClient[Any, Any], start: float = 100.0) -> list[float]:
    """Drive the quota windows from a list cell the test moves (the rest of the app keeps real time)."""
    now = [start]
    app = client.app
    assert app is not None
    app[STATE_KEY].quota.clock = lambda: now[0]
    return now


async def test_rpm_quota_headers_on_200_and_429_and_exact_retry_after(client: TestClient[Any, Any]) -> None:
    now = _fake_clock(client)
    await _configure(client, requests_per_minute=12)  # 2 requests per sliding 10 s
    path = DEPLOY.format("gpt-image-1-mini")
    first = await client.post(path, json={"prompt": "p"}, headers=AUTH)
    assert first.status == 200
    assert (first.headers[LIMIT], first.headers[REMAINING]) == ("2", "1")
    assert "retry-after" not in first.headers
    now[0] = 103.5
    four = await client.post(path, json={"prompt": "p", "n": 4}, headers=AUTH)
    assert four.status == 200
    assert len((await _json(four))["data"]) == 4
    assert (four.headers[LIMIT], four.headers[REMAINING]) == ("2", "0")  # n=4 is one request
    now[0] = 106.8
    throttled = await client.post(path, json={"prompt": "p"}, headers=AUTH)
    assert throttled.status == 429
    assert (throttled.headers[LIMIT], throttled.headers[REMAINING]) == ("2", "0")
    assert throttled.headers["retry-after-ms"] == "3200"  # the request of t=100 leaves at t=110
    assert throttled.headers["retry-after"] == "4"
    assert throttled.headers["x-ms-region"] == "swedencentral"
    error = (await _json(throttled))["error"]
    assert error["code"] == "429"
    assert (
        "Images_Generations Operation under Azure OpenAI API version 2025-04-01-preview" in error["message"]
    )
    assert "retry after 4 seconds" in error["message"]
    now[0] = 110.0
    again = await client.post(path, json={"prompt": "p"}, headers=AUTH)
    assert again.status == 200  # the 429 did not count: exactly the freed slot is there
    assert again.headers[REMAINING] == "0"
    stats = await _json(await client.get("/_emulator/stats"))
    assert (stats["throttled"], stats["paid_generations"], stats["images_generated"]) == (1, 3, 6)
    log = (await _json(await client.get("/_emulator/requests")))["requests"][-4:]
    assert [(e["status"], e["paid"], e["n"]) for e in log] == [
        (200, True, 1),
        (200, True, 4),
        (429, False, 1),
        (200, True, 1),
    ]


async def test_rpm_quota_on_the_v1_path_with_a_per_deployment_override(client: TestClient[Any, Any]) -> None:
    now = _fake_clock(client)
    await _configure(client, deployment_requests_per_minute={"gpt-image-1-mini": 6})
    ok = await client.post(V1, json={"model": "gpt-image-1-mini", "prompt": "p", "n": 2}, headers=AUTH)
    assert ok.status == 200
    assert (ok.headers[LIMIT], ok.headers[REMAINING]) == ("1", "0")
    now[0] = 101.0
    v1 = await client.post(V1, json={"model": "gpt-image-1-mini", "prompt": "p"}, headers=AUTH)
    assert v1.status == 429
    assert (v1.headers[LIMIT], v1.headers[REMAINING], v1.headers["retry-after-ms"]) == ("1", "0", "9000")
    assert "API version preview" in (await _json(v1))["error"]["message"]
    # One window per deployment, whichever path reaches it.
    deployments = await client.post(DEPLOY.format("gpt-image-1-mini"), json={"prompt": "p"}, headers=AUTH)
    assert deployments.status == 429
    # Deployments without a quota answer without rate-limit headers.
    free = await client.post(V1, json={"model": "gpt-image-2", "prompt": "p"}, headers=AUTH)
    assert free.status == 200
    assert LIMIT not in free.headers
    assert REMAINING not in free.headers
    # The override wins over requests_per_minute, which the others now get.
    await _configure(client, requests_per_minute=60)
    other = await client.post(V1, json={"model": "gpt-image-2", "prompt": "p"}, headers=AUTH)
    assert (other.status, other.headers[LIMIT], other.headers[REMAINING]) == (200, "10", "9")
    assert (
        await client.post(V1, json={"model": "gpt-image-1-mini", "prompt": "p"}, headers=AUTH)
    ).status == 429
    now[0] = 110.0
    assert (
        await client.post(V1, json={"model": "gpt-image-1-mini", "prompt": "p"}, headers=AUTH)
    ).status == 200


async def test_zero_rpm_throttles_every_request(client: TestClient[Any, Any]) -> None:
    await _configure(client, requests_per_minute=0)
    for path, body in (
        (DEPLOY.format("gpt-image-2"), {"prompt": "p"}),
        (V1, {"model": "FLUX-1.1-pro", "prompt": "p"}),
    ):
        response = await client.post(path, json=body, headers=AUTH)
        assert response.status == 429
        assert (response.headers["retry-after"], response.headers["retry-after-ms"]) == ("60", "60000")
        assert (response.headers[LIMIT], response.headers[REMAINING]) == ("0", "0")
    submit = await client.post(SUBMIT, json={"prompt": "p"}, headers=AUTH)
    assert submit.status == 429
    stats = await _json(await client.get("/_emulator/stats"))
    assert (stats["throttled"], stats["paid_generations"], stats["operations"]) == (3, 0, 0)


async def test_rpm_quota_validation_and_filter_come_first(client: TestClient[Any, Any]) -> None:
    await _configure(client, requests_per_minute=6)
    path = DEPLOY.format("gpt-image-2")
    assert (await client.post(path, json={"prompt": "p", "n": 99}, headers=AUTH)).status == 400
    assert (await client.post(path, json={"prompt": "forbidden"}, headers=AUTH)).status == 400
    ok = await client.post(path, json={"prompt": "p"}, headers=AUTH)
    assert (ok.status, ok.headers[REMAINING]) == (200, "0")  # the 400s used no quota


async def test_legacy_submits_share_the_legacy_key(client: TestClient[Any, Any]) -> None:
    now = _fake_clock(client)
    await _configure(client, requests_per_minute=6, deployment_requests_per_minute={"gpt-image-2": 600})
    first = await client.post(SUBMIT, json={"prompt": "p", "n": 5}, headers={**AUTH, "Operation-Id": "op-1"})
    assert first.status == 202
    assert (first.headers[LIMIT], first.headers[REMAINING]) == ("1", "0")
    repeat = await client.post(SUBMIT, json={"prompt": "p"}, headers={**AUTH, "Operation-Id": "op-1"})
    assert repeat.status == 202  # an idempotent repeat is not a new request against the quota
    now[0] = 104.0
    second = await client.post(SUBMIT, json={"prompt": "p"}, headers=AUTH)
    assert second.status == 429
    assert (second.headers["retry-after-ms"], second.headers["retry-after"]) == ("6000", "6")
    assert (second.headers[LIMIT], second.headers[REMAINING]) == ("1", "0")
    sync = await client.post(DEPLOY.format("gpt-image-2"), json={"prompt": "p"}, headers=AUTH)
    assert (sync.status, sync.headers[LIMIT]) == (200, "100")  # deployments have their own windows
    await _configure(client, deployment_requests_per_minute={"legacy": 60})
    third = await client.post(SUBMIT, json={"prompt": "p"}, headers=AUTH)
    assert (third.status, third.headers[LIMIT], third.headers[REMAINING]) == (202, "10", "8")


async def test_reset_clears_the_quota_windows(client: TestClient[Any, Any]) -> None:
    _fake_clock(client)
    await _configure(client, requests_per_minute=6)
    path = DEPLOY.format("gpt-image-2")
    assert (await client.post(path, json={"prompt": "p"}, headers=AUTH)).status == 200
    assert (await client.post(path, json={"prompt": "p"}, headers=AUTH)).status == 429
    await client.post("/_emulator/reset")
    assert (await client.post(path, json={"prompt": "p"}, headers=AUTH)).status == 200
    await client.post("/_emulator/reset", json={"config": True})
    assert (await _json(await client.get("/_emulator/config")))["requests_per_minute"] is None
    assert LIMIT not in (await client.post(path, json={"prompt": "p"}, headers=AUTH)).headers


async def test_two_instances_serve_as_two_regions() -> None:
    def config(region: str) -> Config:
        return Config(latency_seconds=0, region=region, requests_per_minute=6)

    async with (
        TestClient(TestServer(create_app(config("swedencentral"), api_key=KEY))) as sweden,
        TestClient(TestServer(create_app(config("westus3"), api_key=KEY))) as westus,
    ):
        assert sweden.server.port != westus.server.port
        path = DEPLOY.format("gpt-image-2")
        assert (await sweden.post(path, json={"prompt": "p"}, headers=AUTH)).status == 200
        throttled = await sweden.post(path, json={"prompt": "p"}, headers=AUTH)
        assert (throttled.status, throttled.headers["x-ms-region"]) == (429, "swedencentral")
        other = await westus.post(path, json={"prompt": "p"}, headers=AUTH)
        assert (other.status, other.headers["x-ms-region"]) == (200, "westus3")  # its own quota
        assert (await _json(await westus.get("/_emulator/stats")))["throttled"] == 0


async def test_sync_latency_overlaps_between_requests(client: TestClient[Any, Any]) -> None:
    await _configure(client, latency_seconds=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    responses = await asyncio.gather(
        *(
            client.post(
                FLUX_DEPLOY.format("FLUX-1.1-pro"), json={"prompt": f"p{i}", "size": "256x256"}, headers=AUTH
            )
            for i in range(16)
        )
    )
    assert all(r.status == 200 for r in responses)
    assert loop.time() - started < 2.0


async def test_request_log_never_holds_secrets(client: TestClient[Any, Any]) -> None:
    await client.post(DEPLOY.format("gpt-image-2"), json={"prompt": "p"}, headers=AUTH)
    await client.post(DEPLOY.format("gpt-image-2"), json={"prompt": "p"}, headers={"api-key": "wrong-key"})
    text = await (await client.get("/_emulator/requests")).text()
    assert KEY not in text
    assert "wrong-key" not in text
    entries = (await _json(await client.get("/_emulator/requests")))["requests"]
    assert [e["auth"] for e in entries] == ["api-key", "invalid-key"]
    assert entries[0]["dialect"] == "deployments"
    assert entries[0]["deployment"] == "gpt-image-2"


async def test_admin_config_deployments_and_reset(client: TestClient[Any, Any]) -> None:
    await _configure(client, deployments={"pictures": "gpt-image-2"})
    assert (await client.post(DEPLOY.format("pictures"), json={"prompt": "p"}, headers=AUTH)).status == 200
    assert (await client.post(DEPLOY.format("gpt-image-2"), json={"prompt": "p"}, headers=AUTH)).status == 404
    bad = await client.post("/_emulator/config", json={"deployments": {"chat": "gpt-4o"}})
    assert bad.status == 400
    await client.post("/_emulator/faults", json={"kind": "500"})
    reset = await client.post("/_emulator/reset", json={"config": True})
    assert (await _json(reset))["config"]["deployments"]["FLUX-1.1-pro"] == "FLUX-1.1-pro"
    assert (await _json(await client.get("/_emulator/faults")))["faults"] == []
    assert (await _json(await client.get("/_emulator/requests")))["requests"] == []
    assert (await client.post(DEPLOY.format("gpt-image-2"), json={"prompt": "p"}, headers=AUTH)).status == 200


async def test_image_detail_noise_makes_full_size_images(client: TestClient[Any, Any]) -> None:
    await _configure(client, image_detail="noise")
    response = await client.post(DEPLOY.format("gpt-image-1.5"), json={"prompt": "a fox"}, headers=AUTH)
    picture = base64.b64decode((await _json(response))["data"][0]["b64_json"])
    assert len(picture) > 3_000_000
    with Image.open(io.BytesIO(picture)) as image:
        assert (image.format, image.size) == ("PNG", (1024, 1024))
    submit = await client.post(SUBMIT, json={"prompt": "a fox", "size": "256x256"}, headers=AUTH)
    done = await _poll_until_done(client, submit.headers["operation-location"])
    download = await client.get(done["result"]["data"][0]["url"].split(str(client.server.port), 1)[1])
    assert len(await download.read()) > 256 * 256 * 3
    bad = await client.post("/_emulator/config", json={"image_detail": "grainy"})
    assert bad.status == 400
    assert (await _json(await client.get("/_emulator/config")))["image_detail"] == "noise"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[" * 5000 + b"]" * 5000, b'{"prompt": "a", "n": ' + b"1" * 5000 + b"}"],
    ids=["syntax", "nested too deeply", "number too long"],
)
async def test_invalid_json_body(client: TestClient[Any, Any], body: bytes) -> None:
    response = await client.post(DEPLOY.format("gpt-image-2"), data=body, headers=AUTH)
    assert response.status == 400
    assert (await _json(response))["error"]["code"] == "invalid_json"
