from __future__ import annotations

import json
from typing import Any

import pytest

from imagegen.errors import InvalidRequest
from imagegen.models import DALL_E_2, DALL_E_3, GPT_IMAGE, ModelRules, parse_image_request


def _parse(document: Any, rules: ModelRules = GPT_IMAGE, content_type: str = "application/json") -> Any:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return parse_image_request(body, content_type, rules)


def test_defaults_are_filled_in() -> None:
    request = _parse({"prompt": "a cat"})
    assert (request.n, request.size, request.output_format) == (1, "1024x1024", "png")
    assert request.upstream_body(GPT_IMAGE) == {
        "prompt": "a cat",
        "n": 1,
        "size": "1024x1024",
        "output_format": "png",
    }


def test_dall_e_asks_for_base64() -> None:
    request = _parse({"prompt": "a cat", "style": "vivid", "quality": "hd"}, DALL_E_3)
    assert request.upstream_body(DALL_E_3)["response_format"] == "b64_json"


@pytest.mark.parametrize(
    ("document", "field", "rules"),
    [
        ({}, "prompt", GPT_IMAGE),
        ({"prompt": ""}, "prompt", GPT_IMAGE),
        ({"prompt": "   "}, "prompt", GPT_IMAGE),
        ({"prompt": 42}, "prompt", GPT_IMAGE),
        ({"prompt": "x" * 32001}, "prompt", GPT_IMAGE),
        ({"prompt": "x" * 4001}, "prompt", DALL_E_3),
        ({"prompt": "x" * 1001}, "prompt", DALL_E_2),
        ({"prompt": "a", "n": 0}, "n", GPT_IMAGE),
        ({"prompt": "a", "n": 11}, "n", GPT_IMAGE),
        ({"prompt": "a", "n": 2}, "n", DALL_E_3),
        ({"prompt": "a", "n": "2"}, "n", GPT_IMAGE),
        ({"prompt": "a", "n": True}, "n", GPT_IMAGE),
        ({"prompt": "a", "n": 1.5}, "n", GPT_IMAGE),
        ({"prompt": "a", "size": "1792x1024"}, "size", GPT_IMAGE),
        ({"prompt": "a", "size": "1536x1024"}, "size", DALL_E_3),
        ({"prompt": "a", "size": 1024}, "size", GPT_IMAGE),
        ({"prompt": "a", "quality": "hd"}, "quality", GPT_IMAGE),
        ({"prompt": "a", "style": "vivid"}, "style", GPT_IMAGE),
        ({"prompt": "a", "background": "transparent"}, "background", DALL_E_3),
        ({"prompt": "a", "background": "transparent", "output_format": "jpeg"}, "background", GPT_IMAGE),
        ({"prompt": "a", "output_format": "gif"}, "output_format", GPT_IMAGE),
        ({"prompt": "a", "output_compression": 50}, "output_compression", GPT_IMAGE),
        (
            {"prompt": "a", "output_format": "jpeg", "output_compression": 101},
            "output_compression",
            GPT_IMAGE,
        ),
        ({"prompt": "a", "output_compression": 50}, "output_compression", DALL_E_3),
        ({"prompt": "a", "metadata": "x"}, "metadata", GPT_IMAGE),
        ({"prompt": "a", "metadata": {"k": 1}}, "metadata.k", GPT_IMAGE),
        ({"prompt": "a", "metadata": {f"k{i}": "v" for i in range(11)}}, "metadata", GPT_IMAGE),
        ({"prompt": "a", "metadata": {"k" * 65: "v"}}, "metadata", GPT_IMAGE),
        ({"prompt": "a", "metadata": {"": "v"}}, "metadata", GPT_IMAGE),
        ({"prompt": "a", "metadata": {"k": "v" * 257}}, "metadata.k", GPT_IMAGE),
        ({"prompt": "a", "colour": "red"}, "colour", GPT_IMAGE),
        ([1, 2], "body", GPT_IMAGE),
        (b"{not json", "body", GPT_IMAGE),
        (b"\xff\xfe", "body", GPT_IMAGE),
        (b"[" * 5000 + b"]" * 5000, "body", GPT_IMAGE),
        (b'{"prompt": "a \\ud800 b"}', "body", GPT_IMAGE),  # a lone surrogate is not a character
        (
            b'{"prompt": "a", "metadata": {"\\udfff": "v"}}',
            "body",
            GPT_IMAGE,
        ),  # deeper than the parser's recursion limit
        (b'{"prompt": "a", "n": ' + b"1" * 5000 + b"}", "body", GPT_IMAGE),  # over Python's int digits
        (b"{" + b" " * 300_000 + b"}", "body", GPT_IMAGE),
    ],
)
def test_bad_input_names_the_field(document: Any, field: str, rules: ModelRules) -> None:
    with pytest.raises(InvalidRequest) as caught:
        _parse(document, rules)
    assert caught.value.field == field
    assert caught.value.to_json()["details"]["field"] == field


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type(content_type: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_image_request(b'{"prompt":"a"}', content_type, GPT_IMAGE)
    assert caught.value.field == "Content-Type"


def test_json_with_charset_is_accepted() -> None:
    assert parse_image_request(b'{"prompt":"a"}', "application/json; charset=utf-8", GPT_IMAGE).prompt == "a"


def test_a_key_problem_is_named_without_echoing_a_long_key() -> None:
    with pytest.raises(InvalidRequest) as caught:
        _parse({"prompt": "a", "metadata": {"k" * 1000: "v"}}, GPT_IMAGE)
    assert caught.value.message == "'metadata' keys must be 1 to 64 characters"
    assert "k" * 65 not in str(caught.value.to_json())


def test_escaped_surrogate_pairs_are_characters() -> None:
    body = b'{"prompt": "a \\ud83d\\ude00 b", "metadata": {"k": "\\u00e9"}}'
    request = parse_image_request(body, "application/json", GPT_IMAGE)
    assert request.prompt == "a \U0001f600 b"
    assert request.metadata == {"k": "\u00e9"}
