"""One exception hierarchy: every failure of a call is an ApiError, one subclass per error code.

The server's codes (its `error.code`) map to classes through SERVER_ERRORS_BY_CODE (`unauthorized` is
the app's with App Service Authentication; the Functions host's own 401 for a wrong key has no body
and maps to the same class); a few codes are the client's own: `client_timeout`, `connection_failed`,
and `api_error` for an answer this client cannot read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from imagegen_client.models import Job


class ApiError(Exception):
    """The API answered with an error (its `error.code`), or could not be reached."""

    code: ClassVar[str] = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
        job: Job | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.details: dict[str, Any] = dict(details or {})
        self.retry_after = retry_after
        self.job = job

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


# --- the server's codes ---------------------------------------------------------------------


class InvalidRequestError(ApiError):
    """Bad JSON, an unknown field or a value out of range for the model; `details["field"]` names it."""

    code = "invalid_request"


class NotFoundError(ApiError):
    code = "not_found"


class ConflictError(ApiError):
    """The operation does not fit the job's state (e.g. canceling a job that already ended)."""

    code = "conflict"


class JobCanceledError(ApiError):
    code = "canceled"


class IdempotencyKeyReusedError(ApiError):
    """The same Idempotency-Key came with a different body."""

    code = "idempotency_key_reused"


class ContentFilteredError(ApiError):
    """The safety system refused the prompt or an output image; categories in `details`."""

    code = "content_filtered"


class CallerLimitReachedError(ApiError):
    """This caller used its images for today (the app's CALLER_DAILY_IMAGES); `retry_after` says when
    the day ends."""

    code = "caller_limit_reached"


class ThrottledError(ApiError):
    """Azure OpenAI was still busy after the service's retries; `retry_after` says when to try again."""

    code = "upstream_throttled"


class UpstreamError(ApiError):
    code = "upstream_error"


class UpstreamTimeoutError(ApiError):
    code = "upstream_timeout"


class StorageError(ApiError):
    code = "storage_error"


class ProcessingFailedError(ApiError):
    """The job's queue message failed every try; the job ended with this reason."""

    code = "processing_failed"


class InternalServerError(ApiError):
    code = "internal_error"


# --- the client's own codes -----------------------------------------------------------------


class AuthenticationError(ApiError):
    """401: the function key is missing or wrong."""

    code = "unauthorized"


class WaitTimeoutError(ApiError):
    """The job did not end within the client's own timeout (it may still end later); see `job`."""

    code = "client_timeout"


class ConnectionFailedError(ApiError):
    """The API (or the image's link) could not be reached, after the client's transport retries."""

    code = "connection_failed"


SERVER_ERRORS_BY_CODE: dict[str, type[ApiError]] = {
    cls.code: cls
    for cls in (
        InvalidRequestError,
        AuthenticationError,
        NotFoundError,
        ConflictError,
        JobCanceledError,
        IdempotencyKeyReusedError,
        ContentFilteredError,
        ThrottledError,
        CallerLimitReachedError,
        UpstreamError,
        UpstreamTimeoutError,
        StorageError,
        ProcessingFailedError,
        InternalServerError,
    )
}
