"""Callbacks: the terminal job POSTed to `callback_url`, signed the Standard Webhooks way.

Headers `webhook-id` (stable per job and outcome, so receivers can drop duplicates),
`webhook-timestamp` (epoch seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`, keyed with WEBHOOK_SECRET: `whsec_<base64>` or plain text).

SSRF guard: only https, and never to loopback, private, link-local (169.254.169.254, the instance
metadata endpoint), multicast, reserved or unspecified addresses — checked on the name's every
address at POST time and again before each delivery (DNS can change). ALLOW_LOCAL_WEBHOOKS (local
development only) also allows loopback, over http or https.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import socket
import time
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from imagegen.domain.callbacks import Resolver, check_callback_url, is_forbidden, resolve_host
from imagegen.domain.errors import InvalidRequest
from imagegen.domain.settings import webhook_signing_key

log = logging.getLogger(__name__)

DELIVERY_ATTEMPTS = 5
DELIVERY_TIMEOUT_SECONDS = 10.0
BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0)


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(webhook_signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class ForbiddenTarget(OSError):
    """A callback host resolved to an address we must never call."""


class _CheckedResolver(AbstractResolver):
    """The connection's own name resolution, checked like the URL was: a name that answers a public
    address to the check and a private one to the connection (DNS rebinding) is not connected."""

    def __init__(self, resolver: Resolver, *, allow_local: bool) -> None:
        self._resolver = resolver
        self._allow_local = allow_local

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        addresses = await self._resolver(host, port)
        if not addresses or any(is_forbidden(address, self._allow_local) for address in addresses):
            raise ForbiddenTarget(f"{host} resolves to an address that is not allowed")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


class WebhookSender:
    def __init__(
        self,
        secret: str,
        *,
        allow_local: bool,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        resolver: Resolver = resolve_host,
    ) -> None:
        self._secret = secret
        self._allow_local = allow_local
        self._session: aiohttp.ClientSession | None = None
        self._sleep = sleep
        self._resolver = resolver

    def _new_session(self) -> aiohttp.ClientSession:
        """Connections resolve through the same checked resolver as the URL check (IP literals are
        connected as they are: the check has already seen them)."""
        resolver = _CheckedResolver(self._resolver, allow_local=self._allow_local)
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False), trust_env=False
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, url: str, message_id: str, body: bytes) -> bool:
        """POST with bounded retries; True when the receiver answered 2xx."""
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            try:
                await check_callback_url(url, allow_local=self._allow_local, resolver=self._resolver)
            except InvalidRequest:
                log.warning("webhook %s not sent: the target is no longer allowed", message_id)
                return False
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(self._secret, message_id, timestamp, body),
            }
            try:
                if self._session is None or self._session.closed:
                    self._session = self._new_session()
                async with self._session.post(
                    url,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_SECONDS),
                ) as response:
                    status = response.status
            except aiohttp.ClientConnectorError as error:
                if isinstance(error.os_error, ForbiddenTarget):
                    log.warning(
                        "webhook %s not sent: the target now resolves to a forbidden address", message_id
                    )
                    return False
                status = 0
                log.info("webhook %s attempt %d failed: %s", message_id, attempt, error.__class__.__name__)
            except (aiohttp.ClientError, TimeoutError) as error:
                status = 0
                log.info("webhook %s attempt %d failed: %s", message_id, attempt, error.__class__.__name__)
            if 200 <= status < 300:
                log.info("webhook %s delivered (attempt %d)", message_id, attempt)
                return True
            if 300 <= status < 400 or (400 <= status < 500 and status not in (408, 429)):
                # A redirect (never followed: it would carry the signed body elsewhere) or a refusal
                # answers the same way next time.
                log.warning("webhook %s answered %d; not retried", message_id, status)
                return False
            if attempt < DELIVERY_ATTEMPTS:
                await self._sleep(BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)])
        log.warning("webhook %s gave up after %d attempts", message_id, DELIVERY_ATTEMPTS)
        return False
