"""Who called: the principal App Service Authentication (Easy Auth) vouches for.

With Easy Auth on, the platform validates the caller's Microsoft Entra token before the request
reaches the app, strips any `X-MS-CLIENT-PRINCIPAL*` header the client sent, and sets them from the
token. Those headers are trusted only when EASY_AUTH is on: without it, a client could send them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PRINCIPAL_ID_HEADER = "X-MS-CLIENT-PRINCIPAL-ID"
MAX_PRINCIPAL_ID_CHARS = 128


@dataclass(frozen=True)
class Caller:
    principal_id: str  # the Entra object id (oid) of the user or managed identity


def caller_from_headers(headers: Mapping[str, str]) -> Caller | None:
    """The caller the platform named, or None (no header, or one that is not a plausible id)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    principal = (lowered.get(PRINCIPAL_ID_HEADER.lower()) or "").strip()
    if not principal or len(principal) > MAX_PRINCIPAL_ID_CHARS or not principal.isprintable():
        return None
    return Caller(principal)
