"""The HTTP side of the host: what Kestrel and the host check before a function runs (Host, routes,
function keys, FUNCTIONS_REQUEST_BODY_SIZE_LIMIT), the request as an `http` datum, the response from
the encoded return value, one log line. Nothing a caller sends reaches the log but the path."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import time

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11
from multidict import CIMultiDict

from devtools.devhost.auth import FunctionKeys, presented_key
from devtools.devhost.bindings import (
    HttpAnswer,
    http_answer,
    http_request_datum,
    join_query,
    join_request_headers,
)
from devtools.devhost.config import DEFAULT_REQUEST_BODY_LIMIT
from devtools.devhost.easyauth import EasyAuth
from devtools.devhost.functions import HttpFunction, InvocationError
from devtools.devhost.logsafety import server_log
from devtools.devhost.queues import QueueOutputs
from devtools.devhost.routing import RouteTable
from devtools.devhost.tracecontext import invocation_trace_context

log = logging.getLogger("devhost.http")
# aiohttp's messages and the dev host's own errors: logsafety scrubs every record of this logger.

_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection"}
# RFC 3986 host [ ":" port ]: an IP literal, or a reg-name of unreserved, pct-encoded and sub-delims.
_AUTHORITY = re.compile(r"(?P<host>\[[^\[\]]*\]|[^:\[\]]*)(?::(?P<port>[0-9]*))?")
_REG_NAME = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def is_valid_host(value: str) -> bool:
    """A Host value Kestrel accepts and an http URL can carry: an RFC 3986 host, not empty (RFC 9110
    4.2.1), ASCII only, then an optional port up to 65535."""
    match = _AUTHORITY.fullmatch(value)
    if match is None:
        return False
    host, port = match["host"], match["port"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
    elif _REG_NAME.fullmatch(host) is None:
        return False
    return not port or int(port) <= 65535


def has_acceptable_host(request: web.BaseRequest) -> bool:
    """Kestrel's rules (RFC 9112 3.2): HTTP/1.1 needs exactly one Host, and any Host must be valid."""
    hosts = request.headers.getall(hdrs.HOST, [])
    if len(hosts) > 1:
        return False
    if not hosts:
        return request.version < HttpVersion11
    return is_valid_host(hosts[0])


