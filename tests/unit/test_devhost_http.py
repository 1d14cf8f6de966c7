"""The dev host's HTTP edge against its own runner on a real socket: what a careless or hostile client
sends — bytes that are not UTF-8 in the key or in Host, a Host that is no authority, bodies over
FUNCTIONS_REQUEST_BODY_SIZE_LIMIT — gets a short 4xx, never a 500 or a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import azure.functions as func
import pytest
from aiohttp import web

from devtools.devhost import http_server
from devtools.devhost.auth import FunctionKeys
from devtools.devhost.config import DEFAULT_REQUEST_BODY_LIMIT
from devtools.devhost.connections import QueueServices
from devtools.devhost.functions import index_functions
from devtools.devhost.http_server import HttpHost, is_valid_host
from devtools.devhost.queues import QueueOutputs

ENVIRON = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
KEY = "fkey"
LIMIT = 1024


def edge_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="length", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    def length(req: func.HttpRequest) -> str:
        return str(len(req.get_body()))

    @app.route(route="items/{id}")
    def items(req: func.HttpRequest) -> str:
        return "ok " + req.url

    return app


Serve = Callable[..., Awaitable[int]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start the dev host's HTTP side (the runner `python -m devtools.devhost` uses) on a free port."""
    runners: list[web.AppRunner] = []
    services = QueueServices(ENVIRON)

    async def start(**options: int) -> int:
        index = index_functions(edge_app(), timeout=None, environ=ENVIRON)
        host = HttpHost(
            index.http, "api", FunctionKeys(KEY, KEY), QueueOutputs(services, "base64"), **options
        )
        runner = host.runner()
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(runner.addresses[0][1])

    yield start
    for runner in runners:
        await runner.cleanup()
    await services.close()


@pytest.fixture
async def port(serve: Serve) -> int:
    return await serve(max_body_bytes=LIMIT)


