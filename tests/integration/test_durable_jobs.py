"""Jobs that survive: 202 + Location, the queue worker, idempotency, cancel, queues in and out,
webhooks, and crashes of the dev host and of Azurite."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from devtools.stack import LocalStack, start_local_stack
from tests.integration.conftest import StackFactory
from tests.integration.test_function_app import Api, _api
from tests.integration.waiting import wait_until

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"local-test-webhook-secret-32byte").decode()
DURABLE_SETTINGS = {
    "MAX_WAIT_SECONDS": "8",
    "JOB_LEASE_SECONDS": "5",
    "WEBHOOK_SECRET": WEBHOOK_SECRET,
    "ALLOW_LOCAL_WEBHOOKS": "true",
}
FAST_DEVHOST = {"DEVHOST_QUEUE_LEASE_SECONDS": "3"}


def queue(stack: LocalStack, name: str) -> QueueClient:
    client = QueueClient.from_connection_string(
        stack.azurite.connection_string,
        name,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
        connection_verify=str(stack.tls.ca_cert),
    )
    with contextlib.suppress(ResourceExistsError):  # the app may have made it already
        client.create_queue()
    return client


def drain(client: QueueClient) -> list[dict[str, Any]]:
    found = []
    for message in client.receive_messages(max_messages=32, visibility_timeout=1):
        found.append(json.loads(message.content))
        client.delete_message(message)
    return found


@pytest.fixture
def api(stacks: StackFactory) -> Api:
    return _api(stacks(setting_overrides=DURABLE_SETTINGS, devhost_env=FAST_DEVHOST))


def follow_like_logic_apps(api: Api, response: requests.Response) -> tuple[requests.Response, int]:
    """The Logic Apps HTTP action's asynchronous pattern: while 202, sleep Retry-After, GET Location."""
    polls = 0
    while response.status_code == 202:
        location = response.headers["Location"]
        time.sleep(int(response.headers["Retry-After"]))
        response = requests.get(location, headers=api.key_headers, timeout=30)
        polls += 1
    return response, polls


# --- asynchronous request-reply --------------------------------------------------------------


def test_respond_async_answers_202_and_logic_apps_polling_gets_the_images(api: Api) -> None:
    api.emulator("POST", "config", {"latency_seconds": 3})
    started = time.monotonic()
    response = api.post({"prompt": "a slow sunrise", "n": 2}, headers={"Prefer": "respond-async"})
    assert time.monotonic() - started < 2
    assert response.status_code == 202
    body = response.json()
    assert body["status"] in ("queued", "running")
    assert response.headers["Location"] == f"{api.base}/images/{body['id']}"
    assert response.headers["Location"].startswith("http://127.0.0.1:")
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["Preference-Applied"] == "respond-async"
    final, polls = follow_like_logic_apps(api, response)
    assert polls >= 1
    assert final.status_code == 200
    assert final.json()["id"] == body["id"]
    assert len(final.json()["images"]) == 2
    assert api.download(final.json()["images"][1]["url"]).status_code == 200


def test_prefer_wait_answers_202_when_the_job_outlasts_it(api: Api) -> None:
    api.emulator("POST", "config", {"latency_seconds": 3})
    response = api.post({"prompt": "patience"}, headers={"Prefer": "wait=1"})
    assert response.status_code == 202
    assert response.headers["Preference-Applied"] == "wait=1"
    assert response.json()["status"] == "running"
    final, _ = follow_like_logic_apps(api, response)
    assert final.status_code == 200
    # The waiting instance finished the job itself: one paid generation.
    assert len(api.calls("generate")) == 1


def test_default_wait_answers_200_in_time(api: Api) -> None:
    api.emulator("POST", "config", {"latency_seconds": 1})
    assert api.post({"prompt": "quick"}).status_code == 200


def test_a_failed_job_reads_back_with_its_error_status(api: Api) -> None:
    response = api.post({"prompt": "forbidden art"}, headers={"Prefer": "respond-async"})
    final, _ = follow_like_logic_apps(api, response)
    assert final.status_code == 422
    assert final.json()["error"]["code"] == "content_filtered"


