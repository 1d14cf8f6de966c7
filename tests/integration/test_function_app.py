"""The product's main path over HTTP: dev host -> function_app -> emulator, Azurite, MSI emulator.

Each stack is started once per option set (see conftest.StackFactory) on free ports.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from devtools.procs import ProcessStartError
from devtools.stack import LocalStack, start_local_stack
from tests.integration.conftest import FAULT_SETTINGS, StackFactory
from tests.integration.waiting import wait_until

PROBE_TIMEOUT_SECONDS = 10  # a health probe gives up after seconds, not minutes


class Api:
    """A caller of the function app, plus the emulator's admin API."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.base = f"{stack.devhost_url}/api"
        self.key_headers = {"x-functions-key": stack.function_key}
        self.ca = str(stack.tls.ca_cert)

    def post(
        self, body: Any, *, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> requests.Response:
        merged = {**self.key_headers, "Content-Type": "application/json", **(headers or {})}
        data = raw if raw is not None else json.dumps(body).encode()
        return requests.post(f"{self.base}/images", data=data, headers=merged, timeout=120)

    def get(self, job_id: str) -> requests.Response:
        return requests.get(f"{self.base}/images/{job_id}", headers=self.key_headers, timeout=30)

    def download(self, url: str) -> requests.Response:
        return requests.get(url, timeout=30, verify=self.ca)

    def emulator(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(
            method, f"{self.stack.aoai.admin_url}/{path}", json=body, timeout=10, verify=self.ca
        )
        response.raise_for_status()
        return response.json()

    def calls(self, kind: str | None = None) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.emulator("GET", "requests")["requests"]
        return [e for e in entries if kind is None or e["kind"] == kind]

    def admin_blobs(self) -> BlobServiceClient:
        return BlobServiceClient.from_connection_string(
            self.stack.azurite.connection_string, connection_verify=self.ca
        )


def _api(stack: LocalStack, config: dict[str, Any] | None = None) -> Api:
    api = Api(stack)
    api.emulator("POST", "reset", {"config": True})
    # The pool's pacing state starts afresh too (a cool-down or an open circuit left by the test
    # before would otherwise hold this one back, as it should in Azure).
    with contextlib.suppress(ResourceNotFoundError):
        api.admin_blobs().get_blob_client("jobs", "pacing/pool.json").delete_blob()
    if config:
        api.emulator("POST", "config", config)
    return api


@pytest.fixture
def identity_api(stacks: StackFactory) -> Api:
    """Identity mode (HTTPS Azurite with OAuth, managed identity everywhere), deployments dialect."""
    return _api(stacks())


@pytest.fixture
def fault_api(stacks: StackFactory) -> Api:
    """Short upstream deadline so that throttling and hangs end quickly."""
    return _api(stacks(setting_overrides=FAULT_SETTINGS))


@pytest.fixture
def flux_api(stacks: StackFactory) -> Api:
    """FLUX-1.1-pro through the Image API: the deployments path, an answer with a URL to download."""
    return _api(stacks(model="FLUX-1.1-pro"))


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _assert_good_job(api: Api, response: requests.Response, n: int, size: tuple[int, int]) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded"
    assert len(job["images"]) == n
    for image in job["images"]:
        download = api.download(image["url"])
        assert download.status_code == 200
        assert download.headers["Content-Type"] == image["content_type"] == "image/png"
        assert _png_size(download.content) == size == (image["width"], image["height"])
        assert len(download.content) == image["bytes"]
        assert datetime.fromisoformat(image["expires_at"]) > datetime.now(UTC) + timedelta(minutes=55)
    assert job["urls"] == {
        "get": f"{api.base}/images/{job['id']}",
        "cancel": f"{api.base}/images/{job['id']}",
    }
    return job


# --- happy paths -------------------------------------------------------------------------------


def test_identity_mode_v1_dialect_n3_gives_three_blobs_and_links(identity_api: Api) -> None:
    response = identity_api.post({"prompt": "three red foxes", "n": 3, "size": "1536x1024"})
    job = _assert_good_job(identity_api, response, 3, (1536, 1024))
    assert [c["dialect"] for c in identity_api.calls("generate")] == ["v1"]
    assert identity_api.calls("generate")[0]["auth"] == "bearer"
    assert job["model"] == "gpt-image-2"
    usage = job["usage"]
    assert usage["output_tokens"] > 0 and usage["input_tokens_details"]["text_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    prices = json.loads((Path(__file__).resolve().parents[2] / "imagegen/data/prices.json").read_text())
    price = prices["models"]["gpt-image-2"]
    expected = (
        usage["input_tokens_details"]["text_tokens"] * price["text_input_per_million"]
        + usage["input_tokens_details"]["image_tokens"] * price["image_input_per_million"]
        + usage["output_tokens"] * price["output_per_million"]
    ) / 1_000_000
    assert job["cost"] == {
        "amount": pytest.approx(expected, abs=1e-6),
        "currency": "USD",
        "prices_as_of": price["as_of"],
    }

    created = datetime.fromisoformat(job["created_at"])
    prefix = f"{created:%Y/%m/%d}/{job['id']}/"
    container = identity_api.admin_blobs().get_container_client("images")
    blobs = sorted(container.list_blobs(name_starts_with=prefix, include=["metadata"]), key=lambda b: b.name)
    assert [b.name for b in blobs] == [f"{prefix}{i}.png" for i in range(3)]
    for index, blob in enumerate(blobs):
        assert blob.content_settings.content_type == "image/png"
        assert blob.metadata == {"job_id": job["id"], "index": str(index), "width": "1536", "height": "1024"}
    links = [urlsplit(image["url"]) for image in job["images"]]
    assert all(parse_qs(link.query)["spr"] == ["https"] for link in links)
    assert all(parse_qs(link.query)["sp"] == ["r"] and parse_qs(link.query)["sr"] == ["b"] for link in links)


def test_get_returns_the_job_with_fresh_links(identity_api: Api) -> None:
    job = identity_api.post({"prompt": "a lighthouse"}).json()
    time.sleep(1.1)  # links carry second-resolution times: a fresh one differs
    again = identity_api.get(job["id"])
    assert again.status_code == 200
    body = again.json()
    assert body["id"] == job["id"] and body["status"] == "succeeded"
    assert body["images"][0]["blob"] == job["images"][0]["blob"]
    assert body["images"][0]["url"] != job["images"][0]["url"]
    assert identity_api.download(body["images"][0]["url"]).status_code == 200
    assert identity_api.get(job["id"].upper()).json()["id"] == job["id"]  # a UUID in capitals is the same id


def test_unknown_job_is_404(identity_api: Api) -> None:
    for job_id in (str(uuid.uuid4()), "not-a-job-id"):
        response = identity_api.get(job_id)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("stored", [b"{not json", b"[" * 5000 + b"]" * 5000, b'{"id": "x"}', b'{"a": 1}'])
def test_a_job_record_that_does_not_read_is_503_storage_error(identity_api: Api, stored: bytes) -> None:
    """Something other than the app wrote jobs/{id}.json: GET and DELETE answer with a code, not a 500."""
    job_id = str(uuid.uuid4())
    identity_api.post({"prompt": "makes sure the jobs container exists"})
    identity_api.admin_blobs().get_blob_client("jobs", f"{job_id}.json").upload_blob(stored)
    for response in (
        identity_api.get(job_id),
        requests.delete(f"{identity_api.base}/images/{job_id}", headers=identity_api.key_headers, timeout=10),
    ):
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "storage_error"


def test_v1_dialect(stacks: StackFactory) -> None:
    api = _api(stacks(api_style="v1"))
    _assert_good_job(api, api.post({"prompt": "a boat", "n": 2}), 2, (1024, 1024))
    assert [c["dialect"] for c in api.calls("generate")] == ["v1"]


def test_flux_answers_a_url_the_function_downloads_stores_and_prices_per_image(flux_api: Api) -> None:
    job = _assert_good_job(flux_api, flux_api.post({"prompt": "a cat", "size": "1440x1120"}), 1, (1440, 1120))
    [call] = flux_api.calls("generate")
    assert (call["dialect"], call["auth"], call["model"]) == ("deployments", "bearer", "FLUX-1.1-pro")
    assert len(flux_api.calls("download")) == 1
    assert job["model"] == "FLUX-1.1-pro"
    assert "usage" not in job  # FLUX counts no tokens
    assert job["cost"] == {"amount": 0.04, "currency": "USD", "prices_as_of": "2026-03-23"}


def test_flux_refuses_what_it_does_not_take_before_calling_azure(flux_api: Api) -> None:
    for body, field in (
        ({"prompt": "a cat", "n": 2}, "n"),
        ({"prompt": "a cat", "quality": "high"}, "quality"),
        ({"prompt": "a cat", "size": "1440x1440"}, "size"),
    ):
        response = flux_api.post(body)
        assert response.status_code == 400, body
        assert response.json()["error"]["details"]["field"] == field
    assert flux_api.calls("generate") == []


def test_connection_string_mode_with_api_key(stacks: StackFactory) -> None:
    api = _api(stacks(storage_mode="connection-string", aoai_api_key="emulator-api-key-1"))
    job = _assert_good_job(api, api.post({"prompt": "a tree", "n": 2}), 2, (1024, 1024))
    assert api.calls("generate")[0]["auth"] == "api-key"
    assert job["images"][0]["url"].startswith("http://127.0.0.1:")
    health = requests.get(f"{api.base}/health", timeout=10).json()
    backends = health.get("backends", [{}])
    assert health == {
        "status": "healthy",
        "checks": {"settings": "ok", "storage": "ok"},
        "api_style": "v1",
        "model": "gpt-image-2",
        "model_lifecycle": {
            "model": "gpt-image-2",
            "version": "2026-04-21",
            "stage": "ga",
            "retires": "2027-10-21",
            "replacement": None,
            "retires_soon": False,
        },
        "auth": "api-key",
        "webhooks": "off",
        "pacing": "on",
        "job_deadline_seconds": 3600.0,
        "backends": [{**backends[0], "state": "ready"}],
    }
    [backend] = backends
    assert (backend["label"], backend["deployment"], backend["rpm"]) == ("local", "gpt-image-2", 6000)


def test_health_answers_a_probe_at_once_while_storage_is_down(tmp_path: Path) -> None:
    """Load balancers and App Service probe /api/health with a timeout of seconds: with storage down
    it answers 503 naming storage (one attempt per service, no retry backoff), and 200 once it is back."""
    stack = start_local_stack(tmp_path / "stack")
    try:
        url = f"{stack.devhost_url}/api/health"
        assert requests.get(url, timeout=30).status_code == 200
        stack.stop_azurite()
        down = requests.get(url, timeout=PROBE_TIMEOUT_SECONDS)
        assert down.status_code == 503
        assert down.json()["status"] == "unhealthy"
        assert "Storage is unavailable" in down.json()["checks"]["storage"]
        stack.start_azurite_again()
        wait_until(lambda: requests.get(url, timeout=PROBE_TIMEOUT_SECONDS).status_code == 200, timeout=30)
    finally:
        stack.stop()


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("SAS_TTL_MINUTES", "an hour", "setting SAS_TTL_MINUTES must be a number, not 'an hour'"),
        ("AZURE_OPENAI_BACKENDS", "[]", "setting AZURE_OPENAI_BACKENDS must be a non-empty JSON array"),
    ],
)
def test_a_bad_setting_stops_start_up_naming_it(
    tmp_path: Path, setting: str, value: str, message: str
) -> None:
    """Like the Functions host indexing the app: the app does not start, and its log says which setting."""
    with pytest.raises(ProcessStartError) as caught:
        start_local_stack(tmp_path / "stack", setting_overrides={setting: value}).stop()
    assert "devhost" in str(caught.value)
    assert message in str(caught.value)


# --- links are read-only and for one blob ----------------------------------------------------


def test_a_link_cannot_write_delete_or_open_another_blob(identity_api: Api) -> None:
    job = identity_api.post({"prompt": "two owls", "n": 2}).json()
    first, second = (urlsplit(image["url"]) for image in job["images"])
    url = first.geturl()
    put = requests.put(
        url, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10, verify=identity_api.ca
    )
    assert put.status_code == 403
    assert requests.delete(url, timeout=10, verify=identity_api.ca).status_code == 403
    other = second._replace(query=first.query).geturl()
    assert requests.get(other, timeout=10, verify=identity_api.ca).status_code == 403
    assert identity_api.download(url).status_code == 200  # still intact


# --- bad input -------------------------------------------------------------------------------

BAD_BODIES: list[tuple[str, Any, str]] = [
    ("missing prompt", {"n": 1}, "prompt"),
    ("empty prompt", {"prompt": ""}, "prompt"),
    ("too long prompt", {"prompt": "x" * 32001}, "prompt"),
    ("prompt not a string", {"prompt": ["a"]}, "prompt"),
    ("n not an integer", {"prompt": "a", "n": "2"}, "n"),
    ("n too small", {"prompt": "a", "n": 0}, "n"),
    ("n too large", {"prompt": "a", "n": 11}, "n"),
    ("size outside the model's rule", {"prompt": "a", "size": "1000x1000"}, "size"),
    ("webp, which Azure does not serve", {"prompt": "a", "output_format": "webp"}, "output_format"),
    ("quality of another model", {"prompt": "a", "quality": "hd"}, "quality"),
    ("unknown field", {"prompt": "a", "colour": "red"}, "colour"),
    ("metadata not strings", {"prompt": "a", "metadata": {"k": 1}}, "metadata.k"),
    ("not an object", ["prompt"], "body"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_input_is_400_naming_the_field(identity_api: Api, case: str, body: Any, field: str) -> None:
    response = identity_api.post(body)
    assert response.status_code == 400, case
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"]["field"] == field
    assert identity_api.calls("generate") == []


@pytest.mark.parametrize(
    ("case", "raw", "content_type", "field"),
    [
        ("bad JSON", b'{"prompt": "a",', "application/json", "body"),
        (
            "JSON nested too deeply",
            b'{"prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            "application/json",
            "body",
        ),
        ("a lone surrogate", b'{"prompt": "a \\ud800 b"}', "application/json", "body"),
        ("a number too long", b'{"prompt": "a", "n": ' + b"1" * 5000 + b"}", "application/json", "body"),
        ("wrong content type", b'{"prompt": "a"}', "text/plain", "Content-Type"),
        # Over the app's 256 KiB, under the host's FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (320 KiB): the app's 400.
        ("huge body", b'{"prompt": "' + b"a" * 300_000 + b'"}', "application/json", "body"),
    ],
)
def test_bad_bodies_are_400(identity_api: Api, case: str, raw: bytes, content_type: str, field: str) -> None:
    response = identity_api.post(None, raw=raw, headers={"Content-Type": content_type})
    assert response.status_code == 400, case
    assert response.json()["error"] == {
        "code": "invalid_request",
        "message": response.json()["error"]["message"],
        "details": {"field": field},
    }


@pytest.mark.parametrize("headers", [{}, {"x-functions-key": "wrong"}])
def test_missing_or_wrong_function_key_is_401(identity_api: Api, headers: dict[str, str]) -> None:
    response = requests.post(f"{identity_api.base}/images", json={"prompt": "a"}, headers=headers, timeout=10)
    assert response.status_code == 401
    assert (
        requests.get(f"{identity_api.base}/images/{uuid.uuid4()}", headers=headers, timeout=10).status_code
        == 401
    )
    assert identity_api.calls() == []


def test_function_key_in_the_code_query_parameter(identity_api: Api) -> None:
    response = requests.get(
        f"{identity_api.base}/images/{uuid.uuid4()}",
        params={"code": identity_api.stack.function_key},
        timeout=10,
    )
    assert response.status_code == 404


# --- upstream faults -------------------------------------------------------------------------


def test_429_then_success_waits_retry_after(identity_api: Api) -> None:
    identity_api.emulator("POST", "faults", {"kind": "429", "count": 1, "retry_after": 1.5})
    started = time.monotonic()
    response = identity_api.post({"prompt": "patience"})
    assert response.status_code == 200
    assert time.monotonic() - started >= 1.5
    assert [c["status"] for c in identity_api.calls("generate")] == [429, 200]


def test_persistent_429_is_503_with_retry_after_once_the_deadline_passes(fault_api: Api) -> None:
    """Throttled for good: the job keeps trying (cooling down for each retry-after) until its
    deadline (JOB_DEADLINE_SECONDS 5 here), then ends upstream_throttled with when to come back."""
    fault_api.emulator("POST", "faults", {"kind": "429", "count": 20, "retry_after": 2})
    response = fault_api.post({"prompt": "too busy"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    body = response.json()
    assert body["status"] == "failed" and body["error"]["code"] == "upstream_throttled"
    assert fault_api.get(body["id"]).status_code == 503
    assert 2 <= len(fault_api.calls("generate")) <= 4  # paced by the cool-downs, not hammered


def test_a_429_that_passes_is_absorbed(fault_api: Api) -> None:
    fault_api.emulator("POST", "faults", {"kind": "429", "count": 1, "retry_after": 1})
    response = fault_api.post({"prompt": "busy for a moment"})
    assert response.status_code == 200
    assert [call["status"] for call in fault_api.calls("generate")] == [429, 200]


def test_repeated_500s_are_502(fault_api: Api) -> None:
    fault_api.emulator("POST", "faults", {"kind": "500", "count": 20})
    response = fault_api.post({"prompt": "broken"})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"
    assert len(fault_api.calls("generate")) >= 2  # it retried


def test_a_hang_is_504_within_the_configured_timeout(fault_api: Api) -> None:
    fault_api.emulator("POST", "faults", {"kind": "hang", "count": 1, "hang_seconds": 60})
    started = time.monotonic()
    response = fault_api.post({"prompt": "slow"})
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert elapsed < 4 + 3


def test_a_reset_connection_is_retried(identity_api: Api) -> None:
    identity_api.emulator("POST", "faults", {"kind": "reset", "count": 1})
    assert identity_api.post({"prompt": "again"}).status_code == 200


def test_content_filter_is_422_with_categories(identity_api: Api) -> None:
    response = identity_api.post({"prompt": "something forbidden"})
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "content_filtered"
    assert body["error"]["details"]["categories"]["violence"]["filtered"] is True
    assert body["images"] == []


def test_a_filtered_output_image_is_422(identity_api: Api) -> None:
    identity_api.emulator("POST", "config", {"filter_output_index": 1})
    response = identity_api.post({"prompt": "two dogs", "n": 2})
    assert response.status_code == 422
    assert response.json()["error"]["details"]["images"][0]["index"] == 1


def test_flux_content_filter(flux_api: Api) -> None:
    response = flux_api.post({"prompt": "forbidden things"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "content_filtered"


def test_a_truncated_download_is_fetched_again(flux_api: Api) -> None:
    flux_api.emulator("POST", "faults", {"kind": "truncated", "count": 1})
    job = _assert_good_job(flux_api, flux_api.post({"prompt": "a whole cat"}), 1, (1024, 1024))
    assert [c["fault"] for c in flux_api.calls("download")][0] == "truncated"
    assert job["status"] == "succeeded"


def test_a_download_that_stays_truncated_is_502_and_nothing_is_stored(flux_api: Api) -> None:
    flux_api.emulator("POST", "faults", {"kind": "truncated", "count": 10})
    response = flux_api.post({"prompt": "a broken cat"})
    assert response.status_code == 502
    job = response.json()
    assert job["error"]["code"] == "upstream_error"
    created = datetime.fromisoformat(job["created_at"])
    container = flux_api.admin_blobs().get_container_client("images")
    assert list(container.list_blobs(name_starts_with=f"{created:%Y/%m/%d}/{job['id']}/")) == []


# --- nothing secret in the logs ---------------------------------------------------------------


@pytest.fixture
def marker() -> str:
    return f"PromptMarker{uuid.uuid4().hex}"


def test_logs_hold_no_token_key_signature_or_prompt(stacks: StackFactory, marker: str) -> None:
    api = _api(stacks(storage_mode="connection-string", aoai_api_key="emulator-api-key-1"))
    for current in (api, _api(stacks())):
        job = current.post({"prompt": f"a painting of {marker}", "n": 2}).json()
        current.get(job["id"])
        current.post({"prompt": f"{marker} forbidden"})
        current.post({"prompt": marker, "size": "1x1"})
    secrets = [marker, "emulator-api-key-1", "sig=", "AccountKey=", "eyJ"]
    for stack in stacks.all():
        secrets.append(stack.function_key)
        for process in stack.all_processes():
            text = process.log_text()
            for secret in secrets:
                assert secret not in text, f"{process.name} log holds {secret[:12]}…"


def test_a_forged_host_header_never_reaches_location_or_the_jobs_urls(identity_api: Api) -> None:
    """Links that consumers follow with their function key come from PUBLIC_API_BASE, not from Host."""
    response = identity_api.post(
        {"prompt": "a fox"}, headers={"Host": "attacker.example", "Prefer": "respond-async"}
    )
    assert response.status_code == 202
    assert response.headers["Location"].startswith(f"{identity_api.base}/images/")
    assert "attacker" not in json.dumps(response.json())
    assert response.json()["urls"]["get"].startswith(identity_api.base)


def test_with_easy_auth_the_dev_host_names_the_caller_and_a_forged_principal_header_is_ignored(
    stacks: StackFactory,
) -> None:
    """App Service Authentication as the platform applies it: the token names the caller, a
    client-sent X-MS-CLIENT-PRINCIPAL-ID never does, and each caller sees only its own jobs."""
    from devtools.tokens import mint_access_token, object_id_for_client

    audience = "api://imagegen-local"
    stack = stacks(
        setting_overrides={"EASY_AUTH": "true"}, devhost_env={"DEVHOST_EASY_AUTH_AUDIENCES": audience}
    )
    base = f"{stack.devhost_url}/api"

    def bearer(client_id: str) -> dict[str, str]:
        token, _ = mint_access_token(resource=audience, client_id=client_id, lifetime_seconds=600)
        return {"Authorization": f"Bearer {token}"}

    forged = {"X-MS-CLIENT-PRINCIPAL-ID": object_id_for_client("alice")}
    body = {"prompt": "a keyless fox"}
    async_ = {"Prefer": "respond-async"}
    assert (
        requests.post(f"{base}/images", json=body, headers={**forged, **async_}, timeout=30).status_code
        == 401
    )
    created = requests.post(
        f"{base}/images", json=body, headers={**bearer("bob"), **forged, **async_}, timeout=30
    )
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    # Bob's job, though the forged header named Alice: Alice (with her own token) cannot see it.
    assert requests.get(f"{base}/images/{job_id}", headers=bearer("alice"), timeout=30).status_code == 404
    assert requests.get(f"{base}/images/{job_id}", headers=bearer("bob"), timeout=30).status_code in (
        200,
        202,
    )
    assert requests.get(f"{base}/health", timeout=10).status_code == 200  # anonymous, as excluded


def test_a_body_over_the_hosts_limit_is_refused_before_the_app_reads_it(identity_api: Api) -> None:
    """FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (infra and the stack: 327680): the host answers before the app
    (413 from the dev host; Azure's host answers 500 today, azure-functions-host#10519)."""
    response = identity_api.post(None, raw=b'{"prompt": "' + b"a" * 2_000_000 + b'"}')
    assert response.status_code == 413
    assert identity_api.calls("generate") == []
