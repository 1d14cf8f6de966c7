"""The `/_emulator/` admin API: config, faults, reset, request log, stats (no auth, local only)."""

from __future__ import annotations

import json

from aiohttp import web

from devtools.aoai_emulator.faults import FaultSpecError, parse_fault
from devtools.aoai_emulator.state import ConfigError, EmulatorState

ENDPOINTS = {
    "GET /_emulator/config": "current configuration",
    "POST /_emulator/config": "partial update of the configuration",
    "GET /_emulator/faults": "faults still pending",
    "POST /_emulator/faults": "script faults: one object, a list, or {'faults': [...]}",
    "DELETE /_emulator/faults": "drop pending faults",
    "POST /_emulator/reset": "clear operations, results, quota, faults, log and counters ({'config': true} also restores the start-up config)",
    "GET /_emulator/requests": "the request log (?kind=&dialect=&limit=)",
    "GET /_emulator/stats": "counters",
    "GET /_emulator/results/{id}/{index}.{ext}": "result image downloads (what result URLs point at)",
}


def _bad(message: str) -> web.Response:
    return web.json_response({"error": {"code": "BadRequest", "message": message}}, status=400)


async def _body(request: web.Request) -> object:
    raw = await request.read()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise web.HTTPBadRequest(text=f"invalid JSON: {error}") from None


def add_admin_routes(app: web.Application, state: EmulatorState) -> None:
    async def index(_: web.Request) -> web.Response:
        return web.json_response({"endpoints": ENDPOINTS})

    async def get_config(_: web.Request) -> web.Response:
        return web.json_response(state.config.to_json())

    async def post_config(request: web.Request) -> web.Response:
        try:
            state.config.update(await _body(request))
        except ConfigError as error:
            return _bad(str(error))
        return web.json_response(state.config.to_json())

    async def get_faults(_: web.Request) -> web.Response:
        return web.json_response({"faults": state.faults.pending()})

    async def post_faults(request: web.Request) -> web.Response:
        body = await _body(request)
        specs = body.get("faults") if isinstance(body, dict) and "faults" in body else body
        items = specs if isinstance(specs, list) else [specs]
        try:
            parsed = [parse_fault(spec) for spec in items]
        except FaultSpecError as error:
            return _bad(str(error))
        for fault in parsed:
            state.faults.add(fault)
        return web.json_response({"faults": state.faults.pending()})

    async def delete_faults(_: web.Request) -> web.Response:
        state.faults.clear()
        return web.json_response({"faults": []})

    async def reset(request: web.Request) -> web.Response:
        body = await _body(request)
        restore = bool(body.get("config", False)) if isinstance(body, dict) else False
        state.reset(config=restore)
        return web.json_response({"reset": True, "config": state.config.to_json()})

    async def requests_log(request: web.Request) -> web.Response:
        entries = list(state.log)
        for name in ("kind", "dialect", "deployment"):
            wanted = request.query.get(name)
            if wanted:
                entries = [e for e in entries if e.get(name) == wanted]
        limit = request.query.get("limit")
        if limit and limit.isdigit():
            entries = entries[-int(limit) :]
        return web.json_response({"requests": entries})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(state.stats())

    app.router.add_get("/_emulator", index)
    app.router.add_get("/_emulator/", index)
    app.router.add_get("/_emulator/config", get_config)
    app.router.add_post("/_emulator/config", post_config)
    app.router.add_get("/_emulator/faults", get_faults)
    app.router.add_post("/_emulator/faults", post_faults)
    app.router.add_delete("/_emulator/faults", delete_faults)
    app.router.add_post("/_emulator/reset", reset)
    app.router.add_get("/_emulator/requests", requests_log)
    app.router.add_get("/_emulator/stats", stats)
