"""The Azure OpenAI image emulator as a process, driven by real clients."""

from __future__ import annotations

import base64
import http.client
import io
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
import requests
from azure.identity import ManagedIdentityCredential, get_bearer_token_provider
from openai import APIStatusError, AzureOpenAI, OpenAI
from PIL import Image

from devtools.certs import TlsFiles
from devtools.services import AoaiEndpoint, MsiEndpoint, start_aoai_emulator
from devtools.tokens import mint_access_token

pytestmark = pytest.mark.integration

API_KEY = "integration-test-key-0123456789"
SCOPE = "https://cognitiveservices.azure.com/.default"
API_VERSION = "2025-04-01-preview"
LEGACY_VERSION = "2023-06-01-preview"
FAST = ["--latency", "0.05", "--legacy-queue", "0.2", "--legacy-latency", "0.6", "--hang-seconds", "3"]


@pytest.fixture(scope="module")
def aoai(tls_files: TlsFiles, logs_dir: Path) -> Iterator[AoaiEndpoint]:
    """HTTPS, with an api key (so both key and Entra ID work)."""
    process, endpoint = start_aoai_emulator(
        log_dir=logs_dir / "aoai", api_key=API_KEY, tls=tls_files, extra_args=FAST
    )
    yield endpoint
    process.stop()


@pytest.fixture(autouse=True)
def fresh(aoai: AoaiEndpoint) -> None:
    """Each test starts from the start-up configuration with an empty log."""
    response = requests.post(f"{aoai.admin_url}/reset", json={"config": True}, verify=_ca(aoai), timeout=5)
    response.raise_for_status()


def _ca(endpoint: AoaiEndpoint) -> str:
    assert endpoint.ca_file is not None
    return str(endpoint.ca_file)


def _admin(endpoint: AoaiEndpoint, method: str, path: str, body: Any = None) -> Any:
    response = requests.request(
        method, f"{endpoint.admin_url}/{path}", json=body, verify=_ca(endpoint), timeout=5
    )
    response.raise_for_status()
    return response.json()