def to_aiohttp_response(answer: HttpAnswer) -> web.Response:
    """The encoded answer → the aiohttp response (hop-by-hop headers are aiohttp's to set)."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in answer.headers:
        if name.lower() not in _HOP_BY_HOP:
            headers.add(name, value)
    return web.Response(status=answer.status, body=answer.body, headers=headers)


async def _expect_nothing_yet(request: web.Request) -> None:
    """aiohttp's default answers `100 Continue` as soon as the route matches; Kestrel only once the
    body is read, so a refused request (404, 401, 413) never makes the client send it. Other
    expectations are ignored, as by Kestrel."""


async def _send_continue(request: web.BaseRequest) -> None:
    if request.version >= HttpVersion11 and request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
        await request.writer.write(_CONTINUE)
        request.writer.output_size = 0  # an interim answer: the real one is still to come


async def _answer_and_close(request: web.BaseRequest, status: int) -> web.StreamResponse:
    """`status` with an empty body and `Connection: close`, then the connection ends: whatever the
    client still sends (the rest of a body) is never read. Kestrel closes after such a rejection too."""
    response = web.Response(status=status)
    response.force_close()
    with contextlib.suppress(ConnectionError):  # the client may be gone already
        await response.prepare(request)
        await response.write_eof()
    request.protocol.force_close()  # the answer is written; the transport flushes it, then closes
    return response


class HttpHost:
    """One aiohttp handler for every path: check Host, resolve, authorise, read, invoke, answer."""

    def __init__(
        self,
        functions: list[HttpFunction],
        route_prefix: str,
        keys: FunctionKeys,
        outputs: QueueOutputs,
        *,
        max_body_bytes: int = DEFAULT_REQUEST_BODY_LIMIT,
        easy_auth: EasyAuth | None = None,
    ) -> None:
        self.routes: RouteTable[HttpFunction] = RouteTable(route_prefix)
        for function in functions:
            self.routes.add(function.route, function.methods, function)
        self._keys = keys
        self._outputs = outputs
        self.max_body_bytes = max_body_bytes
        self._easy_auth = easy_auth  # App Service Authentication in front, as the platform applies it

    def application(self) -> web.Application:
        # The handler reads the body itself (at most the limit); aiohttp's own reads stop there too.
        app = web.Application(client_max_size=max(self.max_body_bytes, 1))
        # Every path, one with an encoded newline too (`.` would leave that to aiohttp's own 404).
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.handle, expect_handler=_expect_nothing_yet)
        return app

    def runner(self) -> web.AppRunner:
        """The server as `python -m devtools.devhost` runs it: no access log (it prints query strings),
        aiohttp's own messages through the scrubbing logger (they can quote the request), and bodies
        as sent (the host does not decompress a `Content-Encoding: gzip` body; aiohttp would)."""
        return web.AppRunner(
            self.application(),
            access_log=None,
            handle_signals=False,
            logger=server_log,
            auto_decompress=False,
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await self._answer(request)
            status = response.status
            return response
        except Exception:  # noqa: BLE001 - the dev host's boundary: logged with its stack (server_log), a bare 500
            # The dev host's own fault. Its message may quote the request: the scrubbing server log
            # keeps the type and the stack, enough to find it.
            server_log.exception("dev host error on %s %s", request.method, request.rel_url.raw_path)
            return web.Response(status=500)
        finally:
            # Path only, as sent (undecoded: no `%0A` makes a line of its own): the query string may
            # carry `code` or a SAS. No headers, no bodies.
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.info("http %s %s %d %.1fms", request.method, request.rel_url.raw_path, status, elapsed_ms)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if not has_acceptable_host(request):
            return await _answer_and_close(request, 400)
        resolved = self.routes.resolve(request.method, request.rel_url.raw_path)
        if resolved is None:
            # Unknown path, and a known path with a method it does not allow: the host says 404.
            return web.Response(status=404)
        function, route_values = resolved
        sent_headers = list(request.headers.items())
        if self._easy_auth is not None:
            passed = self._easy_auth.apply(request.rel_url.path, sent_headers)
            if passed is None:
                return web.Response(status=401, headers={"WWW-Authenticate": 'Bearer realm="easy-auth"'})
            sent_headers = passed
        if not self._keys.allows(function.auth_level, presented_key(request.headers, request.query)):
            return web.Response(status=401)
        try:
            body = await self._read_body(request)
        except (web.RequestPayloadError, ConnectionError):
            return await _answer_and_close(request, 400)  # a broken chunk, or the client went away
        if body is None:
            return await _answer_and_close(request, 413)
        headers = join_request_headers(sent_headers)
        request_datum = http_request_datum(
            method=request.method,
            url=str(request.url),
            headers=headers,
            query=join_query(request.rel_url.query.items()),
            route_params=route_values,
            body=body,
        )
        try:
            result = await function.invoker.invoke(
                request_datum, {}, trace_context=invocation_trace_context(headers)
            )
            if result.return_value is None:  # indexing guarantees the http $return binding
                raise InvocationError(f"function {function.name!r} produced no HTTP response")
            response = to_aiohttp_response(http_answer(result.return_value))
            await self._outputs.write(result.queue_outputs)
            return response
        except Exception:
            # The host's boundary: the caller gets a bare 500, the traceback goes to the log only.
            log.exception("function %s failed", function.name)
            return web.Response(status=500)

    async def _read_body(self, request: web.BaseRequest) -> bytes | None:
        """The body, or None when it is over the limit. A declared Content-Length over it is refused
        before anything is read; otherwise at most limit + 1 bytes are read (the one byte that proves
        the body too large), never the rest. `100 Continue` goes out only now, as from Kestrel."""
        limit = self.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return None
        await _send_continue(request)
        body = bytearray()
        while len(body) <= limit:
            chunk = await request.content.read(limit + 1 - len(body))
            if not chunk:
                return bytes(body)
            body += chunk
        return None
