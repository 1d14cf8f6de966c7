"""The dev host converts like the Functions host and the Python worker: requests and messages reach the
function through the azure.functions converters as host-shaped datums, answers and outputs are
written from their encoded form, and the worker's rules hold (None → 500, a return value without
`$return` fails, annotations are checked at indexing, a W3C trace context per invocation)."""

from __future__ import annotations

import json
import logging
import typing
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest
from aiohttp.test_utils import TestClient, TestServer

from devtools.devhost.auth import FunctionKeys
from devtools.devhost.bindings import (
    ReceivedMessage,
    body_properties_named_like_metadata,
    join_query,
    join_request_headers,
    queue_trigger_datum,
    queue_trigger_metadata,
)
from devtools.devhost.connections import QueueServices
from devtools.devhost.functions import FunctionIndexError, InvocationError, index_functions
from devtools.devhost.http_server import HttpHost
from devtools.devhost.queues import QueueOutputs
from devtools.devhost.tracecontext import invocation_trace_context, parse_traceparent

ENVIRON = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
CALLER_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_TRACEPARENT = f"00-{CALLER_TRACE_ID}-b7ad6b7169203331-01"


def http_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="echo/{id}", methods=["GET", "POST"])
    def echo(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        seen = {
            "request_type": f"{type(req).__module__}.{type(req).__name__}",
            "method": req.method,
            "url": req.url,
            "headers": dict(req.headers),
            "params": dict(req.params),
            "route_params": dict(req.route_params),
            "body": req.get_body().decode("utf-8"),
            "trace_parent": context.trace_context.trace_parent,
            "trace_state": context.trace_context.trace_state,
            "invocation_id": context.invocation_id,
            "thread_invocation_id": context.thread_local_storage.invocation_id,  # type: ignore[attr-defined]
        }
        return func.HttpResponse(json.dumps(seen), mimetype="application/json")

    @app.route(route="nothing")
    async def returns_nothing(req: func.HttpRequest) -> func.HttpResponse:
        return None  # type: ignore[return-value]  # the bug under test

    @app.route(route="cookies")
    def cookies(req: func.HttpRequest) -> func.HttpResponse:
        response = func.HttpResponse("ok", status_code=202, headers={"Set-Cookie": "a=1; Path=/; HttpOnly"})
        response.headers.add("Set-Cookie", "b=2")
        response.headers.add("X-Repeated", "first")
        response.headers.add("X-Repeated", "second")
        return response

    return app


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    index = index_functions(http_app(), timeout=None, environ=ENVIRON)
    services = QueueServices(ENVIRON)
    host = HttpHost(index.http, "api", FunctionKeys(None, None), QueueOutputs(services, "base64"))
    async with TestClient(TestServer(host.application())) as test_client:
        yield test_client
    await services.close()


# --- HTTP in ------------------------------------------------------------------------------------


def test_query_joining_and_empty_values() -> None:
    pairs = [("a", "1"), ("a", "2"), ("A", "3"), ("empty", ""), ("flag", ""), ("b", ""), ("b", "x")]
    assert join_query(pairs) == {"a": "1,2,3", "b": ",x"}


def test_header_joining() -> None:
    pairs = [("X-Multi", "a"), ("x-multi", "b"), ("Accept", "*/*"), ("X-Empty", "")]
    assert join_request_headers(pairs) == {"x-multi": "a,b", "accept": "*/*", "x-empty": ""}


async def test_the_function_sees_the_request_as_the_host_sends_it(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.post(
        "/api/echo/7?a=1&a=2&empty=&A=3&flag",
        data="héllo".encode(),
        headers=[("X-Multi", "a"), ("X-Multi", "b")],
    )
    assert response.status == 200
    seen = await response.json()
    assert seen["request_type"] == "azure.functions.http.HttpRequest"  # HttpRequestConverter's object
    assert seen["method"] == "POST"
    assert seen["url"].endswith("/api/echo/7?a=1&a=2&empty=&A=3&flag")
    assert seen["params"] == {"a": "1,2,3"}
    assert seen["route_params"] == {"id": "7"}
    assert seen["headers"]["x-multi"] == "a,b"
    assert seen["body"] == "héllo"
    assert seen["thread_invocation_id"] == seen["invocation_id"]


# --- trace context ------------------------------------------------------------------------------


async def test_a_valid_traceparent_is_continued_and_tracestate_kept(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.get(
        "/api/echo/1", headers={"traceparent": CALLER_TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"}
    )
    seen = await response.json()
    parent = parse_traceparent(seen["trace_parent"])
    assert parent is not None
    assert parent.trace_id == CALLER_TRACE_ID  # the caller's trace…
    assert parent.parent_id != "b7ad6b7169203331"  # …with the invocation's own span
    assert parent.flags == "01"
    assert seen["trace_state"] == "congo=t61rcWkgMzE"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": "00-XYZ-1-01", "tracestate": "dropped=1"},
        {"traceparent": CALLER_TRACEPARENT.upper()},
    ],
)
async def test_without_a_valid_traceparent_a_new_trace_starts(
    client: TestClient,  # type: ignore[type-arg]
    headers: dict[str, str],
) -> None:
    seen = await (await client.get("/api/echo/1", headers=headers)).json()
    parent = parse_traceparent(seen["trace_parent"])
    assert parent is not None
    assert parent.trace_id != CALLER_TRACE_ID
    assert seen["trace_state"] == ""


@pytest.mark.parametrize(
    ("header", "valid"),
    [
        (CALLER_TRACEPARENT, True),
        (f"01-{CALLER_TRACE_ID}-b7ad6b7169203331-01-future-field", True),  # a later version may add fields
        (f"00-{CALLER_TRACE_ID}-b7ad6b7169203331-01-extra", False),
        (f"ff-{CALLER_TRACE_ID}-b7ad6b7169203331-01", False),
        (f"00-{'0' * 32}-b7ad6b7169203331-01", False),
        (f"00-{CALLER_TRACE_ID}-{'0' * 16}-01", False),
        (CALLER_TRACEPARENT.upper(), False),
        (f"{CALLER_TRACEPARENT},{CALLER_TRACEPARENT}", False),  # a repeated header, joined
        ("", False),
    ],
)
def test_traceparent_validation(header: str, valid: bool) -> None:
    assert (parse_traceparent(header) is not None) is valid


def test_new_trace_contexts_are_valid_and_distinct() -> None:
    first, second = invocation_trace_context(), invocation_trace_context()
    assert parse_traceparent(first.trace_parent) is not None
    assert first.trace_parent != second.trace_parent
    assert (first.trace_state, first.attributes) == ("", {})
    assert first.Traceparent == first.trace_parent  # the worker's deprecated alias


# --- HTTP out -----------------------------------------------------------------------------------


async def test_returning_none_is_a_500_logged_with_the_function_name(
    client: TestClient,  # type: ignore[type-arg]
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="devhost.http")
    response = await client.get("/api/nothing")
    assert response.status == 500
    assert await response.read() == b""
    [record] = [r for r in caplog.records if r.name == "devhost.http" and r.levelno == logging.ERROR]
    assert "returns_nothing" in record.getMessage()
    assert record.exc_info is not None
    assert "NoneType" in str(record.exc_info[1])


async def test_the_answer_is_written_from_the_encoded_response(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/api/cookies")
    assert response.status == 202
    assert await response.text() == "ok"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    # Cookies travel separately in the encoded form and come back as one Set-Cookie each …
    assert response.headers.getall("Set-Cookie") == ["a=1; HttpOnly; Path=/", "b=2"]
    # … while other headers are a name → value map there: a repeated one keeps its last value.
    assert response.headers.getall("X-Repeated") == ["second"]


# --- queue in -----------------------------------------------------------------------------------

INSERTED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
EXPIRES = datetime(2024, 5, 8, 12, 0, 0, 250000, tzinfo=UTC)
VISIBLE = datetime(2024, 5, 1, 12, 10, 0, tzinfo=UTC)
RECEIVED = ReceivedMessage("message-1", 2, EXPIRES, INSERTED, VISIBLE, "receipt-1")


def queue_app(seen: list[Any]) -> func.FunctionApp:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
    def as_message(msg: func.QueueMessage) -> None:
        seen.append(msg)

    @app.queue_trigger(arg_name="msg", queue_name="text", connection="AzureWebJobsStorage")
    def as_text(msg: str) -> None:
        seen.append(msg)

    @app.queue_trigger(
        arg_name="msg", queue_name="raw", connection="AzureWebJobsStorage", data_type=func.DataType.BINARY
    )
    def as_bytes(msg: bytes) -> None:
        seen.append(msg)

    @app.queue_trigger(arg_name="msg", queue_name="chatty", connection="AzureWebJobsStorage")
    def returns_a_value(msg: func.QueueMessage) -> str:
        return "nowhere to go"

    @app.queue_trigger(arg_name="msg", queue_name="forward", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="$return", queue_name="next", connection="AzureWebJobsStorage")
    def forwards(msg: func.QueueMessage) -> str:
        body = msg.get_body().decode()
        return None if body == "none" else body  # type: ignore[return-value]

    return app


def queue_invokers(seen: list[Any]) -> dict[str, Any]:
    index = index_functions(queue_app(seen), timeout=None, environ=ENVIRON)
    return {function.name: function.invoker for function in index.queue}


async def invoke(invoker: Any, body: bytes, received: ReceivedMessage = RECEIVED) -> Any:
    return await invoker.invoke(
        queue_trigger_datum(body, invoker.trigger_data_type),
        queue_trigger_metadata(received, body_properties_named_like_metadata(body)),
    )


async def test_queue_message_comes_from_the_converter_with_the_host_metadata() -> None:
    seen: list[Any] = []
    await invoke(queue_invokers(seen)["as_message"], b"hello")
    [message] = seen
    assert isinstance(message, func.QueueMessage)
    assert (message.id, message.get_body(), message.dequeue_count, message.pop_receipt) == (
        "message-1",
        b"hello",
        2,
        "receipt-1",
    )
    assert (message.insertion_time, message.expiration_time, message.time_next_visible) == (
        INSERTED,
        EXPIRES,
        VISIBLE,
    )


def test_metadata_is_sent_as_json_datums() -> None:
    metadata = queue_trigger_metadata(RECEIVED, {})
    assert set(metadata) == {
        "Id",
        "DequeueCount",
        "ExpirationTime",
        "InsertionTime",
        "NextVisibleTime",
        "PopReceipt",
    }
    assert {datum.type for datum in metadata.values()} == {"json"}
    assert json.loads(metadata["InsertionTime"].value) == "2024-05-01T12:00:00+00:00"
    assert json.loads(metadata["DequeueCount"].value) == 2


async def test_a_json_body_replaces_like_named_metadata_as_the_host_does() -> None:
    seen: list[Any] = []
    await invoke(queue_invokers(seen)["as_message"], b'{"ID": "from-body", "dequeueCount": 9, "other": 1}')
    [message] = seen
    assert (message.id, message.dequeue_count, message.pop_receipt) == ("from-body", 9, "receipt-1")


NESTED_TOO_DEEPLY = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize(
    "body",
    [NESTED_TOO_DEEPLY, b'{"a":' * 5000 + b"1" + b"}" * 5000, b'["Id"]', b"{not json", b"\xff{", b""],
)
def test_bodies_without_usable_json_properties_replace_nothing(body: bytes) -> None:
    assert body_properties_named_like_metadata(body) == {}


async def test_a_body_too_deep_to_parse_still_reaches_the_function() -> None:
    seen: list[Any] = []
    await invoke(queue_invokers(seen)["as_message"], NESTED_TOO_DEEPLY)
    [message] = seen
    assert (message.id, message.get_body()) == ("message-1", NESTED_TOO_DEEPLY)


async def test_str_and_bytes_triggers_get_the_raw_value() -> None:
    seen: list[Any] = []
    invokers = queue_invokers(seen)
    await invoke(invokers["as_text"], "héllo".encode())
    await invoke(invokers["as_bytes"], b"\x00\xff")
    await invoke(invokers["as_text"], b"\xff not utf-8")  # never altered: sent as bytes
    assert seen == ["héllo", b"\x00\xff", b"\xff not utf-8"]


# --- queue out ----------------------------------------------------------------------------------


async def test_a_return_value_without_a_return_binding_fails() -> None:
    with pytest.raises(InvocationError, match=r"returns_a_value.*no \$return"):
        await invoke(queue_invokers([])["returns_a_value"], b"x")


async def test_the_return_binding_is_encoded_by_the_queue_converter() -> None:
    invoker = queue_invokers([])["forwards"]
    result = await invoke(invoker, b"onwards")
    [(binding, datum)] = result.queue_outputs
    assert (binding.name, binding.queue_name, datum.type, datum.value) == (
        "$return",
        "next",
        "string",
        "onwards",
    )
    with pytest.raises(InvocationError, match="NoneType"):  # the converter cannot encode None
        await invoke(invoker, b"none")


# --- annotations, checked at indexing -----------------------------------------------------------


def _http_str_trigger(app: func.FunctionApp) -> None:
    @app.route(route="a")
    def bad_http(req: str) -> func.HttpResponse:
        return func.HttpResponse("")


def _http_message_trigger(app: func.FunctionApp) -> None:
    @app.route(route="a")
    def bad_http(req: func.QueueMessage) -> func.HttpResponse:
        return func.HttpResponse("")


def _queue_request_trigger(app: func.FunctionApp) -> None:
    @app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    def bad_queue(msg: func.HttpRequest) -> None:
        return None


def _queue_int_trigger(app: func.FunctionApp) -> None:
    @app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    def bad_queue(msg: int) -> None:
        return None


def _output_not_out(app: func.FunctionApp) -> None:
    @app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="out", queue_name="o", connection="AzureWebJobsStorage")
    def bad_output(msg: func.QueueMessage, out: str) -> None:
        return None


def _output_of_int(app: func.FunctionApp) -> None:
    @app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="out", queue_name="o", connection="AzureWebJobsStorage")
    def bad_output(msg: func.QueueMessage, out: func.Out[int]) -> None:
        return None


def _context_not_context(app: func.FunctionApp) -> None:
    @app.route(route="a")
    def bad_context(req: func.HttpRequest, context: str) -> func.HttpResponse:
        return func.HttpResponse("")


def _http_returns_none(app: func.FunctionApp) -> None:
    @app.route(route="a")
    def bad_return(req: func.HttpRequest) -> None:
        return None


def _queue_return_int(app: func.FunctionApp) -> None:
    @app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="$return", queue_name="o", connection="AzureWebJobsStorage")
    def bad_return(msg: func.QueueMessage) -> int:
        return 1


