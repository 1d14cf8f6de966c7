"""Indexing a v2-model app once, parameter binding, invocation, connections, HTTP conversion."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from aiohttp.test_utils import TestClient, TestServer

from devtools.devhost.auth import FunctionKeys
from devtools.devhost.bindings import (
    BindingConversionError,
    ReceivedMessage,
    body_properties_named_like_metadata,
    encode_output,
    http_answer,
    http_request_datum,
    queue_trigger_datum,
    queue_trigger_metadata,
)
from devtools.devhost.connections import (
    DEVELOPMENT_STORAGE_CONNECTION_STRING,
    ConnectionSettingError,
    QueueServices,
    resolve_connection,
)
from devtools.devhost.functions import (
    FunctionIndexError,
    FunctionTimeoutError,
    InvocationContext,
    index_functions,
    resolve_setting_expressions,
)
from devtools.devhost.http_server import HttpHost, to_aiohttp_response
from devtools.devhost.queues import QueueOutputs, next_polling_delay, poison_queue_name
from devtools.devhost.tracecontext import parse_traceparent

ENVIRON = {"JOBS": "image-jobs", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def get_request(url: str) -> Any:
    """An `http` datum for a bodyless GET, as the host sends it."""
    return http_request_datum(method="GET", url=url, headers={}, query={}, route_params={}, body=b"")


def queue_message(body: bytes) -> tuple[Any, Any]:
    """The datum and trigger metadata for a received message."""
    received = ReceivedMessage("m1", 1, None, None, None, "r1")
    return queue_trigger_datum(body, None), queue_trigger_metadata(
        received, body_properties_named_like_metadata(body)
    )


def make_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="things/{id}", methods=["GET"])
    async def get_thing(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(req.route_params["id"])

    @app.function_name("named_thing")
    @app.route(auth_level=func.AuthLevel.ANONYMOUS)
    def plain(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return func.HttpResponse(
            f"{context.function_name} {threading.current_thread() is threading.main_thread()}"
        )

    @app.queue_trigger(arg_name="msg", queue_name="%JOBS%", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="out", queue_name="results", connection="AzureWebJobsStorage")
    def work(msg: func.QueueMessage, out: func.Out[str]) -> None:
        out.set(msg.get_body().decode())

    return app


def test_index_reads_routes_levels_queues_and_outputs() -> None:
    index = index_functions(make_app(), timeout=None, environ=ENVIRON)
    by_name = {f.name: f for f in index.http}
    assert by_name["get_thing"].route == "things/{id}"
    assert by_name["get_thing"].methods == ("GET",)
    assert by_name["get_thing"].auth_level == "function"
    assert by_name["named_thing"].route == "named_thing"  # no route: the function name
    assert by_name["named_thing"].methods is None
    assert by_name["named_thing"].auth_level == "anonymous"
    assert by_name["named_thing"].invoker.context_parameter == "context"
    [queue] = index.queue
    assert (queue.name, queue.queue_name, queue.connection) == ("work", "image-jobs", "AzureWebJobsStorage")
    [output] = queue.invoker.queue_outputs
    assert (output.name, output.queue_name, output.value_type) == ("out", "results", str)
    # As the worker reports it: the folder of the file that defines the function.
    assert queue.invoker.function_directory == str(Path(__file__).resolve().parent)


async def test_sync_functions_run_off_the_event_loop_and_outputs_are_collected() -> None:
    index = index_functions(make_app(), timeout=None, environ=ENVIRON)
    named = next(f for f in index.http if f.name == "named_thing")
    result = await named.invoker.invoke(get_request("http://x/api/named_thing"))
    assert result.return_value is not None
    assert http_answer(result.return_value).body == b"named_thing False"
    [queue] = index.queue
    result = await queue.invoker.invoke(*queue_message(b"payload"))
    [(binding, value)] = result.queue_outputs
    assert (binding.queue_name, value.type, value.value) == ("results", "string", "payload")


def test_unsupported_bindings_and_unbound_parameters_stop_indexing() -> None:
    app = func.FunctionApp()

    @app.blob_trigger(arg_name="blob", path="c/{name}", connection="AzureWebJobsStorage")
    def on_blob(blob: func.InputStream) -> None:
        return None

    with pytest.raises(FunctionIndexError, match="on_blob"):
        index_functions(app, timeout=None, environ=ENVIRON)

    other = func.FunctionApp()

    @other.route(route="x")
    def needs_more(req: func.HttpRequest, extra: str) -> str:
        return extra

    with pytest.raises(FunctionIndexError, match="'extra'"):
        index_functions(other, timeout=None, environ=ENVIRON)


def test_setting_expressions() -> None:
    assert resolve_setting_expressions("%JOBS%-x", ENVIRON) == "image-jobs-x"
    with pytest.raises(FunctionIndexError, match="MISSING"):
        resolve_setting_expressions("%MISSING%", ENVIRON)


async def test_function_timeout_is_a_failure() -> None:
    app = func.FunctionApp()

    @app.route(route="slow", auth_level=func.AuthLevel.ANONYMOUS)
    async def slow(req: func.HttpRequest) -> str:
        await asyncio.sleep(5)
        return "late"

    [function] = index_functions(app, timeout=0.05, environ=ENVIRON).http
    with pytest.raises(FunctionTimeoutError):
        await function.invoker.invoke(get_request("http://x/api/slow"))


def test_context_object() -> None:
    context = InvocationContext("inv-1", "fn", "/dir")
    assert (context.invocation_id, context.function_name, context.function_directory) == (
        "inv-1",
        "fn",
        "/dir",
    )
    assert parse_traceparent(context.trace_context.trace_parent) is not None  # a new trace by default
    assert context.trace_context.trace_state == ""
    assert context.retry_context.retry_count == 0
    assert isinstance(context.thread_local_storage, threading.local)


# --- connections ----------------------------------------------------------------------------------


def test_connection_string_beats_identity_settings() -> None:
    spec = resolve_connection(
        "AzureWebJobsStorage",
        {"AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;QueueEndpoint=http://q/a;",
         "AzureWebJobsStorage__queueServiceUri": "https://ignored"},
    )  # fmt: skip
    assert spec.connection_string is not None
    assert "AccountKey" not in spec.description


def test_development_storage_shorthand() -> None:
    spec = resolve_connection("AzureWebJobsStorage", {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert spec.connection_string == DEVELOPMENT_STORAGE_CONNECTION_STRING


def test_identity_connection_with_client_id_and_ca_bundle() -> None:
    spec = resolve_connection(
        "AzureWebJobsStorage",
        {
            "AzureWebJobsStorage": "",
            "AzureWebJobsStorage__queueServiceUri": "https://127.0.0.1:10001/devstoreaccount1/",
            "AzureWebJobsStorage__credential": "ManagedIdentity",
            "AzureWebJobsStorage__clientId": "cid",
            "REQUESTS_CA_BUNDLE": "/ca.pem",
        },
    )
    assert spec.queue_service_uri == "https://127.0.0.1:10001/devstoreaccount1"
    assert (spec.credential_kind, spec.client_id, spec.ca_file) == ("managedidentity", "cid", "/ca.pem")


def test_custom_connection_name_and_account_name_and_prefix_lookup() -> None:
    spec = resolve_connection("Jobs", {"Jobs__accountName": "acct"})
    assert spec.queue_service_uri == "https://acct.queue.core.windows.net"
    spec = resolve_connection("Jobs", {"AzureWebJobsJobs": "UseDevelopmentStorage=true"})
    assert spec.connection_string == DEVELOPMENT_STORAGE_CONNECTION_STRING


def test_missing_or_bad_connection_is_named() -> None:
    with pytest.raises(ConnectionSettingError, match="AzureWebJobsStorage"):
        resolve_connection("AzureWebJobsStorage", {})
    with pytest.raises(ConnectionSettingError, match="__credential"):
        resolve_connection(
            "AzureWebJobsStorage",
            {
                "AzureWebJobsStorage__queueServiceUri": "https://x",
                "AzureWebJobsStorage__credential": "secret",
            },
        )
    with pytest.raises(ConnectionSettingError, match="AzureWebJobsStorage"):
        QueueServices({"AzureWebJobsStorage": "Nonsense=1"}).service("AzureWebJobsStorage")


# --- queue helpers --------------------------------------------------------------------------------


def test_polling_backoff_doubles_up_to_the_maximum() -> None:
    delay = 0.1
    delays = []
    for _ in range(10):
        delay = next_polling_delay(delay, 2.0)
        delays.append(delay)
    assert 0.18 <= delays[0] <= 0.22
    assert delays[-1] == 2.0
    assert poison_queue_name("image-jobs") == "image-jobs-poison"


# --- HTTP conversion and handler ------------------------------------------------------------------


def respond(value: object) -> Any:
    """What the dev host answers for an HTTP function's return value (encoded, then written)."""
    return to_aiohttp_response(http_answer(encode_output("http", value)))


