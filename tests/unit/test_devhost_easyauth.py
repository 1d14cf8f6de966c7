"""The dev host stands in for App Service Authentication like the platform does: it validates the
caller's bearer token, strips any X-MS-CLIENT-PRINCIPAL* header the client sent and sets them from
the token; without a valid token a protected path is 401."""

from __future__ import annotations

import time

import pytest

from devtools.devhost.easyauth import EasyAuth, easy_auth_from_environment
from devtools.tokens import mint_access_token

AUDIENCE = "api://imagegen-local"
EASY_AUTH = EasyAuth(audiences=frozenset({AUDIENCE}))


def _bearer(
    client_id: str, *, resource: str = AUDIENCE, lifetime: int = 600, now: float | None = None
) -> str:
    token, _ = mint_access_token(resource=resource, client_id=client_id, lifetime_seconds=lifetime, now=now)
    return f"Bearer {token}"


def _principal(headers: list[tuple[str, str]] | None) -> str | None:
    assert headers is not None
    found = [value for name, value in headers if name.lower() == "x-ms-client-principal-id"]
    return found[0] if found else None


def test_a_valid_token_names_its_caller_and_a_forged_header_is_replaced() -> None:
    forged = [("X-MS-CLIENT-PRINCIPAL-ID", "admin"), ("x-ms-client-principal-name", "root")]
    headers = EASY_AUTH.apply("/api/images", [("Authorization", _bearer("alice")), *forged])
    assert _principal(headers) not in (None, "admin")
    assert headers is not None and ("x-ms-client-principal-name", "root") not in headers
    assert _principal(EASY_AUTH.apply("/api/images", [("Authorization", _bearer("bob"))])) != _principal(
        headers
    )


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer not-a-jwt",
        _bearer("alice", resource="https://storage.azure.com"),  # another audience
        _bearer("alice", lifetime=60, now=time.time() - 3600),  # expired
    ],
)
def test_without_a_valid_token_a_protected_path_is_refused(authorization: str | None) -> None:
    headers = [("X-MS-CLIENT-PRINCIPAL-ID", "admin")]
    if authorization is not None:
        headers.append(("Authorization", authorization))
    assert EASY_AUTH.apply("/api/images", headers) is None


def test_excluded_paths_pass_without_a_token_and_still_lose_forged_headers() -> None:
    headers = EASY_AUTH.apply("/api/health", [("X-MS-CLIENT-PRINCIPAL-ID", "admin")])
    assert headers == []


def test_the_emulation_is_on_only_when_audiences_are_configured() -> None:
    assert easy_auth_from_environment({}) is None
    configured = easy_auth_from_environment({"DEVHOST_EASY_AUTH_AUDIENCES": "api://a, b"})
    assert configured is not None and configured.audiences == frozenset({"api://a", "b"})
