from __future__ import annotations

import json
from typing import Any

import pytest

from imagegen.domain.errors import InvalidRequest
from imagegen.domain.requests import (
    FLUX_1_1_PRO,
    FLUX_1_KONTEXT_PRO,
    GPT_IMAGE_1_MINI,
    GPT_IMAGE_2,
    ModelRules,
)
from imagegen.edges.http_body import parse_image_request


def _parse(document: Any, rules: ModelRules = GPT_IMAGE_2, content_type: str = "application/json") -> Any:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return parse_image_request(body, content_type, rules)


def test_defaults_are_filled_in() -> None:
    request = _parse({"prompt": "a cat"})
    assert (request.n, request.size, request.output_format) == (1, "1024x1024", "png")
    assert request.upstream_body(GPT_IMAGE_2) == {
        "prompt": "a cat",
        "n": 1,
        "size": "1024x1024",
        "output_format": "png",
    }


def test_gpt_image_models_never_ask_for_a_response_format() -> None:
    for rules in (GPT_IMAGE_2, GPT_IMAGE_1_MINI):
        assert "response_format" not in _parse({"prompt": "a cat"}, rules).upstream_body(rules)


@pytest.mark.parametrize("size", ["2048x1152", "3840x2160", "1280x3840", "1024x1024", "auto", "816x816"])
def test_gpt_image_2_takes_any_size_within_its_rule(size: str) -> None:
    request = _parse({"prompt": "a cat", "size": size})
    assert request.upstream_body(GPT_IMAGE_2)["size"] == size


