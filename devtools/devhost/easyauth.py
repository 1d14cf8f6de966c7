"""App Service Authentication (Easy Auth) as the platform applies it in front of the Functions host.

With it on, the platform validates the caller's Microsoft Entra bearer token before the host sees
the request, strips every `X-MS-CLIENT-PRINCIPAL*` header the client sent, and sets them from the
token; a protected path without a valid token is 401. Like Azurite and the emulators, the dev host
checks the token's claims (audience, lifetime, issuer, object id), not its signature: the local
stack's tokens come from the managed-identity emulator.

On when `DEVHOST_EASY_AUTH_AUDIENCES` lists the accepted audiences (comma-separated); the paths the
template excludes (health, the OpenAPI description, the playground) pass without a token.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from devtools.tokens import read_claims

AUDIENCES_VARIABLE = "DEVHOST_EASY_AUTH_AUDIENCES"
PRINCIPAL_HEADER_PREFIX = "x-ms-client-principal"
EXCLUDED_PATHS = ("/api/health", "/api/openapi.json", "/api/playground")
ISSUER_PREFIXES = ("https://sts.windows.net/", "https://login.microsoftonline.com/")
CLOCK_SKEW_SECONDS = 300

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class EasyAuth:
    audiences: frozenset[str]
    excluded_paths: tuple[str, ...] = EXCLUDED_PATHS

    def apply(self, path: str, headers: Sequence[tuple[str, str]]) -> Headers | None:
        """The request's headers as the platform passes them on, or None: 401."""
        kept = [
            (name, value) for name, value in headers if not name.lower().startswith(PRINCIPAL_HEADER_PREFIX)
        ]
        claims = self._claims(headers)
        if claims is None:
            return kept if self._excluded(path) else None
        principal = str(claims["oid"])
        name = str(claims.get("upn") or claims.get("appid") or principal)
        encoded = base64.b64encode(
            json.dumps(
                {
                    "auth_typ": "aad",
                    "name_typ": "name",
                    "role_typ": "roles",
                    "claims": [{"typ": key, "val": str(value)} for key, value in claims.items()],
                }
            ).encode()
        ).decode()
        return [
            *kept,
            ("X-MS-CLIENT-PRINCIPAL-ID", principal),
            ("X-MS-CLIENT-PRINCIPAL-NAME", name),
            ("X-MS-CLIENT-PRINCIPAL-IDP", "aad"),
            ("X-MS-CLIENT-PRINCIPAL", encoded),
        ]

    def _excluded(self, path: str) -> bool:
        trimmed = path.rstrip("/")
        return trimmed in self.excluded_paths

    def _claims(self, headers: Sequence[tuple[str, str]]) -> dict[str, Any] | None:
        authorization = next((value for name, value in headers if name.lower() == "authorization"), "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            claims = read_claims(token.strip())
        except jwt.PyJWTError:
            return None
        audiences = claims.get("aud")
        presented = set(audiences) if isinstance(audiences, list) else {audiences}
        now = time.time()
        timely = (
            isinstance(claims.get("exp"), int | float)
            and claims["exp"] > now - CLOCK_SKEW_SECONDS
            and (not isinstance(claims.get("nbf"), int | float) or claims["nbf"] <= now + CLOCK_SKEW_SECONDS)
        )
        issued_by_entra = str(claims.get("iss", "")).startswith(ISSUER_PREFIXES)
        if not (presented & self.audiences and timely and issued_by_entra and claims.get("oid")):
            return None
        return claims


def easy_auth_from_environment(environ: Mapping[str, str]) -> EasyAuth | None:
    listed = [item.strip() for item in environ.get(AUDIENCES_VARIABLE, "").split(",") if item.strip()]
    return EasyAuth(frozenset(listed)) if listed else None
