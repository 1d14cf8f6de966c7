"""The HTTP side of the host: routes, function keys, the request as an `http` datum, the response
from the encoded return value, one log line."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from multidict import CIMultiDict

from devtools.devhost.auth import FunctionKeys, presented_key
from devtools.devhost.bindings import (
    HttpAnswer,
    http_answer,
    http_request_datum,
    join_query,
    join_request_headers,
)
from devtools.devhost.functions import HttpFunction, InvocationError
from devtools.devhost.queues import QueueOutputs
from devtools.devhost.routing import RouteTable
from devtools.devhost.tracecontext import invocation_trace_context

log = logging.getLogger("devhost.http")

MAX_REQUEST_BODY_BYTES = 100 * 1024 * 1024  # the host's default limit
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection"}


def to_aiohttp_response(answer: HttpAnswer) -> web.Response:
    """The encoded answer → the aiohttp response (hop-by-hop headers are aiohttp's to set)."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in answer.headers:
        if name.lower() not in _HOP_BY_HOP:
            headers.add(name, value)
    return web.Response(status=answer.status, body=answer.body, headers=headers)


class HttpHost:
    """One aiohttp handler for every path: resolve, authorise, read, invoke, answer."""

    def __init__(
        self, functions: list[HttpFunction], route_prefix: str, keys: FunctionKeys, outputs: QueueOutputs
    ) -> None:
        self.routes: RouteTable[HttpFunction] = RouteTable(route_prefix)
        for function in functions:
            self.routes.add(function.route, function.methods, function)
        self._keys = keys
        self._outputs = outputs

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await self._answer(request)
            status = response.status
            return response
        finally:
            # Path only: the query string may carry `code` or a SAS. No headers, no bodies.
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.info("http %s %s %d %.1fms", request.method, request.rel_url.path, status, elapsed_ms)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        resolved = self.routes.resolve(request.method, request.rel_url.raw_path)
        if resolved is None:
            # Unknown path, and a known path with a method it does not allow: the host says 404.
            return web.Response(status=404)
        function, route_values = resolved
        if not self._keys.allows(function.auth_level, presented_key(request.headers, request.query)):
            return web.Response(status=401)
        if request.content_length is not None and request.content_length > MAX_REQUEST_BODY_BYTES:
            return web.Response(status=413)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413)
        headers = join_request_headers(request.headers.items())
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