# --- idempotency -----------------------------------------------------------------------------


def test_same_idempotency_key_and_body_is_the_same_job(api: Api) -> None:
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    first = api.post({"prompt": "one lamp"}, headers=key)
    second = api.post({"prompt": "one lamp"}, headers=key)
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert [i["blob"] for i in first.json()["images"]] == [i["blob"] for i in second.json()["images"]]
    assert len(api.calls("generate")) == 1
    other = api.post({"prompt": "two lamps"}, headers=key)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert first.json()["id"] not in other.text  # the refusal does not say whose job the key names


def test_twenty_parallel_identical_posts_make_one_job_and_one_paid_generation(api: Api) -> None:
    api.emulator("POST", "config", {"latency_seconds": 2})
    key = {"Idempotency-Key": f"burst-{uuid.uuid4()}"}
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: api.post({"prompt": "the same", "n": 1}, headers=key), range(20)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["id"] for r in responses}) == 1
    assert api.emulator("GET", "stats")["paid_generations"] == 1


def test_a_bad_idempotency_key_is_400(api: Api) -> None:
    response = api.post({"prompt": "a"}, headers={"Idempotency-Key": "x" * 300})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "Idempotency-Key"


# --- cancel ----------------------------------------------------------------------------------


def test_cancel_a_running_job(api: Api) -> None:
    api.emulator("POST", "config", {"latency_seconds": 5})
    job = api.post({"prompt": "never mind"}, headers={"Prefer": "respond-async"}).json()
    wait_until(lambda: api.get(job["id"]).json()["status"] == "running", timeout=10, interval=0.1)
    canceled = requests.delete(f"{api.base}/images/{job['id']}", headers=api.key_headers, timeout=10)
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    read = api.get(job["id"])
    assert read.status_code == 409
    assert read.json()["error"]["code"] == "canceled"
    time.sleep(6)  # past the emulator's latency: the canceled job stays canceled, with no images
    assert api.get(job["id"]).json()["status"] == "canceled"
    again = requests.delete(f"{api.base}/images/{job['id']}", headers=api.key_headers, timeout=10)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"


def test_cancel_a_finished_job_is_409(api: Api) -> None:
    job = api.post({"prompt": "done already"}).json()
    response = requests.delete(f"{api.base}/images/{job['id']}", headers=api.key_headers, timeout=10)
    assert response.status_code == 409
    assert api.get(job["id"]).status_code == 200


# --- queues in and out -----------------------------------------------------------------------


def test_image_requests_queue_makes_jobs_and_results_are_published(api: Api) -> None:
    stack = api.stack
    requests_queue, results = queue(stack, "image-requests"), queue(stack, "image-results")
    drain(results)
    key = f"pipeline-{uuid.uuid4()}"
    requests_queue.send_message(json.dumps({"prompt": "from a queue", "n": 2, "idempotency_key": key}))
    requests_queue.send_message("{not json")
    nested_too_deeply = "[" * 5000 + "]" * 5000
    requests_queue.send_message(nested_too_deeply)
    requests_queue.send_message(json.dumps({"prompt": "x", "n": 99}))
    published: list[dict[str, Any]] = []
    wait_until(lambda: published.extend(drain(results)) or any(p["status"] == "succeeded" for p in published))
    done = next(p for p in published if p["status"] == "succeeded")
    assert len(done["images"]) == 2
    assert done["model"] == "gpt-image-2"  # results carry what drew it, its usage and its cost
    assert done["usage"]["output_tokens"] > 0 and done["cost"]["currency"] == "USD"
    assert api.download(done["images"][0]["url"]).status_code == 200
    assert api.get(done["id"]).json()["request"]["prompt"] == "from a queue"
    poison = queue(stack, "image-requests-poison")
    notes: list[dict[str, Any]] = []
    wait_until(lambda: notes.extend(drain(poison)) or len(notes) >= 3)
    reasons = sorted(note["error"]["details"]["field"] for note in notes)
    assert reasons == ["body", "body", "n"]
    assert {note["message"] for note in notes} == {
        "{not json",
        nested_too_deeply,
        json.dumps({"prompt": "x", "n": 99}),
    }


