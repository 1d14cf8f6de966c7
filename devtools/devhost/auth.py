"""Function keys, as the host checks them before a function runs."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

KEY_HEADER = "x-functions-key"
KEY_QUERY_PARAMETER = "code"


@dataclass(frozen=True)
class FunctionKeys:
    """The dev host's keys. A function-level route accepts the function key or the master key; an
    admin-level route only the master key. A key that is not configured opens nothing."""

    function_key: str | None
    master_key: str | None

    def allows(self, auth_level: str, presented: str | None) -> bool:
        level = auth_level.lower()
        if level == "anonymous":
            return True
        if not presented:
            return False
        accepted = [self.master_key] if level == "admin" else [self.function_key, self.master_key]
        sent = _as_sent(presented)
        # Check every configured key (no early exit) with a constant-time comparison of the bytes.
        matches = [
            sent is not None and (raw := _as_sent(key)) is not None and hmac.compare_digest(sent, raw)
            for key in accepted
            if key
        ]
        return any(matches)


def _as_sent(text: str) -> bytes | None:
    """The bytes a header or an environment variable held: aiohttp and os.environ keep bytes that are
    not UTF-8 as surrogate escapes. None for text no bytes give (it matches no key)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key a request carries: the `x-functions-key` header, else the `code` query parameter."""
    for name, value in headers.items():
        if name.lower() == KEY_HEADER and value:
            return value
    return query.get(KEY_QUERY_PARAMETER) or None
