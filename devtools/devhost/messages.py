"""Queue message bodies as the host encodes them (host.json `messageEncoding`: base64 or none), and
the messages an encoded output value becomes."""

from __future__ import annotations

import base64
import binascii
import json

from azure.functions.meta import Datum

BASE64 = "base64"
NONE = "none"


class MessageEncodingError(ValueError):
    """A message body that does not fit the configured encoding (the invocation fails)."""


def decode_body(text: str, encoding: str) -> bytes:
    """The bytes a function sees for a received message's text."""
    if encoding == NONE:
        return text.encode("utf-8")
    compact = "".join(text.split())  # .NET's Convert.FromBase64String ignores whitespace too
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as error:
        raise MessageEncodingError(
            "message is not valid base64 (host.json messageEncoding is base64)"
        ) from error


def encode_body(body: bytes, encoding: str) -> str:
    """The text sent to the queue for a body."""
    if encoding == NONE:
        return body.decode("utf-8")
    return base64.b64encode(body).decode("ascii")


def queue_message_bodies(datum: Datum) -> list[bytes]:
    """The messages a `queue` output binding writes for an encoded value (QueueMessageOutConverter):
    a `string` or `bytes` datum is one message; a `json` datum holding a list is one message per item
    (a string item as its text, anything else as its JSON); any other JSON value is one message of
    that JSON text (so a func.QueueMessage is written as the worker encodes it: {"id": …, "body": …})."""
    if datum.type == "string":
        return [str(datum.value).encode("utf-8")]
    if datum.type == "bytes":
        return [bytes(datum.value)]
    if datum.type == "json":
        document = json.loads(datum.value)
        if isinstance(document, list):
            return [
                item.encode("utf-8") if isinstance(item, str) else json.dumps(item).encode("utf-8")
                for item in document
            ]
        if isinstance(document, str):
            return [document.encode("utf-8")]
        return [str(datum.value).encode("utf-8")]
    raise TypeError(f"queue output: a {datum.type!r} datum is not a message")