def test_jobs_with_long_non_ascii_prompts_are_published(api: Api) -> None:
    """Queue messages hold 64 KiB of base64: 12,000 CJK characters travel whole (as UTF-8), 30,000
    (the model takes 32,000) are cut to fit and marked; GET has every prompt whole."""
    results = queue(api.stack, "image-results")
    drain(results)
    whole, long = "夜明けの灯台" * 2000, "夜明けの灯台" * 5000
    jobs = {prompt: api.post({"prompt": prompt}).json()["id"] for prompt in (whole, long)}
    published: dict[str, dict[str, Any]] = {}
    wait_until(
        lambda: (
            published.update({p["id"]: p for p in drain(results)}) or published.keys() >= set(jobs.values())
        )
    )
    assert published[jobs[whole]]["request"]["prompt"] == whole
    assert "truncated" not in published[jobs[whole]]
    cut = published[jobs[long]]
    assert cut["truncated"] is True and cut["status"] == "succeeded"
    assert long.startswith(cut["request"]["prompt"].removesuffix("…"))
    assert api.download(cut["images"][0]["url"]).status_code == 200
    assert api.get(jobs[long]).json()["request"]["prompt"] == long


def test_every_terminal_job_is_published(api: Api) -> None:
    results = queue(api.stack, "image-results")
    drain(results)
    ok = api.post({"prompt": "published"}).json()
    refused = api.post({"prompt": "forbidden words"}).json()
    seen: dict[str, str] = {}
    wait_until(lambda: seen.update({p["id"]: p["status"] for p in drain(results)}) or len(seen) >= 2)
    assert seen[ok["id"]] == "succeeded"
    assert seen[refused["id"]] == "failed"


def test_a_poisoned_job_message_ends_the_job_failed_with_the_reason(api: Api) -> None:
    api.emulator("POST", "config", {"latency_seconds": 30})
    job = api.post({"prompt": "doomed"}, headers={"Prefer": "wait=1"}).json()
    # What the host does after maxDequeueCount failed tries: the message lands on image-jobs-poison.
    queue(api.stack, "image-jobs-poison").send_message(json.dumps({"job_id": job["id"]}))
    [final] = wait_until(lambda: (r := api.get(job["id"])).status_code != 202 and [r], timeout=20)
    assert final.status_code == 500
    assert final.json()["error"]["code"] == "processing_failed"


# --- webhooks --------------------------------------------------------------------------------


class Receiver:
    """An HTTPS webhook receiver on loopback that refuses the first `fail_first` deliveries."""

    def __init__(self, stack: LocalStack, fail_first: int = 0) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.attempts = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(stack.tls.server_cert, stack.tls.server_key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/hooks/images"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver(api: Api) -> Iterator[Receiver]:
    hooks = Receiver(api.stack, fail_first=2)
    yield hooks
    hooks.close()


def test_webhook_is_signed_and_retried(api: Api, receiver: Receiver) -> None:
    job = api.post({"prompt": "call me back", "callback_url": receiver.url}).json()
    headers, body = wait_until(lambda: receiver.deliveries and receiver.deliveries[0], timeout=20)
    assert receiver.attempts == 3  # two refusals, then delivered
    payload = Webhook(WEBHOOK_SECRET).verify(body, headers)
    assert payload["id"] == job["id"]
    assert payload["status"] == "succeeded"
    assert (payload["model"], payload["usage"], payload["cost"]) == (job["model"], job["usage"], job["cost"])
    assert headers["webhook-id"] == f"{job['id']}.succeeded"
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()).verify(
            body, headers
        )


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # not https
        "https://169.254.169.254/latest/meta-data",  # link-local: the metadata endpoint
        "https://10.1.2.3/hook",  # private
        "https://192.168.0.10/hook",  # private
        "https://[::1]:8443/hook",  # loopback, IPv6
        "https://localhost:8443/hook",  # a name resolving to loopback
        "https://127.0.0.1:8443/hook",  # loopback
        "ftp://files.example.com/x",
        "https://user:pw@example.com/hook",
        "https://[::1/hook",  # malformed: an unclosed IPv6 literal
        "https://a..example.com/hook",  # malformed: an empty label
        "https://example.com:0/hook",
    ],
)
def test_ssrf_guard_refuses_callback_targets(stacks: StackFactory, url: str) -> None:
    guarded = {k: v for k, v in DURABLE_SETTINGS.items() if k != "ALLOW_LOCAL_WEBHOOKS"}
    api = _api(stacks(setting_overrides=guarded, devhost_env=FAST_DEVHOST))
    response = api.post({"prompt": "a", "callback_url": url})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "callback_url"
    assert api.calls("generate") == []


