"""Host-shaped data through the azure.functions converters, the way the Python worker uses them.

In: the host sends an HTTP request as an `http` datum (method, url, headers, query, params, body) and a
queue message as its body plus trigger metadata (Id, DequeueCount, ExpirationTime, InsertionTime,
NextVisibleTime, PopReceipt); the worker decodes them with HttpRequestConverter and
QueueMessageInConverter. Out: the worker encodes the return value and each `func.Out` value with
HttpResponseConverter / QueueMessageOutConverter, and the host answers or writes from that encoded
form, not from the Python objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.functions.http import HttpRequestConverter, HttpResponseConverter
from azure.functions.meta import Datum
from azure.functions.queue import QueueMessageInConverter, QueueMessageOutConverter

HTTP_TRIGGER = "httptrigger"
QUEUE_TRIGGER = "queuetrigger"
HTTP_OUTPUT = "http"
QUEUE_OUTPUT = "queue"
BINARY_DATA_TYPE = "binary"
QUEUE_METADATA_FIELDS = (
    "Id",
    "DequeueCount",
    "ExpirationTime",
    "InsertionTime",
    "NextVisibleTime",
    "PopReceipt",
)
_TEXT_RESPONSE_TYPE = "text/plain; charset=utf-8"


class BindingConversionError(TypeError):
    """A value a converter cannot decode or encode (the invocation fails)."""


# --- HTTP in --------------------------------------------------------------------------------------


def join_request_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Request headers as the host sends them: names lowercased, repeated ones joined with ","."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(value)
    return {name: ",".join(parts) for name, parts in values.items()}


def join_query(query: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Query parameters as the host sends them: keys compared case-insensitively (the first spelling
    kept), repeated values joined with ",", and a key whose joined value is empty left out."""
    spelling: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for name, value in query:
        key = name.lower()
        spelling.setdefault(key, name)
        values.setdefault(key, []).append(value)
    joined = {spelling[key]: ",".join(parts) for key, parts in values.items()}
    return {name: value for name, value in joined.items() if value}


def http_request_datum(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    route_params: Mapping[str, str],
    body: bytes,
) -> Datum:
    """The `http` datum the worker receives: every field a string datum, the body raw bytes (the
    worker asks the host for raw body bytes)."""
    return Datum(
        type="http",
        value={
            "method": Datum(method, "string"),
            "url": Datum(url, "string"),
            "headers": {name: Datum(value, "string") for name, value in headers.items()},
            "query": {name: Datum(value, "string") for name, value in query.items()},
            "params": {name: Datum(value, "string") for name, value in route_params.items()},
            "body": Datum(body, "bytes"),
        },
    )


# --- queue in -------------------------------------------------------------------------------------


def queue_trigger_datum(body: bytes, data_type: str | None) -> Datum:
    """The message body as the host sends it: bytes for `dataType: binary`, otherwise text (bytes when
    the body is not UTF-8, so the dev host never alters it)."""
    if (data_type or "").lower() != BINARY_DATA_TYPE:
        try:
            return Datum(body.decode("utf-8"), "string")
        except UnicodeDecodeError:
            pass
    return Datum(body, "bytes")


@dataclass(frozen=True)
class ReceivedMessage:
    """What the storage service said about a received message."""

    message_id: str | None
    dequeue_count: int
    expires_on: datetime | None
    inserted_on: datetime | None
    next_visible_on: datetime | None
    pop_receipt: str | None


def _json_datum(value: Any) -> Datum:
    if isinstance(value, datetime):
        value = value.astimezone(UTC).isoformat()  # "2024-05-01T12:00:00+00:00", as the host writes it
    return Datum(json.dumps(value), "json")


def body_properties_named_like_metadata(body: bytes) -> dict[str, Any]:
    """Top-level properties of a JSON-object body whose names match a metadata field, by the field's
    name. The host adds a JSON body's properties to the trigger data (names compared
    case-insensitively), so they replace the message's own Id, DequeueCount, …
    (azure-functions-python-worker#1373, azure-functions-python-library#49). A body that is not a
    JSON object, or nests too deeply to parse, has none (the host's reader gives up on it too)."""
    if not body.lstrip().startswith(b"{"):
        return {}
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {}
    if not isinstance(document, dict):
        return {}
    fields = {field.lower(): field for field in QUEUE_METADATA_FIELDS}
    return {fields[name.lower()]: value for name, value in document.items() if name.lower() in fields}