def _binding_without_parameter(app: func.FunctionApp) -> None:
    @app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="missing", queue_name="o", connection="AzureWebJobsStorage")
    def bad_binding(msg: func.QueueMessage) -> None:
        return None


def _unbound_parameter_with_default(app: func.FunctionApp) -> None:
    @app.route(route="a")
    def bad_parameter(req: func.HttpRequest, extra: str = "x") -> func.HttpResponse:
        return func.HttpResponse(extra)


@pytest.mark.parametrize(
    ("define", "named"),
    [
        (_http_str_trigger, ["bad_http", "'req'", "func.HttpRequest", "str"]),
        (_http_message_trigger, ["bad_http", "'req'", "QueueMessage"]),
        (_queue_request_trigger, ["bad_queue", "'msg'", "HttpRequest"]),
        (_queue_int_trigger, ["bad_queue", "'msg'", "int"]),
        (_output_not_out, ["bad_output", "'out'", "func.Out"]),
        (_output_of_int, ["bad_output", "'out'", "int"]),
        (_context_not_context, ["bad_context", "'context'", "func.Context"]),
        (_http_returns_none, ["bad_return", "return annotation", "NoneType"]),
        (_queue_return_int, ["bad_return", "return annotation", "int"]),
        (_binding_without_parameter, ["bad_binding", "'missing'"]),
        (_unbound_parameter_with_default, ["bad_parameter", "'extra'"]),
    ],
)
def test_wrong_annotations_and_bindings_fail_at_indexing_naming_function_and_parameter(
    define: Callable[[func.FunctionApp], None], named: list[str]
) -> None:
    app = func.FunctionApp()
    define(app)
    with pytest.raises(FunctionIndexError) as raised:
        index_functions(app, timeout=None, environ=ENVIRON)
    for fragment in named:
        assert fragment in str(raised.value)


def test_annotations_the_worker_accepts() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="raw", queue_name="o1", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="many", queue_name="o2", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="message", queue_name="o3", connection="AzureWebJobsStorage")
    def fine(
        msg: bytes,
        raw: func.Out[bytes],
        many: func.Out[typing.List[str]],  # noqa: UP006 - the converter recognises typing.List only
        message: func.Out[func.QueueMessage],
        context: func.Context,
    ) -> None:
        return None

    @app.route(route="a")
    def text(req) -> str:  # type: ignore[no-untyped-def]  # unannotated: the binding's converter
        return "ok"

    index = index_functions(app, timeout=None, environ=ENVIRON)
    assert [f.name for f in index.queue] == ["fine"]
    assert [f.name for f in index.http] == ["text"]