# --- crashes ---------------------------------------------------------------------------------


@pytest.fixture
def crash_stack(tmp_path: Path) -> Iterator[LocalStack]:
    stack = start_local_stack(
        tmp_path / "stack",
        setting_overrides=DURABLE_SETTINGS,
        devhost_env=FAST_DEVHOST,
    )
    yield stack
    stack.stop()


def _terminal(api: Api, job_ids: list[str], timeout: float) -> dict[str, str]:
    def statuses() -> dict[str, str] | None:
        found = {job_id: api.get(job_id).json()["status"] for job_id in job_ids}
        return found if all(s in ("succeeded", "failed", "canceled") for s in found.values()) else None

    result: dict[str, str] = wait_until(statuses, timeout=timeout, interval=0.5)
    return result


def test_killing_the_dev_host_mid_job_loses_nothing(crash_stack: LocalStack) -> None:
    api = _api(crash_stack, {"latency_seconds": 5})
    async_jobs = [
        api.post({"prompt": f"async {i}"}, headers={"Prefer": "respond-async"}).json()["id"] for i in range(3)
    ]
    inline = api.post({"prompt": "inline"}, headers={"Prefer": "wait=1"})
    assert inline.status_code == 202
    jobs = [*async_jobs, inline.json()["id"]]
    wait_until(
        lambda: all(api.get(job_id).json()["status"] == "running" for job_id in jobs),
        timeout=10,
        interval=0.1,
    )
    time.sleep(0.5)  # the generations are in flight at the emulator (5 s each)
    assert api.calls("generate") == []  # none has finished yet
    crash_stack.crash_devhost()
    crash_stack.restart_devhost()
    assert _terminal(api, jobs, timeout=60) == dict.fromkeys(jobs, "succeeded")
    # A sync generation is repeated at most once, and only because the instance died.
    assert len(api.calls("generate")) <= 2 * len(jobs)
    logs = "".join(process.log_text() for process in crash_stack.all_processes())
    assert logs.count("resumed: its previous worker stopped renewing") == len(jobs)


def test_restarting_azurite_mid_job_leaves_no_job_stuck(crash_stack: LocalStack) -> None:
    api = _api(crash_stack, {"latency_seconds": 4})
    jobs = [
        api.post({"prompt": f"storage {i}"}, headers={"Prefer": "respond-async"}).json()["id"]
        for i in range(3)
    ]
    jobs.append(api.post({"prompt": "inline"}, headers={"Prefer": "wait=1"}).json()["id"])
    wait_until(
        lambda: all(api.get(job_id).json()["status"] == "running" for job_id in jobs),
        timeout=10,
        interval=0.1,
    )
    crash_stack.stop_azurite()
    time.sleep(6)  # the generations finish while storage is down
    crash_stack.start_azurite_again()
    outcomes = _terminal(api, jobs, timeout=90)
    for job_id, status in outcomes.items():
        body = api.get(job_id).json()
        assert status == "succeeded" or body["error"]["code"] == "storage_error", body


