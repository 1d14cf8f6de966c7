"""Every way json.loads can fail on outside input is one NotJson with a reason, and no text."""

from __future__ import annotations

import pytest

from imagegen.domain.jsontext import NotJson, parse_json


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            b'{"prompt": "a secret prompt",',
            "Expecting property name enclosed in double quotes at position 29",
        ),
        (b'{"a": "\xff"}', "not UTF-8 text"),
        ('{"prompt": "a"}'.encode("utf-16"), "not UTF-8 text"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        (b'{"a": ["x", {"\\ud800": 1}]}', "a \\u escape is half of a surrogate pair, not a character"),
        ('"\\udc00 alone"', "a \\u escape is half of a surrogate pair, not a character"),
        (b'{"n": ' + b"7" * 5000 + b"}", "a number has too many digits"),
    ],
    ids=["syntax", "encoding", "UTF-16", "depth", "lone surrogate key", "lone surrogate value", "digits"],
)
def test_each_failure_has_its_reason(data: bytes | str, reason: str) -> None:
    with pytest.raises(NotJson) as caught:
        parse_json(data)
    assert caught.value.reason == reason
    assert "secret" not in str(caught.value)


def test_json_within_the_limits_parses() -> None:
    assert parse_json(b'{"a": [' + b"[" * 500 + b"]" * 500 + b'], "n": ' + b"9" * 4000 + b"}") == {
        "a": [parse_json("[" * 500 + "]" * 500)],
        "n": int("9" * 4000),
    }


def test_a_byte_order_mark_is_allowed() -> None:
    assert parse_json(b'\xef\xbb\xbf{"prompt": "a"}') == {"prompt": "a"}
    assert parse_json('\ufeff{"prompt": "a"}') == {"prompt": "a"}  # a queue message's decoded text
