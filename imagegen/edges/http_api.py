"""HTTP handlers: parse, call the service, and translate every outcome to HTTP in one place.

Handlers take and return azure.functions objects so they can be tested with real request objects.
The asynchronous request-reply pattern: 202 + Location + Retry-After while a job runs, which Logic
Apps and Power Automate follow on their own.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from imagegen.core.intake import build_submission, check_idempotency_key
from imagegen.core.service import ImageService
from imagegen.core.views import job_url, render_job
from imagegen.domain.callers import caller_from_headers
from imagegen.domain.errors import (
    ImageGenError,
    SettingsError,
    StorageError,
    Unauthenticated,
    http_status_for_code,
)
from imagegen.domain.jobs import Job, JobStatus
from imagegen.domain.settings import Settings
from imagegen.edges.context import HandlerContext
from imagegen.edges.http_body import parse_json_object

log = logging.getLogger(__name__)

POLL_AFTER_SECONDS = 2
JSON = "application/json"


def _owner(req: func.HttpRequest, settings: Settings) -> str | None:
    """The caller's principal id with Easy Auth (401 without one); None without Easy Auth, whatever
    principal headers the client sent (only the platform's are to be trusted)."""
    if not settings.easy_auth:
        return None
    caller = caller_from_headers(req.headers)
    if caller is None:
        raise Unauthenticated("App Service Authentication is on: sign in with Microsoft Entra ID")
    return caller.principal_id


@dataclass(frozen=True)
class Preference:
    """RFC 7240 `Prefer`: `respond-async` and/or `wait=N`."""

    respond_async: bool
    wait_seconds: float | None


_WAIT = re.compile(r"^wait\s*=\s*\"?(\d+(?:\.\d+)?)\"?$", re.IGNORECASE)


def parse_prefer(header: str | None) -> Preference:
    respond_async, wait = False, None
    for token in (header or "").split(","):
        token = token.split(";")[0].strip()
        if token.lower() == "respond-async":
            respond_async = True
        elif match := _WAIT.match(token):
            wait = float(match.group(1))
    return Preference(respond_async, wait)


# Every JSON answer: never sniffed as something else, never cached (job answers carry SAS links).
JSON_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def _json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body), status_code=status, headers={**JSON_HEADERS, **(headers or {})}, mimetype=JSON
    )


def _retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def error_response(error: ImageGenError) -> func.HttpResponse:
    """The one translation of an error that has no job (validation, lookup, storage) to HTTP."""
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = _retry_after(error.retry_after)
    return _json_response({"error": error.to_json()}, error.http_status, headers)


async def job_response(
    service: ImageService, job: Job, extra_headers: dict[str, str] | None = None
) -> func.HttpResponse:
    """A job's HTTP status follows its state: 200 done, 202 in progress, the error table when it failed."""
    base = service.settings.api_base
    body = render_job(await service.view(job), base)
    headers: dict[str, str] = dict(extra_headers or {})
    if job.status is JobStatus.SUCCEEDED:
        status = 200
    elif job.status is JobStatus.CANCELED:
        status = 409
    elif job.status is JobStatus.FAILED:
        error = job.error or {"code": "upstream_error"}
        status = http_status_for_code(str(error.get("code")))
        retry_after = error.get("retry_after")
        if isinstance(retry_after, int | float):
            headers["Retry-After"] = _retry_after(retry_after)
    else:
        status = 202
        headers["Location"] = job_url(base, job.id)
        headers["Retry-After"] = str(POLL_AFTER_SECONDS)
        if job.status is JobStatus.QUEUED and job.estimated_start is not None:
            # Waiting for a backend's budget: come back when it should have started.
            wait = (job.estimated_start - service.now()).total_seconds()
            headers["Retry-After"] = _retry_after(max(float(POLL_AFTER_SECONDS), wait))
    return _json_response(body, status, headers)


async def _guarded(action: Callable[[], Awaitable[func.HttpResponse]]) -> func.HttpResponse:
    try:
        return await action()
    except ImageGenError as error:
        return error_response(error)


async def create_image(req: func.HttpRequest, context: HandlerContext) -> func.HttpResponse:
    """POST /api/images: record the job, then answer 202 at once, or wait for it (Prefer)."""

    async def action() -> func.HttpResponse:
        service = context.service()
        document = parse_json_object(req.get_body(), req.headers.get("Content-Type"))
        owner = _owner(req, service.settings)
        submission = replace(
            await build_submission(
                document,
                rules=service.rules,
                settings=service.settings,
                idempotency_key=check_idempotency_key(req.headers.get("Idempotency-Key")),
            ),
            owner=owner,
        )
        preference = parse_prefer(req.headers.get("Prefer"))
        if preference.respond_async:
            job = await service.submit_async(submission)
            return await job_response(service, job, {"Preference-Applied": "respond-async"})
        limit = service.settings.max_wait_seconds
        wait = limit if preference.wait_seconds is None else min(preference.wait_seconds, limit)
        job = await service.submit_and_wait(submission, wait)
        applied = {"Preference-Applied": f"wait={wait:g}"} if preference.wait_seconds is not None else {}
        return await job_response(service, job, applied)

    return await _guarded(action)


async def get_image(req: func.HttpRequest, context: HandlerContext) -> func.HttpResponse:
    """GET /api/images/{id}: the job with fresh links on every read."""

    async def action() -> func.HttpResponse:
        service = context.service()
        job = await service.job_for(req.route_params.get("id", ""), _owner(req, service.settings))
        return await job_response(service, job)

    return await _guarded(action)


async def cancel_image(req: func.HttpRequest, context: HandlerContext) -> func.HttpResponse:
    """DELETE /api/images/{id}: cancel a job that has not finished (409 once it has)."""

    async def action() -> func.HttpResponse:
        service = context.service()
        job = await service.cancel(req.route_params.get("id", ""), _owner(req, service.settings))
        return _json_response(render_job(await service.view(job), service.settings.api_base), 200)

    return await _guarded(action)


def _lifecycle(settings: Settings) -> dict[str, object]:
    """The model's version, stage, retirement date and replacement; `retires_soon` within 60 days."""
    lifecycle = settings.lifecycle
    today = datetime.now(UTC).date()
    return {**lifecycle.to_json(), "retires_soon": lifecycle.retires_soon(today)}


async def health(req: func.HttpRequest, context: HandlerContext) -> func.HttpResponse:
    """GET /api/health (anonymous): configuration and storage reachability, nothing secret."""
    try:
        settings = context.settings()
    except SettingsError as error:
        log.error("health: %s", error)
        return _json_response({"status": "unhealthy", "checks": {"settings": str(error)}}, 503)
    checks: dict[str, str] = {"settings": "ok"}
    backends: list[dict[str, object]] = [backend.describe() for backend in settings.backends]
    try:
        await context.service().check_storage()
        checks["storage"] = "ok"
        backends = list(await context.service().backends_health())
    except StorageError as error:
        checks.setdefault("storage", error.message)
    healthy = all(value == "ok" for value in checks.values())
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "checks": checks,
        "api_style": settings.api_style.value,
        "model": settings.model,
        "model_lifecycle": _lifecycle(settings),
        "auth": "api-key" if settings.api_key else "entra-id",
        "webhooks": "on" if settings.webhook_secret else "off",
        "pacing": "on" if settings.pacing else "off",
        "job_deadline_seconds": settings.job_deadline_seconds,
        "backends": backends,
    }
    return _json_response(body, 200 if healthy else 503)
