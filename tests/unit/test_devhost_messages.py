"""Queue message encoding (host.json messageEncoding) and output binding values."""

from __future__ import annotations

import base64

import azure.functions as func
import pytest

from devtools.devhost.messages import MessageEncodingError, decode_body, encode_body, output_bodies


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


def test_output_values() -> None:
    assert output_bodies("a") == [b"a"]
    assert output_bodies(b"\x00") == [b"\x00"]
    assert output_bodies(func.QueueMessage(body="q")) == [b"q"]
    assert output_bodies(["a", b"b"]) == [b"a", b"b"]
    with pytest.raises(TypeError):
        output_bodies({"a": 1})
    with pytest.raises(TypeError):
        output_bodies(3)
