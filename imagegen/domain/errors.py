"""One error hierarchy for the whole app, translated to HTTP once (imagegen.edges.http_api).

Each error knows its public `code` (the README's error table) and HTTP status. Messages are safe to
show to a caller: they never contain a prompt, token, key or SAS signature.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SettingsError(Exception):
    """A missing or malformed setting; raised at start-up, names the setting."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"setting {name} {problem}")
        self.name = name
        self.problem = problem


class ImageGenError(Exception):
    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500

    def __init__(
        self, message: str, *, details: dict[str, Any] | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidRequest(ImageGenError):
    """Bad JSON, an unknown field, or a value out of range for the configured model."""

    code = "invalid_request"
    http_status = 400

    def __init__(
        self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        merged = dict(details or {})
        if field is not None:
            merged.setdefault("field", field)
        super().__init__(message, details=merged or None)
        self.field = field


class IdempotencyKeyReused(ImageGenError):
    code = "idempotency_key_reused"
    http_status = 422


class ContentFiltered(ImageGenError):
    """Azure OpenAI's safety system refused the prompt or an output image; categories in details."""

    code = "content_filtered"
    http_status = 422


class JobCanceled(ImageGenError):
    code = "canceled"
    http_status = 409


class JobNotFound(ImageGenError):
    code = "not_found"
    http_status = 404


class JobConflict(ImageGenError):
    """The operation does not fit the job's state (e.g. canceling a finished job)."""

    code = "conflict"
    http_status = 409


class UpstreamThrottled(ImageGenError):
    """Azure OpenAI still answered 429 after our retries."""

    code = "upstream_throttled"
    http_status = 503


class CallerLimitReached(ImageGenError):
    """The caller used its images for today (CALLER_DAILY_IMAGES); Retry-After says when the day ends."""

    code = "caller_limit_reached"
    http_status = 429


class UpstreamError(ImageGenError):
    """Azure OpenAI failed (5xx, a broken answer or download, a refused credential)."""

    code = "upstream_error"
    http_status = 502


class UpstreamUnavailable(UpstreamError):
    """A backend answered 5xx or could not be reached: nothing was drawn, another backend may try."""


class UpstreamTimeout(ImageGenError):
    code = "upstream_timeout"
    http_status = 504


class StorageError(ImageGenError):
    """Blob or Queue storage unavailable after retries."""

    code = "storage_error"
    http_status = 503


class Unauthenticated(ImageGenError):
    """App Service Authentication is on and the request carries no caller the platform vouched for."""

    code = "unauthorized"
    http_status = 401


class ProcessingFailed(ImageGenError):
    """The job's queue message failed every try and was poisoned; the job ends with this reason."""

    code = "processing_failed"
    http_status = 500


ERROR_TYPES_BY_CODE: dict[str, type[ImageGenError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        IdempotencyKeyReused,
        ContentFiltered,
        JobCanceled,
        JobNotFound,
        JobConflict,
        UpstreamThrottled,
        CallerLimitReached,
        UpstreamError,
        UpstreamTimeout,
        StorageError,
        ProcessingFailed,
        Unauthenticated,
        ImageGenError,
    )
}


def http_status_for_code(code: str) -> int:
    """The HTTP status of a stored job error (jobs keep the code, not the exception)."""
    return ERROR_TYPES_BY_CODE.get(code, ImageGenError).http_status
