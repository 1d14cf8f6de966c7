"""Function keys: header or `code`, function vs master key."""

from __future__ import annotations

import pytest

from devtools.devhost.auth import FunctionKeys, presented_key

KEYS = FunctionKeys(function_key="fkey", master_key="mkey")


@pytest.mark.parametrize(
    ("level", "presented", "allowed"),
    [
        ("anonymous", None, True),
        ("ANONYMOUS", "anything", True),
        ("function", None, False),
        ("function", "", False),
        ("function", "wrong", False),
        ("function", "fkey", True),
        ("FUNCTION", "mkey", True),
        ("admin", "fkey", False),
        ("admin", "mkey", True),
        ("admin", None, False),
    ],
)
def test_levels(level: str, presented: str | None, allowed: bool) -> None:
    assert KEYS.allows(level, presented) is allowed


def test_without_configured_keys_nothing_opens_protected_routes() -> None:
    keys = FunctionKeys(function_key=None, master_key=None)
    assert keys.allows("anonymous", None)
    assert not keys.allows("function", "")
    assert not keys.allows("function", "anything")
    assert not keys.allows("admin", "anything")


def test_header_wins_over_query_and_header_name_ignores_case() -> None:
    assert presented_key({"X-Functions-Key": "h"}, {"code": "q"}) == "h"
    assert presented_key({}, {"code": "q"}) == "q"
    assert presented_key({"x-functions-key": ""}, {"code": "q"}) == "q"
    assert presented_key({}, {}) is None


def test_a_key_that_is_not_utf8_opens_nothing_and_raises_nothing() -> None:
    # aiohttp hands header bytes that are not UTF-8 over as surrogate escapes: b"\xff" -> "\udcff".
    not_utf8 = b"\xff\xfefkey".decode("utf-8", "surrogateescape")
    assert not KEYS.allows("function", not_utf8)
    assert not KEYS.allows("admin", not_utf8)
    assert not KEYS.allows("function", "\ud800")  # a lone surrogate no codec round-trips


def test_keys_compare_as_the_bytes_that_were_sent() -> None:
    raw = "k\udcff"  # a configured key read from an environment that was not UTF-8
    keys = FunctionKeys(function_key=raw, master_key=None)
    assert keys.allows("function", raw)
    assert not keys.allows("function", "k")
