"""Queue message encoding (host.json messageEncoding) and the messages an output value becomes once
QueueMessageOutConverter has encoded it."""

from __future__ import annotations

import base64

import azure.functions as func
import pytest

from devtools.devhost.bindings import BindingConversionError, encode_output
from devtools.devhost.messages import MessageEncodingError, decode_body, encode_body, queue_message_bodies


def test_base64_round_trip_of_arbitrary_bytes() -> None:
    body = bytes(range(256))
    text = encode_body(body, "base64")
    assert text == base64.b64encode(body).decode()
    assert decode_body(text, "base64") == body


def test_base64_tolerates_whitespace_like_dotnet() -> None:
    assert decode_body("aGVs\nbG8=\n", "base64") == b"hello"


@pytest.mark.parametrize("text", ["not base64!", "aGVsbG8", "%%%%"])
def test_invalid_base64_is_an_encoding_error(text: str) -> None:
    with pytest.raises(MessageEncodingError, match="base64"):
        decode_body(text, "base64")


def test_none_encoding_passes_text_through() -> None:
    assert decode_body("héllo", "none") == "héllo".encode()
    assert encode_body("héllo".encode(), "none") == "héllo"


def written(value: object) -> list[bytes]:
    return queue_message_bodies(encode_output("queue", value))


def test_str_and_bytes_are_one_message_each() -> None:
    assert written("a") == [b"a"]
    assert written(b"\x00\xff") == [b"\x00\xff"]


def test_a_list_is_one_message_per_item() -> None:
    assert written(["a", "b"]) == [b"a", b"b"]
    assert written([func.QueueMessage(body="q")]) == [b'{"id": null, "body": "q"}']


def test_a_queue_message_is_written_as_the_worker_encodes_it() -> None:
    # QueueMessageOutConverter sends {"id", "body"} JSON; the host writes that JSON as the text.
    assert written(func.QueueMessage(body="q")) == [b'{"id": null, "body": "q"}']


def test_values_the_converter_refuses_fail() -> None:
    with pytest.raises(BindingConversionError, match="queue"):
        written(3)
    with pytest.raises(BindingConversionError):
        written(None)
    with pytest.raises(BindingConversionError):
        written(["a", b"b"])  # bytes inside a list: the converter accepts str and QueueMessage only


def test_a_dict_is_iterated_like_any_iterable() -> None:
    # The converter's rule, not a dev host choice: a dict's keys become the messages.
    assert written({"a": 1}) == [b"a"]