def test_two_instances_never_both_finish_a_job(crash_stack: LocalStack) -> None:
    api = _api(crash_stack, {"latency_seconds": 1})
    crash_stack.start_devhost("devhost-2")
    jobs = [
        api.post({"prompt": f"shared {i}"}, headers={"Prefer": "respond-async"}).json()["id"]
        for i in range(12)
    ]
    assert _terminal(api, jobs, timeout=60) == dict.fromkeys(jobs, "succeeded")
    assert api.emulator("GET", "stats")["paid_generations"] == len(jobs)
    logs = "".join(
        p.log_text()
        for p in crash_stack.all_processes()
        if "devhost" in p.log_path.parent.name or p.name == "devhost"
    )
    assert logs.count("succeeded (attempt 1)") == len(jobs)


def test_a_resumed_job_does_not_upload_a_stored_image_again(crash_stack: LocalStack) -> None:
    """The state a crash leaves between the upload and the final record: the image is stored once."""
    import io
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import BlobServiceClient, ContentSettings
    from PIL import Image

    from imagegen.domain.jobs import Job, JobStatus
    from imagegen.domain.requests import ImageRequest

    stack = crash_stack
    api = _api(stack, {"latency_seconds": 0.1})
    now = datetime.now(UTC)
    job = Job.new(ImageRequest(prompt="a stored cat"), now=now, status=JobStatus.RUNNING, model="gpt-image-2")
    # The dead worker had generated and stored the image, and died before writing the final record;
    # its lease has lapsed.
    buffer = io.BytesIO()
    Image.new("RGB", (1024, 1024), (200, 30, 30)).save(buffer, format="PNG")
    blobs = BlobServiceClient.from_connection_string(
        stack.azurite.connection_string, connection_verify=api.ca
    )
    stored = blobs.get_blob_client("images", job.image_blob_name(0, "png"))
    with contextlib.suppress(ResourceExistsError):
        blobs.create_container("images")
    stored.upload_blob(
        buffer.getvalue(),
        content_settings=ContentSettings(content_type="image/png"),
        metadata={"job_id": job.id, "index": "0"},
    )
    etag = stored.get_blob_properties().etag
    crashed = job.leased("dead-instance", now - timedelta(seconds=1), now - timedelta(seconds=40))
    with contextlib.suppress(ResourceExistsError):
        blobs.create_container("jobs")
    blobs.get_blob_client("jobs", f"{job.id}.json").upload_blob(json.dumps(crashed.to_record()))
    queue(stack, "image-jobs").send_message(json.dumps({"job_id": job.id}))

    assert _terminal(api, [job.id], timeout=30) == {job.id: "succeeded"}
    assert stored.get_blob_properties().etag == etag  # not uploaded again
    assert len(api.calls("generate")) == 1  # the synchronous call is repeated once, after the crash
    body = api.get(job.id).json()
    assert body["images"][0]["blob"] == job.image_blob_name(0, "png")
    assert api.download(body["images"][0]["url"]).content == buffer.getvalue()


def test_a_job_message_with_a_stale_record_never_runs_the_job_again(api: Api) -> None:
    """A message names a job only: a record it carries (here a stale one, from before the cancel) is
    ignored, and a replay for a job whose publishing is recorded sends nothing again."""
    api.emulator("POST", "config", {"latency_seconds": 3})
    job = api.post({"prompt": "only once"}, headers={"Prefer": "respond-async"}).json()
    wait_until(lambda: api.get(job["id"]).json()["status"] == "running", timeout=10, interval=0.1)
    results = queue(api.stack, "image-results")
    drain(results)
    requests.delete(f"{api.base}/images/{job['id']}", headers=api.key_headers, timeout=10)
    published = wait_until(lambda: [p for p in drain(results) if p["id"] == job["id"]], timeout=15)
    assert [p["status"] for p in published] == ["canceled"]
    stale = {
        "job_id": job["id"],
        "record": {
            **{k: job[k] for k in ("id", "created_at", "updated_at", "request")},
            "status": "queued",
            "images": [],
        },
        "etag": '"0x8DDSTALEETAG"',
    }
    queue(api.stack, "image-jobs").send_message(json.dumps(stale))
    time.sleep(3.5)
    assert api.get(job["id"]).json()["status"] == "canceled"
    assert [p for p in drain(results) if p["id"] == job["id"]] == []  # the replay sent nothing
    assert len(api.calls("generate")) <= 1  # the canceled run's call; the stale message started none
