"""Entra-ID-shaped access tokens for the local stack.

The managed-identity emulator mints them; the Azure OpenAI emulator and Azurite read their claims.
Like Azurite, nothing here checks signatures: the point is the claims (aud, iss, tid, oid, iat,
nbf, exp) that real services check, not cryptographic trust.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import jwt

LOCAL_TENANT_ID = "72f988bf-0000-4000-8000-00000000face"
STORAGE_AUDIENCE = "https://storage.azure.com"
COGNITIVE_SERVICES_AUDIENCE = "https://cognitiveservices.azure.com"
AI_AUDIENCE = "https://ai.azure.com"
_SIGNING_KEY = secrets.token_bytes(32)


def audience_for_resource(resource: str) -> str:
    """Entra issues `aud` without the trailing slash or `/.default` of the requested resource."""
    for suffix in ("/.default", "/"):
        if resource.endswith(suffix):
            resource = resource[: -len(suffix)]
    return resource


def object_id_for_client(client_id: str | None) -> str:
    """A stable principal (object) id per identity, so logs and role checks can tell them apart."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"local-identity:{client_id or 'system-assigned'}"))


def mint_access_token(
    *,
    resource: str,
    client_id: str | None,
    lifetime_seconds: int,
    tenant_id: str = LOCAL_TENANT_ID,
    now: float | None = None,
) -> tuple[str, int]:
    """Return (jwt, expires_on epoch seconds)."""
    issued = int(now if now is not None else time.time())
    expires_on = issued + lifetime_seconds
    claims: dict[str, Any] = {
        "aud": audience_for_resource(resource),
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": issued,
        "nbf": issued - 5,
        "exp": expires_on,
        "tid": tenant_id,
        "oid": object_id_for_client(client_id),
        "sub": object_id_for_client(client_id),
        "appid": client_id or object_id_for_client(None),
        "idtyp": "app",
        "ver": "1.0",
    }
    token = jwt.encode(claims, _SIGNING_KEY, algorithm="HS256", headers={"kid": "local-stack"})
    return token, expires_on


def read_claims(token: str) -> dict[str, Any]:
    """Claims of a token without verifying its signature (the local stack does not sign for trust)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims
