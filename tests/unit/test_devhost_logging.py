"""The dev host shows azure-core's INFO request lines; they must never carry a SAS signature or an
Authorization value. aiohttp's access log (which would print `?code=`) stays quiet, and what aiohttp
logs about a request it cannot parse never quotes the request (its line carries `?code=`). The log
files themselves are the owner's only."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.policies import HttpLoggingPolicy
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest
from azure.storage.blob import BlobClient

from devtools.devhost.auth import FunctionKeys
from devtools.devhost.connections import QueueServices
from devtools.devhost.functions import index_functions
from devtools.devhost.host import ACCESS_LOGGER, configure_logging
from devtools.devhost.http_server import HttpHost
from devtools.devhost.queues import QueueOutputs
from devtools.procs import ManagedProcess, start_process

HTTP_LOGGER = "azure.core.pipeline.policies.http_logging_policy"
SIGNATURE = "c2lnbmF0dXJlLXRoYXQtbXVzdC1uZXZlci1iZS1sb2dnZWQ%3D"
SAS_URL = (
    "https://account.blob.core.windows.net/images/job-1/0.png"
    f"?sv=2024-08-04&se=2030-01-01T00%3A00%3A00Z&sr=b&sp=r&skoid=oid&sig={SIGNATURE}"
)
BEARER = "Bearer eyJhbGciOiJSUzI1NiJ9.secret-token-body.signature"
ACCOUNT_KEY = "a2V5LXRoYXQtbXVzdC1uZXZlci1iZS1sb2dnZWQ="


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == HTTP_LOGGER)


def test_http_logging_policy_redacts_the_signature_and_authorization(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=HTTP_LOGGER)
    request = HttpRequest(
        "GET",
        SAS_URL + "&api-version=2024-08-04",
        headers={"Authorization": BEARER, "x-ms-copy-source": SAS_URL, "x-ms-version": "2024-08-04"},
    )
    HttpLoggingPolicy().on_request(PipelineRequest(request, PipelineContext(None)))
    text = logged_text(caplog)
    assert "Request URL" in text
    assert SIGNATURE not in text
    assert "sig=REDACTED" in text  # query values outside the allow-list are replaced
    assert "api-version=2024-08-04" in text  # the one allow-listed query parameter
    assert "eyJ" not in text
    assert "'Authorization': 'REDACTED'" in text
    assert "'x-ms-copy-source': 'REDACTED'" in text


class _NoNetwork(HttpTransport):  # type: ignore[type-arg]
    """A transport that fails every request: the pipeline logs it first, nothing leaves the test."""

    def __enter__(self) -> _NoNetwork:
        return self

    def __exit__(self, *args: Any) -> None:
        return None

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def send(self, request: Any, **kwargs: Any) -> Any:
        raise ServiceRequestError("no network in unit tests")


def test_a_storage_client_logs_sas_and_shared_key_requests_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=HTTP_LOGGER)
    with_sas = BlobClient.from_blob_url(SAS_URL, transport=_NoNetwork(), retry_total=0)
    with pytest.raises(ServiceRequestError):
        with_sas.get_blob_properties()
    with_key = BlobClient(
        "https://account.blob.core.windows.net",
        "images",
        "job-1/0.png",
        credential={"account_name": "account", "account_key": ACCOUNT_KEY},
        transport=_NoNetwork(),
        retry_total=0,
    )
    with pytest.raises(ServiceRequestError):
        with_key.get_blob_properties()
    text = logged_text(caplog)
    assert text.count("Request URL") == 2
    assert SIGNATURE not in text
    assert "SharedKey" not in text
    assert "'Authorization': 'REDACTED'" in text


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("azure", HTTP_LOGGER, ACCESS_LOGGER)}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


@pytest.mark.usefixtures("restored_logging")
def test_configure_logging_shows_azure_core_and_keeps_the_access_log_quiet() -> None:
    configure_logging()  # the dev host used to set "azure" to WARNING here
    assert logging.getLogger(HTTP_LOGGER).isEnabledFor(logging.INFO)
    assert logging.getLogger("azure.identity").isEnabledFor(logging.INFO)
    assert not logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)


@pytest.mark.usefixtures("restored_logging")
def test_configure_logging_scrubs_what_the_server_machinery_logs(capsys: pytest.CaptureFixture[str]) -> None:
    """Whatever logger aiohttp or asyncio use: an exception's message (it may quote the request) never
    reaches the log; a request aiohttp could not parse becomes one line without a traceback."""
    configure_logging()
    secret = "code=" + uuid.uuid4().hex
    try:
        raise LineTooLong(f"/api/items/1?{secret}".encode(), 8190)
    except LineTooLong as error:
        logging.getLogger("asyncio").error(
            "Fatal error: protocol.data_received() call failed.", exc_info=error
        )
    try:
        raise ValueError(f"no good: {secret}")
    except ValueError as error:
        logging.getLogger("aiohttp.server").error("Unhandled exception", exc_info=error)
    logging.getLogger("devhost.http").info("untouched: %s", "app lines keep their text")
    out = capsys.readouterr().out
    assert secret not in out
    assert "LineTooLong" in out
    assert "ValueError" in out  # the type and where it happened stay, for debugging the dev host
    assert "test_devhost_logging.py" in out
    assert "untouched: app lines keep their text" in out


# --- a request aiohttp cannot parse, on a real socket --------------------------------------------------


def one_route_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="items/{id}")
    def items(req: func.HttpRequest) -> str:
        return "ok"

    return app


@pytest.fixture
async def served_port() -> AsyncIterator[int]:
    """The dev host's own runner (the same as `python -m devtools.devhost`), on a free port."""
    environ = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    index = index_functions(one_route_app(), timeout=None, environ=environ)
    services = QueueServices(environ)
    host = HttpHost(index.http, "api", FunctionKeys("fkey", "fkey"), QueueOutputs(services, "base64"))
    runner = host.runner()
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
        await services.close()


