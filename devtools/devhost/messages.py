"""Queue message bodies as the host encodes them (host.json `messageEncoding`: base64 or none)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any

import azure.functions as func

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


def output_bodies(value: Any) -> list[bytes]:
    """What a `queue` output binding writes for a value: str, bytes, func.QueueMessage, or a list of
    them (one message each), as the Python worker's converter accepts."""
    if isinstance(value, str):
        return [value.encode("utf-8")]
    if isinstance(value, bytes | bytearray):
        return [bytes(value)]
    if isinstance(value, func.QueueMessage):
        return [value.get_body()]
    if isinstance(value, Iterable) and not isinstance(value, dict):
        bodies: list[bytes] = []
        for item in value:
            if isinstance(item, list | tuple):
                raise TypeError("queue output: nested lists are not supported")
            bodies.extend(output_bodies(item))
        return bodies
    raise TypeError(f"queue output: unsupported value type {type(value).__name__}")
