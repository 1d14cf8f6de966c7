"""One HTTP transport setup for the async Azure SDK clients.

azure-core's aiohttp transport builds a new SSLContext for every request when `connection_verify`
is a CA path; aiohttp then cannot reuse pooled connections (the context is part of the pool key),
so every call pays a TLS handshake. Building the context once avoids that.
"""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import Mapping
from typing import Any, TypedDict
from urllib.parse import parse_qs, urlsplit

import aiohttp
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.pipeline.transport import AioHttpTransport
from azure.core.rest import AsyncHttpResponse, HttpRequest

# Idle pooled connections are dropped before servers drop them (Azurite after 5 s): reusing one the
# server already closed costs a failed request and a retry.
KEEPALIVE_SECONDS = 4.0


# Per-call options for health probes: one attempt with short timeouts, so /api/health answers within
# a load balancer's probe timeout even when storage is down (the clients' own retries back off for
# many seconds).
class ProbeCallOptions(TypedDict):
    retry_total: int
    connection_timeout: int
    read_timeout: int


PROBE_CALL_OPTIONS = ProbeCallOptions(retry_total=0, connection_timeout=3, read_timeout=5)


class _OneContextTransport(AioHttpTransport):  # type: ignore[misc]  # azure-core ships it untyped
    """Opens its aiohttp session (inside the running loop) with one SSL context for every call."""

    def __init__(self, context: ssl.SSLContext, *, connection_timeout: int, read_timeout: int) -> None:
        super().__init__(session_owner=True, connection_timeout=connection_timeout, read_timeout=read_timeout)
        self._context = context

    async def open(self) -> None:
        if getattr(self, "session", None) is None and not self._has_been_opened:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._context, keepalive_timeout=KEEPALIVE_SECONDS),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
            )
        await super().open()


# The storage clients' retries: few and short, so a job fails over to its queue message instead of
# waiting out a long outage (both ExponentialRetry classes take these).
class StorageRetryOptions(TypedDict):
    initial_backoff: int
    increment_base: int
    retry_total: int
    random_jitter_range: int


STORAGE_RETRY = StorageRetryOptions(initial_backoff=1, increment_base=2, retry_total=3, random_jitter_range=1)
CONNECTION_TIMEOUT_SECONDS = 10


def connection_options(connection_verify: str | None, *, read_timeout: int) -> dict[str, Any]:
    """Timeouts for an SDK client: on its default transport, or on ours when a CA file is given."""
    if connection_verify is None:
        return {"connection_timeout": CONNECTION_TIMEOUT_SECONDS, "read_timeout": read_timeout}
    transport = aiohttp_transport(
        connection_verify, connection_timeout=CONNECTION_TIMEOUT_SECONDS, read_timeout=read_timeout
    )
    return {"transport": transport}


def aiohttp_transport(ca_file: str, *, connection_timeout: int, read_timeout: int) -> AioHttpTransport:
    """A transport whose connections trust `ca_file` and are reused across calls."""
    context = ssl.create_default_context(cafile=ca_file)
    return _OneContextTransport(context, connection_timeout=connection_timeout, read_timeout=read_timeout)


class CallCounter(SansIOHTTPPolicy[HttpRequest, AsyncHttpResponse]):
    """Counts the storage calls a client makes, once per call, by kind: `comp` of the query (e.g.
    `userdelegationkey`), else the HTTP method. Benchmarks read it; nothing counts by hand.

    The storage SDKs build their pipelines without a per-call slot (`per_call_policies` is ignored),
    so the counter runs in the retry policy's place, before its retries (`counted_retry`)."""

    def __init__(self) -> None:
        super().__init__()
        self.by_kind: Counter[str] = Counter()

    @property
    def calls(self) -> int:
        return sum(self.by_kind.values())

    def on_request(self, request: PipelineRequest[HttpRequest]) -> None:
        query = parse_qs(urlsplit(request.http_request.url).query)
        self.by_kind[query.get("comp", [request.http_request.method])[0]] += 1


def counted_retry(retry_type: Any, counter: CallCounter | None, options: Mapping[str, Any]) -> Any:
    """The storage client's retry policy; with a counter, one that counts each call once, then retries."""
    if counter is None:
        return retry_type(**options)
    counting = counter

    class CountedRetry(retry_type):  # type: ignore[misc]  # the SDKs' retry classes are untyped
        async def send(self, request: PipelineRequest[HttpRequest]) -> Any:
            counting.on_request(request)
            return await super().send(request)

    return CountedRetry(**options)
