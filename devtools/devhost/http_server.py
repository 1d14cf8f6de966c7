"""The HTTP side of the host: routes, function keys, request/response conversion, one log line."""

from __future__ import annotations

import logging
import time
from typing import Any

import azure.functions as func
from aiohttp import web
from multidict import CIMultiDict

from devtools.devhost.auth import FunctionKeys, presented_key
from devtools.devhost.functions import HttpFunction
from devtools.devhost.queues import QueueOutputs
from devtools.devhost.routing import RouteTable

log = logging.getLogger("devhost.http")

MAX_REQUEST_BODY_BYTES = 100 * 1024 * 1024  # the host's default limit
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection"}


def _request_headers(request: web.BaseRequest) -> dict[str, str]:
    """Headers for func.HttpRequest: repeated headers joined with ', ' as ASP.NET Core does."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def to_aiohttp_response(result: Any) -> web.Response:
    """A function's return value → the HTTP answer (func.HttpResponse, str, or None → 204)."""
    if result is None:
        return web.Response(status=204)
    if isinstance(result, str):
        return web.Response(
            status=200, body=result.encode("utf-8"), content_type="text/plain", charset="utf-8"
        )
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"an HTTP function returned {type(result).__name__}, not func.HttpResponse")
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in result.headers.items():
        if name.lower() not in _HOP_BY_HOP:
            headers.add(name, value)
    if "content-type" not in headers:
        mimetype = result.mimetype or "text/plain"
        headers["Content-Type"] = (
            f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
        )
    return web.Response(status=result.status_code, body=result.get_body() or b"", headers=headers)


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
        function_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=_request_headers(request),
            params={name: value for name, value in request.query.items()},
            route_params=route_values,
            body=body,
        )
        try:
            result = await function.invoker.invoke(function_request)
            await self._outputs.write(result.queue_outputs)
            return to_aiohttp_response(result.return_value)
        except Exception:
            # The host's boundary: the caller gets a bare 500, the traceback goes to the log only.
            log.exception("function %s failed", function.name)
            return web.Response(status=500)