def test_response_conversion() -> None:
    text = respond(func.HttpResponse("hi", status_code=201))
    assert (text.status, text.headers["Content-Type"], text.body) == (201, "text/plain; charset=utf-8", b"hi")
    data = respond(func.HttpResponse(b"\x89PNG", mimetype="image/png"))
    assert data.headers["Content-Type"] == "image/png"
    explicit = respond(
        func.HttpResponse("{}", headers={"Content-Type": "application/problem+json", "Location": "/x"})
    )
    assert explicit.headers["Content-Type"] == "application/problem+json"
    assert explicit.headers["Location"] == "/x"
    plain = respond("plain")
    assert (plain.status, plain.headers["Content-Type"], plain.body) == (
        200,
        "text/plain; charset=utf-8",
        b"plain",
    )
    with pytest.raises(BindingConversionError):  # None: the worker's converter has no answer for it
        respond(None)
    with pytest.raises(BindingConversionError):
        respond(42)


async def test_handler_checks_route_then_key_then_runs() -> None:
    index = index_functions(make_app(), timeout=None, environ=ENVIRON)
    services = QueueServices(ENVIRON)
    host = HttpHost(index.http, "api", FunctionKeys("k", "m"), QueueOutputs(services, "base64"))
    async with TestClient(TestServer(host.application())) as client:
        responses: list[Any] = [
            await client.get("/api/things/7?code=k"),
            await client.get("/api/things/7"),
            await client.post("/api/things/7?code=k"),
            await client.get("/api/named_thing"),
        ]
        assert [r.status for r in responses] == [200, 401, 404, 200]
        assert await responses[0].text() == "7"
        assert await responses[1].read() == b""
    await services.close()