def queue_trigger_metadata(message: ReceivedMessage, body_properties: Mapping[str, Any]) -> dict[str, Datum]:
    """The trigger metadata the host sends with a queue message: JSON datums, a field left out when the
    service gave no value, and the body's like-named properties (see above) winning."""
    values: dict[str, Any] = {
        "Id": message.message_id,
        "DequeueCount": message.dequeue_count,
        "ExpirationTime": message.expires_on,
        "InsertionTime": message.inserted_on,
        "NextVisibleTime": message.next_visible_on,
        "PopReceipt": message.pop_receipt,
    }
    values.update(body_properties)
    return {name: _json_datum(value) for name, value in values.items() if value is not None}


# --- decoding a trigger ---------------------------------------------------------------------------


def _generic_value(datum: Datum) -> Any:
    """A trigger parameter annotated `str` or `bytes`: the worker's generic binding hands over the raw
    value as sent."""
    if datum.type in ("string", "bytes", "json"):
        return datum.value
    raise BindingConversionError(f"a {datum.type!r} datum cannot be passed to a str/bytes parameter")


def decode_trigger(
    binding_type: str, datum: Datum, trigger_metadata: Mapping[str, Datum], *, generic: bool
) -> Any:
    """The trigger parameter's value, from its converter (or the generic binding for str/bytes)."""
    if generic:
        return _generic_value(datum)
    kind = binding_type.lower()
    try:
        if kind == HTTP_TRIGGER:
            return HttpRequestConverter.decode(datum, trigger_metadata=trigger_metadata)
        if kind == QUEUE_TRIGGER:
            return QueueMessageInConverter.decode(datum, trigger_metadata=trigger_metadata)
    except NotImplementedError as error:
        raise BindingConversionError(f"cannot decode a {datum.type!r} datum for {binding_type}") from error
    raise BindingConversionError(f"no converter for trigger {binding_type!r}")


# --- encoding outputs -----------------------------------------------------------------------------


def encode_output(binding_type: str, value: Any, expected_type: Any = None) -> Datum:
    """A return value or `func.Out` value → the datum the worker sends the host."""
    kind = binding_type.lower()
    try:
        if kind == HTTP_OUTPUT:
            return HttpResponseConverter.encode(value, expected_type=expected_type)
        if kind == QUEUE_OUTPUT:
            return QueueMessageOutConverter.encode(value, expected_type=expected_type)
    except NotImplementedError as error:
        raise BindingConversionError(
            f"a {type(value).__name__} cannot be encoded for a {binding_type!r} output binding"
        ) from error
    raise BindingConversionError(f"no converter for output binding {binding_type!r}")


@dataclass(frozen=True)
class HttpAnswer:
    """The response the host writes for an encoded HTTP return value."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _datum_bytes(datum: Datum | None) -> bytes:
    if datum is None or datum.value is None:
        return b""
    if isinstance(datum.value, bytes):
        return datum.value
    if isinstance(datum.value, str):
        return datum.value.encode("utf-8")
    raise BindingConversionError(f"an HTTP response body of type {datum.type!r} is not supported")


def http_answer(datum: Datum) -> HttpAnswer:
    """Status, headers and body from the encoded form: an `http` datum (from func.HttpResponse, its
    cookies as Set-Cookie headers) or a `string` datum (200, text/plain)."""
    if datum.type == "string":
        return HttpAnswer(200, (("Content-Type", _TEXT_RESPONSE_TYPE),), _datum_bytes(datum))
    if datum.type != "http" or not isinstance(datum.value, dict):
        raise BindingConversionError(f"an HTTP function's {datum.type!r} result is not a response")
    response: dict[str, Any] = datum.value
    headers = [(str(name), str(value.value)) for name, value in response["headers"].items()]
    for cookie in response.get("cookies") or []:
        headers.extend(("Set-Cookie", morsel.OutputString()) for morsel in cookie.values())
    return HttpAnswer(int(response["status_code"].value), tuple(headers), _datum_bytes(response.get("body")))