async def exchange(port: int, data: bytes, *, wait: float = 10) -> bytes:
    """Send raw bytes on a new connection; everything the dev host answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=wait)
    finally:
        writer.close()


def status(answer: bytes) -> int:
    return int(answer.split(b"\r\n", 1)[0].split(b" ")[1])


def head_and_body(answer: bytes) -> tuple[bytes, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.lower(), body


# --- the function key -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key_header",
    [b"x-functions-key: \xff\xfe\r\n", b"x-functions-key: \xc3(" + KEY.encode() + b"\r\n"],
)
async def test_a_key_that_is_not_utf8_is_401_with_an_empty_body(
    port: int, key_header: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    request = b"GET /api/items/1 HTTP/1.1\r\nHost: h\r\n" + key_header + b"Connection: close\r\n\r\n"
    answer = await exchange(port, request)
    assert status(answer) == 401
    assert head_and_body(answer)[1] == b""
    assert "Traceback" not in caplog.text


async def test_a_code_that_is_not_utf8_is_401(port: int) -> None:
    answer = await exchange(
        port, b"GET /api/items/1?code=%FF%FE HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    assert status(answer) == 401


# --- Host ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["localhost", "127.0.0.1:7071", "[::1]:7071", "[::1]", "example.com:443", "a-b.c_d~e", "host:", "A.B"],
)
def test_valid_hosts(value: str) -> None:
    assert is_valid_host(value)


@pytest.mark.parametrize(
    "value",
    [
        "",  # an http URI has a host (RFC 9110 4.2.1)
        "a:99999",
        "a:65536",
        "a:-1",
        "a:+80",
        "a:8o",
        "a b",
        "a/b",
        "a?x",
        "a#x",
        "user@a",
        "[::1",
        "[zz]",
        "ü.example",
        "\udcff\udcfe",  # bytes that were not UTF-8
        "a\x00",
    ],
)
def test_invalid_hosts(value: str) -> None:
    assert not is_valid_host(value)


@pytest.mark.parametrize(
    "host_lines",
    [
        b"Host: \xff\xfe\r\n",
        b"Host: a:99999\r\n",
        b"Host: a/b\r\n",
        b"Host: \r\n",
        b"",  # HTTP/1.1 without Host
        b"Host: a\r\nHost: b\r\n",
    ],
    ids=["not-utf8", "port-out-of-range", "path-in-host", "empty", "missing", "twice"],
)
async def test_a_bad_host_is_400_with_an_empty_body_and_no_traceback(
    port: int, host_lines: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    request = b"GET /api/items/1 HTTP/1.1\r\n" + host_lines + b"x-functions-key: fkey\r\n\r\n"
    answer = await exchange(port, request)
    assert status(answer) == 400
    head, body = head_and_body(answer)
    # Empty from the dev host; aiohttp's parser refuses a missing or repeated Host itself, in a phrase.
    assert body in (b"", b"Missing 'Host' header in request.", b"Duplicate 'Host' header found.")
    assert b"connection: close" in head or head.startswith(b"http/1.0 ")  # either way it closes
    assert "Traceback" not in caplog.text


async def test_http_1_0_may_leave_host_out(port: int) -> None:
    answer = await exchange(port, b"GET /api/items/1 HTTP/1.0\r\nx-functions-key: fkey\r\n\r\n")
    assert status(answer) == 200


async def test_the_function_sees_the_host_it_was_sent(port: int) -> None:
    answer = await exchange(
        port,
        b"GET /api/items/1 HTTP/1.1\r\nHost: [::1]:7071\r\nx-functions-key: fkey\r\nConnection: close\r\n\r\n",
    )
    assert head_and_body(answer)[1] == b"ok http://[::1]:7071/api/items/1"


# --- the body limit ----------------------------------------------------------------------------------


def post(length: int, *, extra: bytes = b"") -> bytes:
    return (
        f"POST /api/length HTTP/1.1\r\nHost: h\r\nContent-Length: {length}\r\nConnection: close\r\n".encode()
        + extra
        + b"\r\n"
    )


async def test_a_body_at_the_limit_reaches_the_function(port: int) -> None:
    answer = await exchange(port, post(LIMIT) + b"x" * LIMIT)
    assert status(answer) == 200
    assert head_and_body(answer)[1] == str(LIMIT).encode()


async def test_a_body_one_byte_over_the_limit_is_413_and_the_connection_closes(port: int) -> None:
    answer = await exchange(port, post(LIMIT + 1) + b"x" * (LIMIT + 1))
    assert status(answer) == 413
    head, body = head_and_body(answer)
    assert body == b""
    assert b"connection: close" in head


async def test_a_chunked_body_over_the_limit_is_413(port: int) -> None:
    chunks = b"".join(b"100\r\n" + b"x" * 256 + b"\r\n" for _ in range(LIMIT // 256 + 1)) + b"0\r\n\r\n"
    request = (
        b"POST /api/length HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    answer = await exchange(port, request + chunks)
    assert status(answer) == 413


async def test_a_chunked_body_at_the_limit_reaches_the_function(port: int) -> None:
    chunks = b"".join(b"100\r\n" + b"x" * 256 + b"\r\n" for _ in range(LIMIT // 256)) + b"0\r\n\r\n"
    request = (
        b"POST /api/length HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    answer = await exchange(port, request + chunks)
    assert head_and_body(answer)[1] == str(LIMIT).encode()


async def test_a_huge_declared_body_is_413_at_once_without_waiting_for_the_rest(port: int) -> None:
    # 100 MB announced, 64 KiB sent: the answer and the close come now, not after the rest arrives.
    answer = await exchange(port, post(100 * 1024 * 1024) + b"x" * 65536, wait=3)
    assert status(answer) == 413


async def test_a_huge_chunked_body_is_413_without_reading_the_rest(port: int) -> None:
    # Chunks keep coming; the dev host stops at the limit, answers and closes: the client's sending
    # fails, and it finds the 413 in what it received (a blocking socket, in a thread).
    def push_chunks() -> tuple[bytes, int]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"POST /api/length HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
            sent = 0
            with contextlib.suppress(OSError):
                while sent < 64 * 1024 * 1024:
                    sock.sendall(b"1000\r\n" + b"x" * 4096 + b"\r\n")
                    sent += 4096
            answer = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    answer += chunk
            return answer, sent

    answer, sent = await asyncio.wait_for(asyncio.to_thread(push_chunks), timeout=20)
    assert status(answer) == 413
    assert sent < 32 * 1024 * 1024  # the limit plus what the kernels buffer, not the 64 MiB offered


async def test_expect_100_continue_over_the_limit_gets_413_before_any_body_is_sent(port: int) -> None:
    answer = await exchange(port, post(LIMIT + 1, extra=b"Expect: 100-continue\r\n"), wait=3)
    assert answer.startswith(b"HTTP/1.1 413 ")


async def test_expect_100_continue_within_the_limit_continues(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(post(3, extra=b"Expect: 100-continue\r\n"))
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=3)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"abc")
        answer = await asyncio.wait_for(reader.read(), timeout=3)
    finally:
        writer.close()
    assert status(answer) == 200
    assert head_and_body(answer)[1] == b"3"


async def test_401_comes_before_100_continue(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /api/items/1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=3)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 401 ")


async def test_without_the_setting_the_limit_is_the_hosts_default(serve: Serve) -> None:
    assert DEFAULT_REQUEST_BODY_LIMIT == 104_857_600
    default_port = await serve()
    answer = await exchange(default_port, post(DEFAULT_REQUEST_BODY_LIMIT + 1), wait=3)
    assert status(answer) == 413
    answer = await exchange(default_port, post(2 * LIMIT) + b"x" * (2 * LIMIT))
    assert head_and_body(answer)[1] == str(2 * LIMIT).encode()


async def test_a_compressed_body_reaches_the_function_as_sent(port: int) -> None:
    # Kestrel and the host pass Content-Encoding through; aiohttp would decompress (past the limit).
    compressed = gzip.compress(b"x" * (10 * LIMIT))
    request = post(len(compressed), extra=b"Content-Encoding: gzip\r\n") + compressed
    answer = await exchange(port, request)
    assert head_and_body(answer)[1] == str(len(compressed)).encode()


# --- the dev host's own failures -----------------------------------------------------------------------


async def test_a_dev_host_error_is_a_bare_500_logged_without_its_message(
    port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "code=from-the-request"

    def broken(pairs: object) -> dict[str, str]:
        raise ValueError(f"cannot join {secret}")

    monkeypatch.setattr(http_server, "join_request_headers", broken)
    caplog.set_level(logging.INFO)
    answer = await exchange(
        port, b"POST /api/length HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    assert status(answer) == 500
    assert head_and_body(answer)[1] == b""
    assert secret not in caplog.text
    assert "dev host error on POST /api/length" in caplog.text
    assert "ValueError (message not logged)" in caplog.text
    assert "http_server.py" in caplog.text  # where it happened


async def test_a_path_with_an_encoded_newline_gets_the_hosts_404_and_one_log_line(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    target = b"/api/items/1/%0A2026-01-01%20forged%20line"
    request = b"GET " + target + b" HTTP/1.1\r\nHost: h\r\nx-functions-key: fkey\r\nConnection: close\r\n\r\n"
    answer = await exchange(port, request)
    assert status(answer) == 404
    assert head_and_body(answer)[1] == b""  # the host's 404, not aiohttp's "404: Not Found"
    [line] = [r.getMessage() for r in caplog.records if r.name == "devhost.http"]
    assert line.startswith(f"http GET {target.decode()} 404 ")  # as sent: no line of its own