@pytest.mark.parametrize(
    ("size", "rule"),
    [
        ("1000x1000", "both edges must be multiples of 16"),
        ("4096x2048", "the long edge must be at most 3840 pixels"),
        ("3840x1024", "the aspect ratio must be at most 3:1"),
        ("800x800", "the total pixel count must be between 655,360 and 8,294,400"),
        ("3840x3840", "the total pixel count must be between 655,360 and 8,294,400"),
    ],
)
def test_a_gpt_image_2_size_outside_the_rule_names_the_rule(size: str, rule: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        _parse({"prompt": "a cat", "size": size})
    assert caught.value.field == "size"
    assert caught.value.message == f"size {size}: {rule} for gpt-image-2"


@pytest.mark.parametrize("rules", [GPT_IMAGE_2, GPT_IMAGE_1_MINI])
def test_webp_is_refused_for_every_model_with_the_reason(rules: ModelRules) -> None:
    with pytest.raises(InvalidRequest) as caught:
        _parse({"prompt": "a cat", "output_format": "webp"}, rules)
    assert caught.value.field == "output_format"
    assert "does not serve webp" in caught.value.message


@pytest.mark.parametrize(
    ("document", "field", "rules"),
    [
        ({}, "prompt", GPT_IMAGE_2),
        ({"prompt": ""}, "prompt", GPT_IMAGE_2),
        ({"prompt": "   "}, "prompt", GPT_IMAGE_2),
        ({"prompt": 42}, "prompt", GPT_IMAGE_2),
        ({"prompt": "x" * 32001}, "prompt", GPT_IMAGE_2),
        ({"prompt": "x" * 32001}, "prompt", GPT_IMAGE_1_MINI),
        ({"prompt": "x" * 20001}, "prompt", FLUX_1_1_PRO),
        ({"prompt": "a", "n": 2}, "n", FLUX_1_1_PRO),
        ({"prompt": "a", "quality": "high"}, "quality", FLUX_1_1_PRO),
        ({"prompt": "a", "output_format": "jpeg"}, "output_format", FLUX_1_KONTEXT_PRO),
        ({"prompt": "a", "size": "auto"}, "size", FLUX_1_1_PRO),
        ({"prompt": "a", "size": "1440x1440"}, "size", FLUX_1_1_PRO),
        ({"prompt": "a", "size": "1216x1216"}, "size", FLUX_1_KONTEXT_PRO),
        ({"prompt": "a", "size": "1440x256"}, "size", FLUX_1_KONTEXT_PRO),
        ({"prompt": "a", "size": "1000x1000"}, "size", FLUX_1_1_PRO),
        ({"prompt": "a", "size": "224x1024"}, "size", FLUX_1_1_PRO),
        ({"prompt": "a", "n": 0}, "n", GPT_IMAGE_2),
        ({"prompt": "a", "n": 11}, "n", GPT_IMAGE_2),
        ({"prompt": "a", "n": 11}, "n", GPT_IMAGE_1_MINI),
        ({"prompt": "a", "n": "2"}, "n", GPT_IMAGE_2),
        ({"prompt": "a", "n": True}, "n", GPT_IMAGE_2),
        ({"prompt": "a", "n": 1.5}, "n", GPT_IMAGE_2),
        ({"prompt": "a", "size": "1792x1000"}, "size", GPT_IMAGE_2),
        ({"prompt": "a", "size": "2048x1152"}, "size", GPT_IMAGE_1_MINI),
        ({"prompt": "a", "size": "1024X1024"}, "size", GPT_IMAGE_2),
        ({"prompt": "a", "size": "0x1024"}, "size", GPT_IMAGE_2),
        ({"prompt": "a", "size": "99999999x1"}, "size", GPT_IMAGE_2),
        ({"prompt": "a", "user": 5}, "user", GPT_IMAGE_2),
        ({"prompt": "a", "user": ""}, "user", GPT_IMAGE_2),
        ({"prompt": "a", "size": 1024}, "size", GPT_IMAGE_2),
        ({"prompt": "a", "quality": "hd"}, "quality", GPT_IMAGE_2),
        ({"prompt": "a", "style": "vivid"}, "style", GPT_IMAGE_2),  # no served model takes style
        (
            {"prompt": "a", "background": "transparent", "output_format": "jpeg"},
            "background",
            GPT_IMAGE_1_MINI,
        ),
        ({"prompt": "a", "background": "transparent", "output_format": "jpeg"}, "background", GPT_IMAGE_2),
        ({"prompt": "a", "output_format": "gif"}, "output_format", GPT_IMAGE_2),
        ({"prompt": "a", "output_compression": 50}, "output_compression", GPT_IMAGE_2),
        (
            {"prompt": "a", "output_format": "jpeg", "output_compression": 101},
            "output_compression",
            GPT_IMAGE_2,
        ),
        ({"prompt": "a", "output_format": "webp"}, "output_format", GPT_IMAGE_1_MINI),
        ({"prompt": "a", "metadata": "x"}, "metadata", GPT_IMAGE_2),
        ({"prompt": "a", "metadata": {"k": 1}}, "metadata.k", GPT_IMAGE_2),
        ({"prompt": "a", "metadata": {f"k{i}": "v" for i in range(11)}}, "metadata", GPT_IMAGE_2),
        ({"prompt": "a", "metadata": {"k" * 65: "v"}}, "metadata", GPT_IMAGE_2),
        ({"prompt": "a", "metadata": {"": "v"}}, "metadata", GPT_IMAGE_2),
        ({"prompt": "a", "metadata": {"k": "v" * 257}}, "metadata.k", GPT_IMAGE_2),
        ({"prompt": "a", "colour": "red"}, "colour", GPT_IMAGE_2),
        ([1, 2], "body", GPT_IMAGE_2),
        (b"{not json", "body", GPT_IMAGE_2),
        (b"\xff\xfe", "body", GPT_IMAGE_2),
        (b"[" * 5000 + b"]" * 5000, "body", GPT_IMAGE_2),
        (b'{"prompt": "a \\ud800 b"}', "body", GPT_IMAGE_2),  # a lone surrogate is not a character
        (
            b'{"prompt": "a", "metadata": {"\\udfff": "v"}}',
            "body",
            GPT_IMAGE_2,
        ),  # deeper than the parser's recursion limit
        (b'{"prompt": "a", "n": ' + b"1" * 5000 + b"}", "body", GPT_IMAGE_2),  # over Python's int digits
        (b"{" + b" " * 300_000 + b"}", "body", GPT_IMAGE_2),
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
        parse_image_request(b'{"prompt":"a"}', content_type, GPT_IMAGE_2)
    assert caught.value.field == "Content-Type"


def test_json_with_charset_is_accepted() -> None:
    assert (
        parse_image_request(b'{"prompt":"a"}', "application/json; charset=utf-8", GPT_IMAGE_2).prompt == "a"
    )


def test_a_key_problem_is_named_without_echoing_a_long_key() -> None:
    with pytest.raises(InvalidRequest) as caught:
        _parse({"prompt": "a", "metadata": {"k" * 1000: "v"}}, GPT_IMAGE_2)
    assert caught.value.message == "'metadata' keys must be 1 to 64 characters"
    assert "k" * 65 not in str(caught.value.to_json())


def test_escaped_surrogate_pairs_are_characters() -> None:
    body = b'{"prompt": "a \\ud83d\\ude00 b", "metadata": {"k": "\\u00e9"}}'
    request = parse_image_request(body, "application/json", GPT_IMAGE_2)
    assert request.prompt == "a \U0001f600 b"
    assert request.metadata == {"k": "\u00e9"}


@pytest.mark.parametrize("rules", [GPT_IMAGE_2, FLUX_1_1_PRO, FLUX_1_KONTEXT_PRO], ids=lambda r: r.name)
def test_every_preset_of_a_size_rule_is_within_the_rule(rules: ModelRules) -> None:
    assert rules.custom_size is not None
    for size in rules.sizes:
        if size != "auto":
            width, height = map(int, size.split("x"))
            assert rules.custom_size.problem(width, height) is None, size
    assert rules.default_size in rules.sizes
