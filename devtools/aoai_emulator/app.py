"""aiohttp application: routes, Azure's common response headers, errors, faults that break the wire, logging."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from devtools.aoai_emulator.admin import add_admin_routes
from devtools.aoai_emulator.errors import ApiError, resource_not_found
from devtools.aoai_emulator.handlers import ENTRY_KEY, TRUNCATE_KEY, Handlers, ResetConnection
from devtools.aoai_emulator.state import Config, EmulatorState

log = logging.getLogger("aoai_emulator")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATE_KEY = web.AppKey("aoai_state", EmulatorState)


def _new_entry(request: web.Request, request_id: str) -> dict[str, Any]:
    return {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "method": request.method,
        "path": request.path,
        "dialect": None,
        "kind": None,
        "status": None,
        "deployment": None,
        "model": None,
        "n": None,
        "paid": False,
        "images": 0,
        "operation_id": request.headers.get("Operation-Id"),
        "operation": None,
        "auth": "none",
        "fault": None,
        "request_id": request_id,
        "duration_ms": None,
    }


def _is_api_call(request: web.Request) -> bool:
    return not request.path.startswith("/_emulator") or request.path.startswith("/_emulator/results/")


async def _truncate(request: web.Request, response: web.Response) -> web.StreamResponse:
    """Send the headers with the full Content-Length, half of the body, then close the connection."""
    body = response.body
    payload = body if isinstance(body, bytes) else b""
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(payload)
    await stream.prepare(request)
    await stream.write(payload[: len(payload) // 2])
    if request.transport is not None:
        request.transport.close()  # close() flushes what was written; abort() would drop it
    return stream


def create_app(config: Config | None = None, *, api_key: str | None = None) -> web.Application:
    state = EmulatorState(config=config or Config(), api_key=api_key)
    handlers = Handlers(state)

    @web.middleware
    async def envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        entry = _new_entry(request, request_id)
        request[ENTRY_KEY] = entry
        response: web.StreamResponse
        try:
            response = await handler(request)
        except ApiError as error:
            response = error.response()
        except ResetConnection:
            entry["status"] = "reset"
            _record(state, entry, started)
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client: the connection is gone
        except asyncio.CancelledError:  # the client went away (e.g. timed out during a hang)
            entry["status"] = "client-closed"
            if _is_api_call(request):
                _record(state, entry, started)
            raise
        except web.HTTPNotFound:
            response = resource_not_found().response()
        except web.HTTPMethodNotAllowed:
            response = ApiError(
                405, "405", f"The HTTP method {request.method} is not supported here."
            ).response()
        response.headers["apim-request-id"] = request_id
        response.headers["x-request-id"] = request_id
        response.headers["x-ms-region"] = state.config.region
        client_request_id = request.headers.get("x-ms-client-request-id")
        if client_request_id:
            response.headers["x-ms-client-request-id"] = client_request_id
        entry["status"] = response.status
        if _is_api_call(request):
            _record(state, entry, started)
        if request.get(TRUNCATE_KEY) and isinstance(response, web.Response):
            return await _truncate(request, response)
        return response

    app = web.Application(middlewares=[envelope], client_max_size=4 * 1024 * 1024)
    app[STATE_KEY] = state
    app.router.add_post("/openai/deployments/{deployment}/images/generations", handlers.deployments_generate)
    app.router.add_post("/openai/v1/images/generations", handlers.v1_generate)
    app.router.add_post("/openai/images/generations:submit", handlers.legacy_submit)
    app.router.add_get("/openai/operations/images/{operation_id}", handlers.legacy_poll)
    app.router.add_delete("/openai/operations/images/{operation_id}", handlers.legacy_delete)
    app.router.add_get(r"/_emulator/results/{result_id}/{index:\d+}.{ext}", handlers.download)
    add_admin_routes(app, state)
    return app


def _record(state: EmulatorState, entry: dict[str, Any], started: float) -> None:
    entry["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    state.counters["requests"] += 1
    state.log.append(entry)
    log.info(
        "%s %s kind=%s dialect=%s status=%s auth=%s deployment=%s n=%s paid=%s fault=%s %.1fms",
        entry["method"],
        entry["path"],
        entry["kind"],
        entry["dialect"],
        entry["status"],
        entry["auth"],
        entry["deployment"],
        entry["n"],
        entry["paid"],
        entry["fault"],
        entry["duration_ms"],
    )