def _post(
    endpoint: AoaiEndpoint, path: str, body: Any, headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.post(
        f"{endpoint.endpoint}{path}",
        json=body,
        headers={"api-key": API_KEY} if headers is None else headers,
        verify=_ca(endpoint),
        timeout=10,
    )


def _deployments(deployment: str) -> str:
    return f"/openai/deployments/{deployment}/images/generations?api-version={API_VERSION}"


def _assert_png(data: bytes, size: tuple[int, int]) -> None:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.size == size


# ---- 1. the official openai package, with a managed identity ------------------------------------


def test_openai_package_deployments_dialect_with_managed_identity(
    aoai: AoaiEndpoint, msi_env: MsiEndpoint
) -> None:
    provider = get_bearer_token_provider(ManagedIdentityCredential(), SCOPE)
    with httpx2.Client(verify=ssl.create_default_context(cafile=_ca(aoai))) as http_client:
        client = AzureOpenAI(
            azure_endpoint=aoai.endpoint,
            api_version=API_VERSION,
            azure_ad_token_provider=provider,
            http_client=http_client,
        )
        result = client.images.generate(
            model="gpt-image-1.5", prompt="a red fox in snow", n=2, size="1024x1536"
        )
    assert result.data is not None
    assert len(result.data) == 2
    images = [base64.b64decode(item.b64_json or "") for item in result.data]
    assert images[0] != images[1]
    for data in images:
        _assert_png(data, (1024, 1536))
    assert result.usage is not None
    assert result.usage.total_tokens > 0
    [entry] = _admin(aoai, "GET", "requests")["requests"]
    assert (entry["dialect"], entry["auth"], entry["deployment"], entry["n"], entry["paid"]) == (
        "deployments",
        "bearer",
        "gpt-image-1.5",
        2,
        True,
    )


def test_openai_package_v1_dialect_with_managed_identity_token(
    aoai: AoaiEndpoint, msi_env: MsiEndpoint
) -> None:
    provider = get_bearer_token_provider(ManagedIdentityCredential(), SCOPE)
    with httpx2.Client(verify=ssl.create_default_context(cafile=_ca(aoai))) as http_client:
        client = OpenAI(base_url=f"{aoai.endpoint}/openai/v1/", api_key=provider(), http_client=http_client)
        result = client.images.generate(
            model="gpt-image-1-mini", prompt="a red fox in snow", n=2, size="1024x1024"
        )
    assert result.data is not None
    assert len(result.data) == 2
    for item in result.data:
        _assert_png(base64.b64decode(item.b64_json or ""), (1024, 1024))
    [entry] = _admin(aoai, "GET", "requests")["requests"]
    assert (entry["dialect"], entry["auth"], entry["deployment"]) == ("v1", "bearer", "gpt-image-1-mini")


def test_openai_package_generates_with_gpt_image_2_at_a_free_size_on_the_v1_path(
    aoai: AoaiEndpoint, msi_env: MsiEndpoint
) -> None:
    provider = get_bearer_token_provider(ManagedIdentityCredential(), "https://ai.azure.com/.default")
    with httpx2.Client(verify=ssl.create_default_context(cafile=_ca(aoai))) as http_client:
        client = OpenAI(
            base_url=f"{aoai.endpoint}/openai/v1/",
            api_key=provider(),
            default_query={"api-version": "preview"},
            http_client=http_client,
        )
        result = client.images.generate(
            model="gpt-image-2",
            prompt="a red fox in snow",
            size="2048x1152",
            quality="low",
        )
    assert result.data is not None
    _assert_png(base64.b64decode(result.data[0].b64_json or ""), (2048, 1152))
    assert result.usage is not None and result.usage.output_tokens > 0
    [entry] = _admin(aoai, "GET", "requests")["requests"]
    assert (entry["dialect"], entry["auth"], entry["deployment"]) == ("v1", "bearer", "gpt-image-2")


@pytest.mark.parametrize(
    ("deployment", "size"), [("FLUX-1.1-pro", (1440, 1152)), ("FLUX.1-Kontext-pro", (1344, 576))]
)
def test_openai_package_flux_url_downloads(
    aoai: AoaiEndpoint, deployment: str, size: tuple[int, int]
) -> None:
    """The FLUX docs' Image API call (deployments path, api-version=preview), answered with a URL."""
    with httpx2.Client(verify=ssl.create_default_context(cafile=_ca(aoai))) as http_client:
        client = AzureOpenAI(
            azure_endpoint=aoai.endpoint, api_version="preview", api_key=API_KEY, http_client=http_client
        )
        result = client.images.generate(
            model=deployment,
            prompt="a lighthouse",
            n=1,
            size=f"{size[0]}x{size[1]}",
        )
    assert result.data is not None
    [item] = result.data
    assert item.url is not None
    assert item.b64_json is None and item.revised_prompt is None
    assert result.usage is None
    download = requests.get(item.url, verify=_ca(aoai), timeout=5)  # no credentials, like a SAS link
    _assert_png(download.content, size)
    [entry, _] = _admin(aoai, "GET", "requests")["requests"]
    assert (entry["dialect"], entry["deployment"], entry["model"], entry["n"]) == (
        "deployments",
        deployment,
        deployment,
        1,
    )


@pytest.mark.parametrize(
    ("deployment", "retired"),
    [("gpt-image-1", "2026-10-23"), ("dall-e-3", "2026-03-04"), ("dall-e-2", "2025-01-27")],
)
def test_retired_deployments_answer_410_on_both_sync_paths(
    aoai: AoaiEndpoint, deployment: str, retired: str
) -> None:
    for path, body in (
        (_deployments(deployment), {"prompt": "p"}),
        ("/openai/v1/images/generations", {"model": deployment, "prompt": "p"}),
    ):
        response = _post(aoai, path, body)
        assert response.status_code == 410, response.text
        error = response.json()["error"]
        assert error["code"] == "ModelRetired"
        assert deployment in error["message"] and retired in error["message"]
        assert "gpt-image-2" in error["message"]
    with httpx2.Client(verify=ssl.create_default_context(cafile=_ca(aoai))) as http_client:
        client = AzureOpenAI(
            azure_endpoint=aoai.endpoint, api_version=API_VERSION, api_key=API_KEY, http_client=http_client
        )
        with pytest.raises(APIStatusError) as caught:
            client.with_options(max_retries=0).images.generate(model=deployment, prompt="p")
    assert caught.value.status_code == 410
    assert _admin(aoai, "GET", "stats")["paid_generations"] == 0


# ---- 2. the quickstart's legacy loop, ported to Python --------------------------------------------


def quickstart_legacy_loop(endpoint: str, api_key: str, prompt: str, verify: str) -> bytes:
    """The Azure OpenAI DALL-E quickstart (PowerShell) as written, in Python: submit, poll, download."""
    headers = {"api-key": api_key, "Content-Type": "application/json"}
    body = {"prompt": prompt, "size": "1024x1024", "n": 1}
    submission = requests.post(
        f"{endpoint}/openai/images/generations:submit?api-version={LEGACY_VERSION}",
        headers=headers,
        json=body,
        verify=verify,
        timeout=30,
    )
    operation_location = submission.headers["operation-location"]
    status = ""
    response: dict[str, Any] = {}
    while status != "succeeded":
        time.sleep(1)
        response = requests.get(operation_location, headers=headers, verify=verify, timeout=30).json()
        status = response["status"]
        if status == "failed":
            raise RuntimeError(response["error"]["message"])
    image_url = response["result"]["data"][0]["url"]
    return requests.get(image_url, verify=verify, timeout=30).content


def test_quickstart_legacy_loop_works_unchanged(aoai: AoaiEndpoint) -> None:
    image = quickstart_legacy_loop(aoai.endpoint, API_KEY, "a watercolor of a lighthouse", _ca(aoai))
    _assert_png(image, (1024, 1024))
    kinds = [entry["kind"] for entry in _admin(aoai, "GET", "requests")["requests"]]
    assert kinds[0] == "submit"
    assert kinds[-1] == "download"
    assert "poll" in kinds


# ---- 4. negative cases ---------------------------------------------------------------------------


def test_wrong_key_is_401_in_azure_shape(aoai: AoaiEndpoint) -> None:
    response = _post(aoai, _deployments("gpt-image-2"), {"prompt": "p"}, headers={"api-key": "wrong"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "401"
    assert error["message"].startswith("Access denied due to invalid subscription key or wrong API endpoint")
    assert response.headers["apim-request-id"]


@pytest.mark.parametrize(
    ("resource", "issued_ago", "lifetime"),
    [("https://storage.azure.com", 0, 3600), ("https://cognitiveservices.azure.com", 7200, 3600)],
    ids=["wrong-audience", "expired"],
)
def test_bad_tokens_are_401_in_azure_shape(
    aoai: AoaiEndpoint, resource: str, issued_ago: int, lifetime: int
) -> None:
    token, _ = mint_access_token(
        resource=resource, client_id=None, lifetime_seconds=lifetime, now=time.time() - issued_ago
    )
    for path in (_deployments("gpt-image-2"), "/openai/v1/images/generations"):
        response = _post(
            aoai, path, {"model": "gpt-image-2", "prompt": "p"}, {"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "Unauthorized"
        assert "audience is incorrect" in error["message"]
    log = _admin(aoai, "GET", "requests")["requests"]
    assert {entry["auth"] for entry in log} == {"invalid-token"}
    assert token not in str(log)


BAD_PARAMETERS: list[tuple[str, dict[str, Any], str, str]] = [
    ("gpt-image-1.5", {"n": 2}, "missing_required_parameter", "prompt"),
    ("gpt-image-1.5", {"prompt": "x" * 32001}, "string_above_max_length", "prompt"),
    ("FLUX-1.1-pro", {"prompt": "x" * 20001}, "string_above_max_length", "prompt"),
    ("FLUX.1-Kontext-pro", {"prompt": "x" * 20001}, "string_above_max_length", "prompt"),
    ("gpt-image-1.5", {"prompt": "p", "n": 11}, "integer_above_max_value", "n"),
    ("gpt-image-1.5", {"prompt": "p", "n": 0}, "integer_below_min_value", "n"),
    ("FLUX-1.1-pro", {"prompt": "p", "n": 2}, "integer_above_max_value", "n"),
    ("FLUX.1-Kontext-pro", {"prompt": "p", "n": 2}, "integer_above_max_value", "n"),
    ("gpt-image-1.5", {"prompt": "p", "size": "512x512"}, "invalid_value", "size"),
    ("FLUX-1.1-pro", {"prompt": "p", "size": "1440x1440"}, "invalid_value", "size"),
    ("FLUX.1-Kontext-pro", {"prompt": "p", "size": "1440x544"}, "invalid_value", "size"),
    ("gpt-image-1.5", {"prompt": "p", "quality": "hd"}, "invalid_value", "quality"),
    ("FLUX-1.1-pro", {"prompt": "p", "quality": "high"}, "unknown_parameter", "quality"),
    ("FLUX-1.1-pro", {"prompt": "p", "style": "natural"}, "unknown_parameter", "style"),
    ("FLUX.1-Kontext-pro", {"prompt": "p", "response_format": "url"}, "unknown_parameter", "response_format"),
    ("gpt-image-1-mini", {"prompt": "p", "style": "vivid"}, "unknown_parameter", "style"),
    ("gpt-image-1-mini", {"prompt": "p", "response_format": "url"}, "unknown_parameter", "response_format"),
    (
        "gpt-image-1-mini",
        {"prompt": "p", "background": "transparent", "output_format": "jpeg"},
        "invalid_value",
        "background",
    ),
    ("gpt-image-2", {"prompt": "p", "output_format": "bmp"}, "invalid_value", "output_format"),
    ("gpt-image-2", {"prompt": "p", "output_compression": 80}, "invalid_value", "output_compression"),
    (
        "gpt-image-2",
        {"prompt": "p", "output_format": "jpeg", "output_compression": 101},
        "integer_above_max_value",
        "output_compression",
    ),
    ("gpt-image-2", {"prompt": "p", "seed": 4}, "unknown_parameter", "seed"),
]


@pytest.mark.parametrize(("deployment", "body", "code", "param"), BAD_PARAMETERS)
def test_bad_parameters_are_400_with_azure_codes(
    aoai: AoaiEndpoint, deployment: str, body: dict[str, Any], code: str, param: str
) -> None:
    for path, payload in (
        (_deployments(deployment), body),
        ("/openai/v1/images/generations", {**body, "model": deployment}),
    ):
        response = _post(aoai, path, payload)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert (error["code"], error["param"], error["type"]) == (code, param, "invalid_request_error")
        assert (
            param in error["message"]
            or "Unknown parameter" in error["message"]
            or "Invalid value" in error["message"]
        )


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"prompt": "p", "n": 6}, "integer_above_max_value", "n"),
        ({"prompt": "p", "size": "1024x1792"}, "invalid_value", "size"),
    ],
)
def test_bad_legacy_parameters_are_400(
    aoai: AoaiEndpoint, body: dict[str, Any], code: str, param: str
) -> None:
    response = _post(aoai, f"/openai/images/generations:submit?api-version={LEGACY_VERSION}", body)
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (code, param)


def test_scripted_429_carries_both_retry_after_headers(aoai: AoaiEndpoint) -> None:
    _admin(aoai, "POST", "faults", {"kind": "429", "count": 2, "retry_after": 3, "scope": "generate"})
    for _ in range(2):
        response = _post(aoai, _deployments("gpt-image-2"), {"prompt": "p"})
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert response.headers["retry-after-ms"] == "3000"
        assert response.json()["error"]["code"] == "429"
    assert _post(aoai, _deployments("gpt-image-2"), {"prompt": "p"}).status_code == 200


def test_content_filter_shapes_sync_and_legacy(aoai: AoaiEndpoint) -> None:
    for path, body in (
        (_deployments("gpt-image-1.5"), {"prompt": "a forbidden scene"}),
        ("/openai/v1/images/generations", {"model": "FLUX-1.1-pro", "prompt": "a forbidden scene"}),
    ):
        response = _post(aoai, path, body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["param"], error["type"]) == (
            "content_policy_violation",
            "prompt",
            "invalid_request_error",
        )
        assert error["inner_error"]["code"] == "ResponsibleAIPolicyViolation"
        results = error["inner_error"]["content_filter_results"]
        assert set(results) == {"hate", "self_harm", "sexual", "violence"}
        assert results["violence"] == {"filtered": True, "severity": "high"}
    submit = _post(
        aoai, f"/openai/images/generations:submit?api-version={LEGACY_VERSION}", {"prompt": "forbidden"}
    )
    assert submit.status_code == 202
    done = _wait_for_operation(aoai, submit.headers["operation-location"])
    assert done["status"] == "failed"
    assert done["error"] == {
        "code": "contentFilter",
        "message": "Your task failed as a result of our safety system.",
    }


def test_filtered_output_image_shapes(aoai: AoaiEndpoint) -> None:
    _admin(aoai, "POST", "config", {"filter_output_index": 1})
    data = _post(aoai, _deployments("gpt-image-1.5"), {"prompt": "p", "n": 2}).json()["data"]
    assert "b64_json" in data[0]
    assert "b64_json" not in data[1]
    assert data[1]["content_filter_results"]["violence"]["filtered"] is True
    submit = _post(
        aoai, f"/openai/images/generations:submit?api-version={LEGACY_VERSION}", {"prompt": "p", "n": 2}
    )
    result = _wait_for_operation(aoai, submit.headers["operation-location"])["result"]
    assert "url" in result["data"][0]
    assert result["data"][1]["error"]["code"] == "contentFilter"


def _wait_for_operation(aoai: AoaiEndpoint, location: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = requests.get(location, headers={"api-key": API_KEY}, verify=_ca(aoai), timeout=5)
        body: dict[str, Any] = response.json()
        if body["status"] in ("succeeded", "failed", "canceled"):
            return body
        assert response.headers["retry-after"] == "1"
        time.sleep(0.1)
    raise AssertionError("operation did not finish")


def test_truncated_download_really_is_truncated(aoai: AoaiEndpoint) -> None:
    url = _post(aoai, _deployments("FLUX-1.1-pro"), {"prompt": "p"}).json()["data"][0]["url"]
    _admin(aoai, "POST", "faults", {"kind": "truncated"})
    parts = urlsplit(url)
    assert parts.hostname is not None
    connection = http.client.HTTPSConnection(
        parts.hostname, parts.port, context=ssl.create_default_context(cafile=_ca(aoai)), timeout=5
    )
    connection.request("GET", f"{parts.path}?{parts.query}")
    response = connection.getresponse()
    advertised = int(response.getheader("Content-Length") or 0)
    with pytest.raises(http.client.IncompleteRead) as caught:
        response.read()
    connection.close()
    assert advertised > 0
    assert len(caught.value.partial) == advertised // 2
    whole = requests.get(url, verify=_ca(aoai), timeout=5)  # the fault fired once; the next download is whole
    assert len(whole.content) == advertised


def test_reset_fault_closes_the_connection(aoai: AoaiEndpoint) -> None:
    _admin(aoai, "POST", "faults", {"kind": "reset", "scope": "generate"})
    with pytest.raises(requests.ConnectionError):
        _post(aoai, _deployments("gpt-image-2"), {"prompt": "p"})
    [entry] = _admin(aoai, "GET", "requests")["requests"]
    assert (entry["status"], entry["fault"], entry["paid"]) == ("reset", "reset", False)


def test_hang_outlasts_the_client_timeout(aoai: AoaiEndpoint) -> None:
    _admin(aoai, "POST", "faults", {"kind": "hang", "hang_seconds": 2})
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            f"{aoai.endpoint}{_deployments('gpt-image-2')}",
            json={"prompt": "p"},
            headers={"api-key": API_KEY},
            verify=_ca(aoai),
            timeout=0.5,
        )


def test_operation_id_makes_submit_idempotent(aoai: AoaiEndpoint) -> None:
    path = f"/openai/images/generations:submit?api-version={LEGACY_VERSION}"
    headers = {"api-key": API_KEY, "Operation-Id": "3f2b8c1e-0000-4000-8000-000000000001"}
    first = _post(aoai, path, {"prompt": "a kite"}, headers)
    second = _post(aoai, path, {"prompt": "a kite"}, headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert first.headers["operation-location"] == second.headers["operation-location"]
    submits = _admin(aoai, "GET", "requests?kind=submit")["requests"]
    assert [entry["paid"] for entry in submits] == [True, False]
    assert _admin(aoai, "GET", "stats")["paid_generations"] == 1


def test_entra_only_emulator_refuses_every_key(logs_dir: Path) -> None:
    process, endpoint = start_aoai_emulator(
        log_dir=logs_dir / "aoai-entra-only", extra_args=["--latency", "0"]
    )
    try:
        response = requests.post(
            f"{endpoint.endpoint}{_deployments('gpt-image-2')}",
            json={"prompt": "p"},
            headers={"api-key": "any"},
            timeout=5,
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "401"
        token, _ = mint_access_token(resource=SCOPE, client_id=None, lifetime_seconds=600)
        ok = requests.post(
            f"{endpoint.endpoint}{_deployments('gpt-image-2')}",
            json={"prompt": "p"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert ok.status_code == 200
    finally:
        process.stop()