async def exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


async def test_an_over_long_request_line_is_rejected_without_its_text_in_the_log(
    served_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = uuid.uuid4().hex
    line = f"GET /api/items/1?code={secret}&pad={'x' * 9000} HTTP/1.1\r\nHost: h\r\n\r\n"
    answer = await exchange(served_port, line.encode())
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1] == b"400"
    logged = caplog.text  # messages and their formatted tracebacks
    assert secret not in logged
    assert "Traceback" not in logged
    assert "rejected a malformed request" in logged
    assert "LineTooLong" in logged


async def test_an_over_long_header_is_rejected_without_its_text_in_the_log(
    served_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = uuid.uuid4().hex
    request = f"GET /api/items/1 HTTP/1.1\r\nHost: h\r\nx-functions-key: {secret}{'x' * 9000}\r\n\r\n"
    answer = await exchange(served_port, request.encode())
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1] == b"400"
    assert secret not in caplog.text
    assert "rejected a malformed request" in caplog.text


# --- log files -------------------------------------------------------------------------------------

LINGER = "import time; print({!r}, flush=True); time.sleep(30)"  # alive until stopped, as start_process wants


def stop_once_it_printed(process: ManagedProcess, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in process.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.stop()


def test_a_process_log_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    process = start_process("quiet", [sys.executable, "-c", LINGER.format("hello")], log_dir=tmp_path)
    stop_once_it_printed(process, "hello")
    assert stat.S_IMODE(os.stat(process.log_path).st_mode) == 0o600
    assert process.log_text() == "hello\n"


def test_an_existing_log_file_is_made_private_before_it_is_appended_to(tmp_path: Path) -> None:
    log_path = tmp_path / "again.log"
    log_path.write_text("from an earlier run\n")
    log_path.chmod(0o644)
    process = start_process("again", [sys.executable, "-c", LINGER.format("second run")], log_dir=tmp_path)
    stop_once_it_printed(process, "second run")
    assert stat.S_IMODE(os.stat(log_path).st_mode) == 0o600
    assert process.log_text() == "from an earlier run\nsecond run\n"
