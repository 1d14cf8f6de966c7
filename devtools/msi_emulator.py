"""App Service managed-identity endpoint, as the Functions host exposes it to the worker.

    python -m devtools.msi_emulator --port 7082 [--identity-header H] [--client-id ID ...]

`GET /msi/token?api-version=2019-08-01&resource=<uri>[&client_id=<id>]` with header
`X-IDENTITY-HEADER: <H>` answers `{access_token, expires_on, resource, token_type, client_id}`.
Point azure-identity at it with IDENTITY_ENDPOINT=http://127.0.0.1:<port>/msi/token and
IDENTITY_HEADER=<H>; ManagedIdentityCredential then works unchanged.

`GET /_emulator/stats` reports how many tokens were issued per audience (for benchmarks that check
that clients cache tokens).
"""

from __future__ import annotations

import argparse
import hmac
import logging
from collections import Counter

from aiohttp import web

from devtools.tokens import audience_for_resource, mint_access_token

SUPPORTED_API_VERSIONS = frozenset({"2019-08-01"})
DEFAULT_IDENTITY_HEADER = "local-identity-header"
log = logging.getLogger("msi_emulator")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"statusCode": status, "message": message}, status=status)


def create_app(
    *,
    identity_header: str = DEFAULT_IDENTITY_HEADER,
    known_client_ids: frozenset[str] = frozenset(),
    token_lifetime_seconds: int = 3600,
) -> web.Application:
    issued: Counter[str] = Counter()

    async def token(request: web.Request) -> web.Response:
        supplied = request.headers.get("X-IDENTITY-HEADER", "")
        if not hmac.compare_digest(supplied.encode(), identity_header.encode()):
            return _error(401, "The X-IDENTITY-HEADER header is missing or wrong.")
        api_version = request.query.get("api-version", "")
        if api_version not in SUPPORTED_API_VERSIONS:
            return _error(400, f"Unsupported api-version '{api_version}'; use 2019-08-01.")
        resource = request.query.get("resource", "")
        if not resource.startswith("https://"):
            return _error(400, "Query parameter 'resource' is required and must be an https URI.")
        client_id = request.query.get("client_id") or None
        if request.query.get("mi_res_id") or request.query.get("principal_id"):
            return _error(400, "Only client_id selects a user-assigned identity in this emulator.")
        if client_id and known_client_ids and client_id not in known_client_ids:
            return _error(400, "Unable to load the proper Managed Identity.")
        access_token, expires_on = mint_access_token(
            resource=resource, client_id=client_id, lifetime_seconds=token_lifetime_seconds
        )
        audience = audience_for_resource(resource)
        issued[audience] += 1
        log.info("issued token aud=%s client_id=%s", audience, client_id or "system-assigned")
        body = {
            "access_token": access_token,
            "expires_on": str(expires_on),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id or "",
        }
        return web.json_response(body)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"tokens_issued": dict(issued), "total": sum(issued.values())})

    app = web.Application()
    app.router.add_get("/msi/token", token)
    app.router.add_get("/_emulator/stats", stats)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7082)
    parser.add_argument("--identity-header", default=DEFAULT_IDENTITY_HEADER)
    parser.add_argument("--client-id", action="append", default=[], help="known user-assigned client ids")
    parser.add_argument("--token-lifetime", type=int, default=3600, help="seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(
        identity_header=args.identity_header,
        known_client_ids=frozenset(args.client_id),
        token_lifetime_seconds=args.token_lifetime,
    )
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
