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

from devtools.aoai_emulator.app import create_app
from devtools.aoai_emulator.state import Config

KEY = "unit-test-key"
AUTH = {"api-key": KEY}
DEPLOY = "/openai/deployments/{}/images/generations?api-version=2025-04-01-preview"
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
        DEPLOY.format("gpt-image-1"), json={"prompt": "a fox", "n": 2, "size": "1536x1024"}, headers=AUTH
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


async def test_dalle3_url_downloads_without_auth_and_has_revised_prompt(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        DEPLOY.format("dall-e-3"), json={"prompt": "a fox", "size": "1792x1024"}, headers=AUTH
    )
    body = await _json(response)
    item = body["data"][0]
    assert "a fox" in item["revised_prompt"]
    assert item["content_filter_results"]["violence"] == {"filtered": False, "severity": "safe"}
    download = await client.get(item["url"].split(str(client.server.port), 1)[1])
    assert download.status == 200
    assert download.content_type == "image/png"
    with Image.open(io.BytesIO(await download.read())) as image:
        assert image.size == (1792, 1024)


async def test_dalle3_b64_json_on_request(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        DEPLOY.format("dall-e-3"), json={"prompt": "a fox", "response_format": "b64_json"}, headers=AUTH
    )
    assert "b64_json" in (await _json(response))["data"][0]


async def test_v1_dialect_takes_the_deployment_from_model(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        "/openai/v1/images/generations?api-version=preview",
        json={"model": "dall-e-2", "prompt": "p", "n": 3},
        headers=AUTH,
    )
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
        "/openai/deployments/dall-e-3/images/generations", json={"prompt": "p"}, headers=AUTH
    )
    assert no_version.status == 404
    assert (await _json(no_version))["error"] == {"code": "404", "message": "Resource not found"}


async def test_unauthenticated_calls_get_401_before_anything_else(client: TestClient[Any, Any]) -> None:
    response = await client.post(DEPLOY.format("nope"), json={"prompt": "p"})
    assert response.status == 401
    assert (await _json(response))["error"]["code"] == "401"


async def test_prompt_content_filter_sync_shape(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        DEPLOY.format("gpt-image-1"), json={"prompt": "something forbidden"}, headers=AUTH
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
    response = await client.post(DEPLOY.format("gpt-image-1"), json={"prompt": "p", "n": 3}, headers=AUTH)
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
    response = await client.post(DEPLOY.format("dall-e-2"), json={"prompt": "p"}, headers=AUTH)
    url = (await _json(response))["data"][0]["url"]
    download = await client.get(url.split(str(client.server.port), 1)[1])
    assert download.status == 403
    assert "AuthenticationFailed" in await download.text()
    assert (await client.get("/_emulator/results/nothing/0.png")).status == 404


async def test_scripted_429_500_503(client: TestClient[Any, Any]) -> None:
    faults = [{"kind": "429", "retry_after": 1.5}, {"kind": "500"}, {"kind": "503", "retry_after": 2}]
    assert (await client.post("/_emulator/faults", json={"faults": faults})).status == 200
    throttled = await client.post(DEPLOY.format("dall-e-3"), json={"prompt": "p"}, headers=AUTH)
    assert throttled.status == 429
    assert throttled.headers["retry-after"] == "2"
    assert throttled.headers["retry-after-ms"] == "1500"
    assert (await _json(throttled))["error"]["code"] == "429"
    failed = await client.post(DEPLOY.format("dall-e-3"), json={"prompt": "p"}, headers=AUTH)
    assert failed.status == 500
    unavailable = await client.post(DEPLOY.format("dall-e-3"), json={"prompt": "p"}, headers=AUTH)
    assert unavailable.status == 503
    assert unavailable.headers["retry-after"] == "2"
    ok = await client.post(DEPLOY.format("dall-e-3"), json={"prompt": "p"}, headers=AUTH)
    assert ok.status == 200
    statuses = [e["status"] for e in (await _json(await client.get("/_emulator/requests")))["requests"]]
    assert statuses == [429, 500, 503, 200]


async def test_images_per_minute_quota(client: TestClient[Any, Any]) -> None:
    await _configure(client, images_per_minute=3)
    ok = await client.post(DEPLOY.format("gpt-image-1"), json={"prompt": "p", "n": 3}, headers=AUTH)
    assert ok.status == 200
    throttled = await client.post(DEPLOY.format("gpt-image-1"), json={"prompt": "p"}, headers=AUTH)
    assert throttled.status == 429
    assert int(throttled.headers["retry-after"]) >= 59
    assert int(throttled.headers["retry-after-ms"]) > 58_000
    other = await client.post(DEPLOY.format("dall-e-3"), json={"prompt": "p"}, headers=AUTH)
    assert other.status == 200  # quota is per deployment


async def test_sync_latency_overlaps_between_requests(client: TestClient[Any, Any]) -> None:
    await _configure(client, latency_seconds=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    responses = await asyncio.gather(
        *(
            client.post(DEPLOY.format("dall-e-2"), json={"prompt": f"p{i}", "size": "256x256"}, headers=AUTH)
            for i in range(16)
        )
    )
    assert all(r.status == 200 for r in responses)
    assert loop.time() - started < 2.0


async def test_request_log_never_holds_secrets(client: TestClient[Any, Any]) -> None:
    await client.post(DEPLOY.format("dall-e-3"), json={"prompt": "p"}, headers=AUTH)
    await client.post(DEPLOY.format("dall-e-3"), json={"prompt": "p"}, headers={"api-key": "wrong-key"})
    text = await (await client.get("/_emulator/requests")).text()
    assert KEY not in text
    assert "wrong-key" not in text
    entries = (await _json(await client.get("/_emulator/requests")))["requests"]
    assert [e["auth"] for e in entries] == ["api-key", "invalid-key"]
    assert entries[0]["dialect"] == "deployments"
    assert entries[0]["deployment"] == "dall-e-3"


async def test_admin_config_deployments_and_reset(client: TestClient[Any, Any]) -> None:
    await _configure(client, deployments={"pictures": "gpt-image-1"})
    assert (await client.post(DEPLOY.format("pictures"), json={"prompt": "p"}, headers=AUTH)).status == 200
    assert (await client.post(DEPLOY.format("dall-e-3"), json={"prompt": "p"}, headers=AUTH)).status == 404
    bad = await client.post("/_emulator/config", json={"deployments": {"chat": "gpt-4o"}})
    assert bad.status == 400
    await client.post("/_emulator/faults", json={"kind": "500"})
    reset = await client.post("/_emulator/reset", json={"config": True})
    assert (await _json(reset))["config"]["deployments"]["dall-e-3"] == "dall-e-3"
    assert (await _json(await client.get("/_emulator/faults")))["faults"] == []
    assert (await _json(await client.get("/_emulator/requests")))["requests"] == []
    assert (await client.post(DEPLOY.format("dall-e-3"), json={"prompt": "p"}, headers=AUTH)).status == 200


async def test_image_detail_noise_makes_full_size_images(client: TestClient[Any, Any]) -> None:
    await _configure(client, image_detail="noise")
    response = await client.post(DEPLOY.format("gpt-image-1"), json={"prompt": "a fox"}, headers=AUTH)
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
    response = await client.post(DEPLOY.format("dall-e-3"), data=body, headers=AUTH)
    assert response.status == 400
    assert (await _json(response))["error"]["code"] == "invalid_json"
