"""The dev host as a process, with the tiny app in devhost_apps/basic, against Azurite (account key).

Covers the Functions host contract the rest of the suite relies on: routes, keys, 404/401/413/500,
queue triggers with base64 messages, output bindings, dequeue counts, poison, lease renewal and
what happens to in-flight messages when the host stops. Raw sockets send what no client library
would: requests aiohttp cannot parse, bytes that are not UTF-8, bodies over the limit.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, QueueServiceClient

from devtools.procs import ManagedProcess
from devtools.services import AzuriteEndpoints, DevhostEndpoint, start_devhost
from tests.integration.waiting import wait_until

APP_ROOT = Path(__file__).parent / "devhost_apps" / "basic"
FUNCTION_KEY = "test-function-key-" + uuid.uuid4().hex
MASTER_KEY = "test-master-key-" + uuid.uuid4().hex
BODY_LIMIT = 327_680  # FUNCTIONS_REQUEST_BODY_SIZE_LIMIT as infra/app/api.bicep sets it

pytestmark = pytest.mark.integration


def queue_names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {
        "QUEUE_IN": f"dh-in-{suffix}",
        "QUEUE_SEEN": f"dh-seen-{suffix}",
        "QUEUE_FAIL": f"dh-fail-{suffix}",
        "QUEUE_SLOW": f"dh-slow-{suffix}",
    }


def send_base64(queue: QueueClient, text: str) -> None:
    queue.send_message(base64.b64encode(text.encode()).decode())


def drain_json(queue: QueueClient) -> list[dict[str, Any]]:
    """Read (and delete) every visible message of an output queue, decoded from base64 JSON."""
    found = []
    for message in queue.receive_messages(max_messages=32):
        found.append(json.loads(base64.b64decode(message.content)))
        queue.delete_message(message)
    return found


class DevhostUnderTest:
    def __init__(self, azurite: AzuriteEndpoints, tmp_path: Path, **extra_env: str) -> None:
        self.queues = queue_names()
        self.record_dir = tmp_path / "records"
        self.record_dir.mkdir(exist_ok=True)
        self.log_dir = tmp_path / "logs"
        self.settings = {
            "AzureWebJobsStorage": azurite.connection_string,
            "RECORD_DIR": str(self.record_dir),
            "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": str(BODY_LIMIT),
            **self.queues,
        }
        self.extra_env = {"DEVHOST_MASTER_KEY": MASTER_KEY, **extra_env}
        self.service = QueueServiceClient.from_connection_string(azurite.connection_string)
        self.process: ManagedProcess | None = None
        self.endpoint: DevhostEndpoint | None = None

    def start(self) -> DevhostEndpoint:
        self.process, self.endpoint = start_devhost(
            log_dir=self.log_dir,
            app="function_app:app",
            settings=self.settings,
            function_key=FUNCTION_KEY,
            extra_env=self.extra_env,
            script_root=APP_ROOT,
        )
        return self.endpoint

    def queue(self, setting: str, suffix: str = "") -> QueueClient:
        client = self.service.get_queue_client(self.queues[setting] + suffix)
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        return client

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log_text(self) -> str:
        return self.process.log_text() if self.process else ""


@pytest.fixture(scope="module")
def devhost_module(
    azurite_plain: AzuriteEndpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevhostUnderTest]:
    under_test = DevhostUnderTest(azurite_plain, tmp_path_factory.mktemp("devhost"))
    under_test.start()
    yield under_test
    under_test.stop()


@pytest.fixture
def devhost(devhost_module: DevhostUnderTest) -> DevhostUnderTest:
    return devhost_module


@pytest.fixture
def api(devhost: DevhostUnderTest) -> str:
    assert devhost.endpoint is not None
    return devhost.endpoint.base_url + "/api"


# --- HTTP -----------------------------------------------------------------------------------------


def test_async_route_with_parameters_gets_bytes_body_query_and_headers(api: str) -> None:
    response = requests.post(
        f"{api}/items/42/widget?x=1&x=2&empty=&code={FUNCTION_KEY}",
        data=b"\x00\x01abc",
        headers={"X-Test": "yes"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["route_params"] == {"id": "42", "name": "widget"}
    assert seen["params"]["x"] == "1,2"  # repeated keys joined, as the host sends them
    assert "empty" not in seen["params"]  # empty values dropped
    assert seen["body_length"] == 5
    assert seen["body_is_bytes"] is True
    assert seen["x_test"] == "yes"
    assert seen["url"].startswith(f"{api}/items/42/widget?")


def test_optional_parameter_and_header_key(api: str) -> None:
    response = requests.get(f"{api}/items/7", headers={"x-functions-key": FUNCTION_KEY}, timeout=10)
    assert response.status_code == 200
    assert response.json()["route_params"] == {"id": "7"}


def test_constraint_mismatch_wrong_method_and_unknown_path_are_404(api: str) -> None:
    key = {"x-functions-key": FUNCTION_KEY}
    assert requests.get(f"{api}/items/not-a-number", headers=key, timeout=10).status_code == 404
    # A known path with a method the function does not allow: the host answers 404, not 405.
    wrong_method = requests.put(f"{api}/items/7", headers=key, timeout=10)
    assert wrong_method.status_code == 404
    assert wrong_method.content == b""
    assert requests.get(f"{api}/nothing-here", headers=key, timeout=10).status_code == 404
    assert requests.get(api.removesuffix("/api") + "/hello", timeout=10).status_code == 404  # no prefix


def test_literal_route_wins_over_parameter_route_for_its_method(api: str) -> None:
    key = {"x-functions-key": FUNCTION_KEY}
    assert requests.delete(f"{api}/items/special", headers=key, timeout=10).status_code == 202


def test_anonymous_sync_route_with_context_runs_on_a_thread(api: str) -> None:
    response = requests.get(f"{api}/hello", timeout=10)
    assert response.status_code == 200
    assert response.text.startswith("hello from hello on ")
    assert "MainThread" not in response.text
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert uuid.UUID(response.headers["X-Invocation-Id"])


def test_the_invocation_continues_the_callers_trace(api: str) -> None:
    trace_id = uuid.uuid4().hex
    caller = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    response = requests.get(f"{api}/hello", headers={"traceparent": caller}, timeout=10)
    version, seen_trace_id, span_id, flags = response.headers["X-Traceparent"].split("-")
    assert (version, seen_trace_id, flags) == ("00", trace_id, "01")
    assert span_id != caller.split("-")[2]


@pytest.mark.parametrize(
    ("headers", "query"),
    [({}, ""), ({"x-functions-key": "wrong"}, ""), ({}, "?code=wrong"), ({"x-functions-key": ""}, "?code=")],
)
def test_function_route_without_a_valid_key_is_401_with_empty_body(
    api: str, headers: dict[str, str], query: str
) -> None:
    response = requests.get(f"{api}/items/1{query}", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.content == b""


def test_admin_route_needs_the_master_key(api: str) -> None:
    assert requests.get(f"{api}/admin-only?code={FUNCTION_KEY}", timeout=10).status_code == 401
    response = requests.get(f"{api}/admin-only", headers={"x-functions-key": MASTER_KEY}, timeout=10)
    assert response.status_code == 200
    assert response.text == "admin"
    # The master key also opens function-level routes.
    assert requests.get(f"{api}/items/1?code={MASTER_KEY}", timeout=10).status_code == 200


def test_exception_is_500_without_details_and_logged(api: str, devhost: DevhostUnderTest) -> None:
    response = requests.get(f"{api}/boom", timeout=10)
    assert response.status_code == 500
    assert b"do-not-leak" not in response.content
    assert response.content == b""
    wait_until(lambda: "do-not-leak-this-detail" in devhost.log_text())


def test_returning_none_is_500_and_logged_with_the_function_name(api: str, devhost: DevhostUnderTest) -> None:
    response = requests.get(f"{api}/returns-none", timeout=10)
    assert response.status_code == 500
    assert response.content == b""
    wait_until(lambda: "function returns_none failed" in devhost.log_text())


def test_a_body_at_the_limit_reaches_the_function(api: str) -> None:
    response = requests.post(f"{api}/items/1?code={FUNCTION_KEY}", data=b"x" * BODY_LIMIT, timeout=10)
    assert response.status_code == 200
    assert response.json()["body_length"] == BODY_LIMIT


def test_request_log_has_path_status_and_duration_but_no_key_or_query(
    api: str, devhost: DevhostUnderTest
) -> None:
    marker = uuid.uuid4().hex
    requests.get(f"{api}/items/99/{marker}?code={FUNCTION_KEY}&secret=s3cr3t", timeout=10)
    line = wait_until(
        lambda: next(
            (ln for ln in devhost.log_text().splitlines() if marker in ln and "http GET" in ln), None
        )
    )
    assert f"http GET /api/items/99/{marker} 200 " in line
    assert line.endswith("ms")
    log_text = devhost.log_text()
    assert FUNCTION_KEY not in log_text
    assert MASTER_KEY not in log_text
    assert "s3cr3t" not in log_text


# --- what no client library would send (raw sockets) -------------------------------------------------


def raw_http(devhost: DevhostUnderTest, data: bytes, *, timeout: float = 10) -> bytes:
    """Send `data` as it is on a new connection; everything the dev host answers until it closes."""
    assert devhost.endpoint is not None
    port = int(devhost.endpoint.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_to_end(sock)


def read_to_end(sock: socket.socket) -> bytes:
    answer = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b"\r\n", 1)[0].split(b" ")[1])


def body_of(answer: bytes) -> bytes:
    return answer.partition(b"\r\n\r\n")[2]


def log_after_a_marked_request(devhost: DevhostUnderTest, api: str) -> str:
    """The log once everything before a fresh, marked request has been written."""
    marker = uuid.uuid4().hex
    requests.get(f"{api}/items/5/{marker}", headers={"x-functions-key": FUNCTION_KEY}, timeout=10)
    return str(wait_until(lambda: marker in devhost.log_text() and devhost.log_text()))


def unexpected_tracebacks(log_text: str) -> list[str]:
    """The first line of each log record with a traceback that is not a function's failure (those
    are logged on purpose). A record runs from its timestamp to the next one."""
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} )", log_text)
    failure = re.compile(r"devhost\.(http|queue): function \S+ failed")
    return [
        r.split("\n", 1)[0] for r in records if "Traceback" in r and not failure.search(r.split("\n", 1)[0])
    ]


MALFORMED = {
    "request-line-too-long": b"GET {target}&pad=" + b"x" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
    "header-too-long": b"GET /api/items/1 HTTP/1.1\r\nHost: h\r\nx-functions-key: {secret}"
    + b"x" * 9000
    + b"\r\n\r\n",
    "control-character-in-target": b"GET {target}\x01 HTTP/1.1\r\nHost: h\r\n\r\n",
    "bad-version": b"GET {target} HTTP/9.x\r\nHost: h\r\n\r\n",
    "header-without-colon": b"GET {target} HTTP/1.1\r\nHost: h\r\n{secret}\r\n\r\n",
    "nul-in-header": b"GET {target} HTTP/1.1\r\nHost: h\r\nX-A: a\x00{secret}\r\n\r\n",
    "bad-content-length": b"POST {target} HTTP/1.1\r\nHost: h\r\nContent-Length: 1{secret}\r\n\r\n",
    "bad-chunk": b"POST {target} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz{secret}\r\n",
    "not-http": b"{secret} {target}\r\n\r\n",
}


@pytest.mark.parametrize("template", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_request_aiohttp_cannot_parse_is_4xx_and_never_quoted_in_the_log(
    api: str, devhost: DevhostUnderTest, template: bytes
) -> None:
    secret = uuid.uuid4().hex
    target = f"/api/items/1?code={FUNCTION_KEY}&s={secret}".encode()
    answer = raw_http(devhost, template.replace(b"{target}", target).replace(b"{secret}", secret.encode()))
    assert 400 <= status_of(answer) < 500
    log_text = log_after_a_marked_request(devhost, api)
    assert secret not in log_text
    assert FUNCTION_KEY not in log_text
    assert unexpected_tracebacks(log_text) == []


def test_an_over_long_request_line_is_logged_as_one_line(api: str, devhost: DevhostUnderTest) -> None:
    raw_http(devhost, MALFORMED["request-line-too-long"].replace(b"{target}", b"/api/items/1?code=x"))
    log_text = log_after_a_marked_request(devhost, api)
    assert "rejected a malformed request from 127.0.0.1: 400 LineTooLong" in log_text


def test_the_log_file_is_readable_by_its_owner_only(devhost: DevhostUnderTest) -> None:
    assert devhost.process is not None
    assert stat.S_IMODE(os.stat(devhost.process.log_path).st_mode) == 0o600


@pytest.mark.parametrize(
    "key", [b"\xff\xfe", b"\xc3(" + FUNCTION_KEY.encode()], ids=["not-utf8", "not-utf8-then-the-key"]
)
def test_a_key_header_that_is_not_utf8_is_401(api: str, devhost: DevhostUnderTest, key: bytes) -> None:
    request = (
        b"GET /api/items/1 HTTP/1.1\r\nHost: h\r\nx-functions-key: " + key + b"\r\nConnection: close\r\n\r\n"
    )
    answer = raw_http(devhost, request)
    assert status_of(answer) == 401
    assert body_of(answer) == b""
    log_text = log_after_a_marked_request(devhost, api)
    assert "UnicodeEncodeError" not in log_text
    assert "Error handling request" not in log_text


@pytest.mark.parametrize(
    "host", [b"\xff\xfe", b"a:99999", b"a:-1", b"a b", b"user@a", b""], ids=lambda h: repr(h)
)
def test_a_host_that_is_no_authority_is_400(api: str, devhost: DevhostUnderTest, host: bytes) -> None:
    answer = raw_http(devhost, b"GET /api/hello HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert status_of(answer) == 400
    assert body_of(answer) == b""
    log_text = log_after_a_marked_request(devhost, api)
    assert "Error handling request" not in log_text
    assert "idna" not in log_text


def test_http_1_1_without_host_is_400_and_http_1_0_is_served(devhost: DevhostUnderTest) -> None:
    assert status_of(raw_http(devhost, b"GET /api/hello HTTP/1.1\r\nConnection: close\r\n\r\n")) == 400
    assert status_of(raw_http(devhost, b"GET /api/hello HTTP/1.0\r\n\r\n")) == 200


def post_head(length: int, extra: bytes = b"") -> bytes:
    return (
        f"POST /api/items/1?code={FUNCTION_KEY} HTTP/1.1\r\nHost: h\r\nContent-Length: {length}\r\n".encode()
        + extra
        + b"\r\n"
    )


def test_a_body_one_byte_over_the_limit_is_413(devhost: DevhostUnderTest) -> None:
    answer = raw_http(devhost, post_head(BODY_LIMIT + 1) + b"x" * (BODY_LIMIT + 1))
    assert status_of(answer) == 413
    assert body_of(answer) == b""


def test_a_chunked_body_over_the_limit_is_413(devhost: DevhostUnderTest) -> None:
    chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    chunks = chunk * (BODY_LIMIT // 65536 + 1) + b"0\r\n\r\n"
    request = (
        f"POST /api/items/1?code={FUNCTION_KEY} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    assert status_of(raw_http(devhost, request.encode() + chunks)) == 413


def test_a_100_mb_body_is_413_and_the_rest_is_never_read(devhost: DevhostUnderTest) -> None:
    """The dev host reads at most the limit, answers 413 and closes: a client pushing 100 MB gets only
    as far as the limit plus what the kernels buffer, and sees the 413."""
    assert devhost.endpoint is not None
    port = int(devhost.endpoint.base_url.rsplit(":", 1)[1])
    total = 100 * 1024 * 1024
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:

        def read_answer() -> None:
            nonlocal answer
            answer = read_to_end(sock)

        reader = threading.Thread(target=read_answer)
        reader.start()
        sock.sendall(post_head(total))
        block = b"x" * 65536
        started = time.monotonic()
        with contextlib.suppress(OSError):
            while sent < total:
                sent += sock.send(block)
        reader.join(timeout=10)
    assert status_of(answer) == 413
    assert sent < 64 * 1024 * 1024, f"{sent} bytes accepted"
    assert time.monotonic() - started < 5


def test_expect_100_continue_over_the_limit_gets_413_and_sends_nothing(devhost: DevhostUnderTest) -> None:
    answer = raw_http(devhost, post_head(100 * 1024 * 1024, b"Expect: 100-continue\r\n"), timeout=5)
    assert answer.startswith(b"HTTP/1.1 413 ")


# --- queues ---------------------------------------------------------------------------------------


def test_queue_trigger_decodes_base64_and_output_binding_writes_base64(devhost: DevhostUnderTest) -> None:
    queue_in = devhost.queue("QUEUE_IN")
    seen = devhost.queue("QUEUE_SEEN")
    send_base64(queue_in, "héllo wörld")
    [record] = wait_until(lambda: drain_json(seen))
    assert record["function"] == "record"
    assert record["body"] == "héllo wörld"
    assert record["dequeue_count"] == 1
    assert record["has_pop_receipt"]
    assert record["has_insertion_time"]
    # Success deleted the trigger message.
    assert queue_in.get_queue_properties().approximate_message_count == 0


def test_http_output_binding_feeds_a_queue_trigger(api: str, devhost: DevhostUnderTest) -> None:
    seen = devhost.queue("QUEUE_SEEN")
    assert requests.post(f"{api}/enqueue", data="from-http", timeout=10).status_code == 202
    [record] = wait_until(lambda: drain_json(seen))
    assert record["body"] == "from-http"


def test_a_batch_runs_concurrently(devhost: DevhostUnderTest) -> None:
    slow = devhost.queue("QUEUE_SLOW")
    seen = devhost.queue("QUEUE_SEEN")
    started = time.monotonic()
    for _ in range(4):  # batchSize 4, each sleeps 1 s
        send_base64(slow, "1")
    records: list[dict[str, Any]] = []
    wait_until(lambda: records.extend(drain_json(seen)) or len(records) >= 4, timeout=20)
    assert time.monotonic() - started < 3.5
    assert {r["dequeue_count"] for r in records} == {1}


def test_failing_function_retries_then_goes_to_poison_with_the_same_body(devhost: DevhostUnderTest) -> None:
    fail = devhost.queue("QUEUE_FAIL")
    poison = devhost.queue("QUEUE_FAIL", "-poison")
    body = f"doomed-{uuid.uuid4().hex[:8]}"
    encoded = base64.b64encode(body.encode()).decode()
    fail.send_message(encoded)
    [poisoned] = wait_until(lambda: list(poison.receive_messages(max_messages=32)))
    assert poisoned.content == encoded  # still base64, unchanged
    attempts = (devhost.record_dir / "attempts.txt").read_text().splitlines()
    assert [line for line in attempts if line.startswith(body)] == [f"{body} 1", f"{body} 2", f"{body} 3"]
    # The host sends to poison, then deletes the original: wait for the delete rather than race it.
    wait_until(lambda: fail.get_queue_properties().approximate_message_count == 0)
    assert "reached maxDequeueCount of 3" in devhost.log_text()


def test_invalid_base64_fails_like_a_function_error(devhost: DevhostUnderTest) -> None:
    fail = devhost.queue("QUEUE_IN")
    poison = devhost.queue("QUEUE_IN", "-poison")
    fail.send_message("not base64 at all!")
    [poisoned] = wait_until(lambda: list(poison.receive_messages(max_messages=32)))
    assert poisoned.content == "not base64 at all!"


# --- leases and stopping (each test has its own dev host) -------------------------------------------


def test_long_function_keeps_its_message_invisible(azurite_plain: AzuriteEndpoints, tmp_path: Path) -> None:
    """A 2 s lease renewed every 1 s: a 3.5 s function runs once, with dequeue count 1."""
    under_test = DevhostUnderTest(azurite_plain, tmp_path, DEVHOST_QUEUE_LEASE_SECONDS="2")
    under_test.start()
    try:
        slow = under_test.queue("QUEUE_SLOW")
        seen = under_test.queue("QUEUE_SEEN")
        send_base64(slow, "3.5")
        [record] = wait_until(lambda: drain_json(seen), timeout=15)
        assert record["dequeue_count"] == 1
        time.sleep(1)
        assert drain_json(seen) == []
        assert not (under_test.record_dir / "slow-started-2").exists()
    finally:
        under_test.stop()


def test_stopped_host_abandons_in_flight_message_which_reappears_after_its_lease(
    azurite_plain: AzuriteEndpoints, tmp_path: Path
) -> None:
    under_test = DevhostUnderTest(
        azurite_plain, tmp_path, DEVHOST_QUEUE_LEASE_SECONDS="2", DEVHOST_DRAIN_SECONDS="0.2"
    )
    under_test.start()
    slow = under_test.queue("QUEUE_SLOW")
    seen = under_test.queue("QUEUE_SEEN")
    send_base64(slow, "30")
    wait_until(lambda: (under_test.record_dir / "slow-started-1").exists())
    stop_started = time.monotonic()
    under_test.stop()
    assert time.monotonic() - stop_started < 5
    assert "abandoned 1 queue invocation" in under_test.log_text()
    # Not deleted, not released: invisible until the lease ends, then back with dequeue count 2.
    assert slow.peek_messages() == []
    wait_until(lambda: slow.peek_messages(), timeout=5)
    under_test.start()
    try:
        wait_until(lambda: (under_test.record_dir / "slow-started-2").exists(), timeout=10)
    finally:
        under_test.stop()
    assert drain_json(seen) == []
