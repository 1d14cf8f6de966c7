"""HTTP handlers: parse, call the service, and translate every outcome to HTTP in one place.

Handlers take and return azure.functions objects so they can be tested with real request objects.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func

from imagegen.errors import ImageGenError, SettingsError, StorageError, http_status_for_code
from imagegen.jobs import Job, JobStatus
from imagegen.models import parse_image_request
from imagegen.service import ImageService, JobView
from imagegen.settings import get_settings

log = logging.getLogger(__name__)

ROUTE_PREFIX = "/api"
POLL_AFTER_SECONDS = 2
JSON = "application/json"

ServiceFactory = Callable[[], ImageService]


def _origin(req: func.HttpRequest) -> str:
    parts = urlsplit(req.url)
    return f"{parts.scheme}://{parts.netloc}"


def job_url(req: func.HttpRequest, job_id: str) -> str:
    return f"{_origin(req)}{ROUTE_PREFIX}/images/{job_id}"


def render_job(view: JobView, req: func.HttpRequest) -> dict[str, Any]:
    """The job JSON of DESIGN.md (no internal fields: no operation URL, no secrets)."""
    job = view.job
    record = job.to_record()
    body: dict[str, Any] = {
        "id": job.id,
        "status": job.status.value,
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
        "request": record["request"],
        "images": [
            {
                "url": link.url,
                "expires_at": link.expires_at.isoformat().replace("+00:00", "Z"),
                "content_type": image.content_type,
                "width": image.width,
                "height": image.height,
                "bytes": image.bytes,
                "blob": image.blob,
                **({"revised_prompt": image.revised_prompt} if image.revised_prompt else {}),
            }
            for image, link in zip(job.images, view.links, strict=True)
        ],
        "urls": {"get": job_url(req, job.id)},
    }
    if "completed_at" in record:
        body["completed_at"] = record["completed_at"]
    if job.error is not None:
        body["error"] = {k: v for k, v in job.error.items() if k in ("code", "message", "details")}
    return body


def _json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, headers=headers, mimetype=JSON)


def error_response(error: ImageGenError) -> func.HttpResponse:
    """The one translation of an error that has no job (validation, lookup, storage) to HTTP."""
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return _json_response({"error": error.to_json()}, error.http_status, headers)


def job_response(view: JobView, req: func.HttpRequest) -> func.HttpResponse:
    """A job's HTTP status follows its state: 200 done, 202 in progress, the error table when failed."""
    job = view.job
    body = render_job(view, req)
    headers: dict[str, str] = {}
    if job.status is JobStatus.SUCCEEDED:
        status = 200
    elif job.status is JobStatus.CANCELED:
        status = 409
        body.setdefault("error", {"code": "canceled", "message": "the job was canceled"})
    elif job.status is JobStatus.FAILED:
        error = job.error or {"code": "upstream_error"}
        status = http_status_for_code(str(error.get("code")))
        retry_after = error.get("retry_after")
        if isinstance(retry_after, int | float):
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    else:
        status = 202
        headers["Location"] = job_url(req, job.id)
        headers["Retry-After"] = str(POLL_AFTER_SECONDS)
    return _json_response(body, status, headers)


async def _guarded(action: Callable[[], Awaitable[func.HttpResponse]]) -> func.HttpResponse:
    try:
        return await action()
    except ImageGenError as error:
        return error_response(error)


async def create_image(req: func.HttpRequest, service_factory: ServiceFactory) -> func.HttpResponse:
    """POST /api/images: run the job inline and answer with it (or the error table's status)."""

    async def action() -> func.HttpResponse:
        service = service_factory()
        request = parse_image_request(req.get_body(), req.headers.get("Content-Type"), service.rules)
        job: Job = await service.run_inline(request)
        return job_response(await service.view(job), req)

    return await _guarded(action)


async def get_image(req: func.HttpRequest, service_factory: ServiceFactory) -> func.HttpResponse:
    """GET /api/images/{id}: the job with fresh links on every read."""

    async def action() -> func.HttpResponse:
        service = service_factory()
        job = await service.jobs.get(req.route_params.get("id", ""))
        return job_response(await service.view(job), req)

    return await _guarded(action)


async def health(req: func.HttpRequest, service_factory: ServiceFactory) -> func.HttpResponse:
    """GET /api/health (anonymous): configuration and storage reachability, nothing secret."""
    try:
        settings = get_settings()
    except SettingsError as error:
        log.error("health: %s", error)
        return _json_response({"status": "unhealthy", "checks": {"settings": str(error)}}, 503)
    checks: dict[str, str] = {"settings": "ok"}
    try:
        await service_factory().check_storage()
        checks["storage"] = "ok"
    except StorageError as error:
        checks["storage"] = error.message
    healthy = all(value == "ok" for value in checks.values())
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "checks": checks,
        "api_style": settings.api_style.value,
        "model": settings.model,
        "auth": "api-key" if settings.api_key else "entra-id",
    }
    return _json_response(body, 200 if healthy else 503)
