"""Azure OpenAI's two ways in: an `api-key` header, or an Entra ID bearer token for the right audience.

Only the auth *kind* ever leaves this module (for logs and the request log), never a key or token.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable, Mapping

import jwt

from devtools.aoai_emulator.errors import ApiError
from devtools.tokens import AI_AUDIENCE, COGNITIVE_SERVICES_AUDIENCE, read_claims

ACCEPTED_AUDIENCES = frozenset({COGNITIVE_SERVICES_AUDIENCE, AI_AUDIENCE})
CLOCK_SKEW_SECONDS = 300

KEY_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
    "for an active subscription and use a correct regional API endpoint for your resource."
)
KEY_MISSING = (
    "Access denied due to missing subscription key. Make sure to include subscription key when making "
    "requests to an API."
)
TOKEN_DENIED = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)
PRINCIPAL_DENIED = "Principal does not have access to API/Operation."


class AuthError(ApiError):
    """A 401 that also knows which kind of credential was refused (for the request log)."""

    def __init__(self, kind: str, code: str, message: str) -> None:
        super().__init__(401, code, message)
        self.kind = kind


def authenticate(
    headers: Mapping[str, str],
    *,
    api_key: str | None,
    denied_object_ids: Iterable[str] = (),
    now: float | None = None,
) -> str:
    """Return the auth kind ("api-key" or "bearer"), or raise AuthError with Azure's 401 body.

    With no key configured the emulator is Entra-only and refuses every key, like a resource with
    local authentication disabled.
    """
    supplied_key = headers.get("api-key")
    if supplied_key is not None:
        if api_key is None or not hmac.compare_digest(supplied_key.encode(), api_key.encode()):
            raise AuthError("invalid-key", "401", KEY_DENIED)
        return "api-key"
    authorization = headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing", "401", KEY_MISSING)
    try:
        claims = read_claims(token.strip())
    except jwt.PyJWTError:
        raise AuthError("invalid-token", "Unauthorized", TOKEN_DENIED) from None
    now = time.time() if now is None else now
    audience = claims.get("aud")
    audiences = set(audience) if isinstance(audience, list) else {audience}
    if not audiences & ACCEPTED_AUDIENCES:
        raise AuthError("invalid-token", "Unauthorized", TOKEN_DENIED)
    expires = claims.get("exp")
    not_before = claims.get("nbf")
    if not isinstance(expires, int | float) or expires <= now:
        raise AuthError("invalid-token", "Unauthorized", TOKEN_DENIED)
    if isinstance(not_before, int | float) and not_before > now + CLOCK_SKEW_SECONDS:
        raise AuthError("invalid-token", "Unauthorized", TOKEN_DENIED)
    if claims.get("oid") in set(denied_object_ids):
        raise AuthError("denied-principal", "PermissionDenied", PRINCIPAL_DENIED)
    return "bearer"
