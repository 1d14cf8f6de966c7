"""A typed Python client for the image API (on `requests`): generate, get, cancel, download.

    client = ImageGenClient("https://<app>.azurewebsites.net/api", function_key="…")
    job = client.generate("a painting of a dog", n=2)
    client.download(job.images[0], "dog.png")

`generate` follows the API's asynchronous request-reply pattern (202 + Location + Retry-After) and
sends an Idempotency-Key, so a POST repeated after a dropped connection is the same job, never a
second paid generation. Failures raise one ApiError subclass per error code of the API.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

DEFAULT_TIMEOUT_SECONDS = 600.0
REQUEST_TIMEOUT_SECONDS = 240.0  # the service answers within 230 s
TRANSPORT_RETRIES = 3
TERMINAL = frozenset({"succeeded", "failed", "canceled"})


# --- errors -----------------------------------------------------------------------------------


class ApiError(Exception):
    """The API answered with an error (its `error.code`), or could not be reached."""

    code = "api_error"

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
        self.details = dict(details or {})
        self.retry_after = retry_after
        self.job = job


class InvalidRequestError(ApiError):
    code = "invalid_request"


class AuthenticationError(ApiError):
    code = "unauthorized"


class NotFoundError(ApiError):
    code = "not_found"


class ConflictError(ApiError):
    code = "conflict"


class CanceledError(ApiError):
    code = "canceled"


class IdempotencyKeyReusedError(ApiError):
    code = "idempotency_key_reused"


class ContentFilteredError(ApiError):
    code = "content_filtered"


class ThrottledError(ApiError):
    code = "upstream_throttled"


class UpstreamError(ApiError):
    code = "upstream_error"


class UpstreamTimeoutError(ApiError):
    code = "upstream_timeout"


class StorageError(ApiError):
    code = "storage_error"


class ProcessingFailedError(ApiError):
    code = "processing_failed"


class WaitTimeoutError(ApiError):
    """The job did not end within the client's own timeout (it may still end later)."""

    code = "client_timeout"


class ConnectionFailedError(ApiError):
    code = "connection_failed"


ERRORS: dict[str, type[ApiError]] = {
    cls.code: cls
    for cls in (
        InvalidRequestError,
        ConflictError,
        CanceledError,
        NotFoundError,
        IdempotencyKeyReusedError,
        ContentFilteredError,
        ThrottledError,
        UpstreamError,
        UpstreamTimeoutError,
        StorageError,
        ProcessingFailedError,
    )
}


# --- the job --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    url: str
    expires_at: str
    content_type: str
    width: int
    height: int
    bytes: int
    blob: str
    revised_prompt: str | None = None

    @property
    def extension(self) -> str:
        return {"image/jpeg": "jpeg", "image/webp": "webp"}.get(self.content_type, "png")


@dataclass(frozen=True)
class Job:
    id: str
    status: str
    created_at: str
    updated_at: str
    request: dict[str, Any]
    images: tuple[Image, ...] = ()
    completed_at: str | None = None
    error: dict[str, Any] | None = None
    urls: dict[str, str] = field(default_factory=dict)
    model: str | None = None  # the model that drew it
    usage: dict[str, Any] | None = None  # Azure's token counts (gpt-image models), in Azure's shape
    cost: dict[str, Any] | None = None  # {amount, currency, prices_as_of}

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Job:
        images = tuple(
            Image(**{k: v for k, v in item.items() if k in Image.__dataclass_fields__})
            for item in document.get("images", [])
        )
        return cls(
            id=str(document["id"]),
            status=str(document["status"]),
            created_at=str(document.get("created_at", "")),
            updated_at=str(document.get("updated_at", "")),
            request=dict(document.get("request", {})),
            images=images,
            completed_at=document.get("completed_at"),
            error=document.get("error"),
            urls=dict(document.get("urls", {})),
            model=document.get("model"),
            usage=document.get("usage"),
            cost=document.get("cost"),
        )


# --- the client -----------------------------------------------------------------------------


ProgressCallback = Callable[[Job, float], None]


class ImageGenClient:
    def __init__(
        self,
        api_base: str,
        function_key: str | None = None,
        *,
        session: requests.Session | None = None,
        verify: str | bool = True,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`api_base` is the routes' root, e.g. `https://<app>.azurewebsites.net/api`."""
        self.api_base = api_base.rstrip("/")
        self._session = session or requests.Session()
        self._headers = {"x-functions-key": function_key} if function_key else {}
        self._verify = verify
        self._sleep = sleep
        self._clock = clock

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> ImageGenClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def generate(
        self,
        prompt: str,
        *,
        n: int | None = None,
        size: str | None = None,
        quality: str | None = None,
        background: str | None = None,
        output_format: str | None = None,
        output_compression: int | None = None,
        user: str | None = None,
        metadata: Mapping[str, str] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        """Create a job and follow it to its end; return it when it succeeded, raise otherwise."""
        options = {
            "n": n,
            "size": size,
            "quality": quality,
            "background": background,
            "output_format": output_format,
            "output_compression": output_compression,
            "user": user,
            "metadata": dict(metadata) if metadata else None,
            "callback_url": callback_url,
        }
        body = {"prompt": prompt, **{k: v for k, v in options.items() if v is not None}}
        headers = {
            "Idempotency-Key": idempotency_key or f"client-{uuid.uuid4()}",
            "Prefer": "respond-async",
        }
        started = self._clock()
        response = self._send("POST", f"{self.api_base}/images", json=body, headers=headers)
        return self._follow(response, started, timeout, on_progress)

    def get(self, job_id: str) -> Job:
        """The job as it stands (any status); raises only when the API cannot answer with one."""
        response = self._send("GET", f"{self.api_base}/images/{job_id}")
        if _has_job(response):
            return Job.from_json(response.json())
        raise self._error(response)

    def cancel(self, job_id: str) -> Job:
        response = self._send("DELETE", f"{self.api_base}/images/{job_id}")
        if response.status_code == 200:
            return Job.from_json(response.json())
        raise self._error(response)

    def download(self, image: Image, path: str | Path) -> Path:
        """Fetch an image through its SAS link (no credentials) into `path`."""
        target = Path(path)
        with self._session.get(
            image.url, timeout=REQUEST_TIMEOUT_SECONDS, verify=self._verify, stream=True
        ) as response:
            if response.status_code != 200:
                raise ApiError(
                    f"downloading the image answered {response.status_code}", status=response.status_code
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as file:
                for chunk in response.iter_content(chunk_size=256 * 1024):
                    file.write(chunk)
        return target

    # --- internals ----------------------------------------------------------------------------

    def _follow(
        self,
        response: requests.Response,
        started: float,
        timeout: float,
        on_progress: ProgressCallback | None,
    ) -> Job:
        while response.status_code == 202:
            job = Job.from_json(response.json())
            if on_progress is not None:
                on_progress(job, self._clock() - started)
            delay = _retry_after(response) or 2.0
            if self._clock() + delay - started > timeout:
                raise WaitTimeoutError(f"job {job.id} did not end within {timeout:g} s", job=job)
            self._sleep(delay)
            response = self._send(
                "GET", response.headers.get("Location") or f"{self.api_base}/images/{job.id}"
            )
        if response.status_code == 200:
            job = Job.from_json(response.json())
            if on_progress is not None:
                on_progress(job, self._clock() - started)
            return job
        raise self._error(response)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One call; connection failures are retried (POSTs carry an Idempotency-Key, so that is safe)."""
        headers = {**self._headers, **kwargs.pop("headers", {})}
        for attempt in range(1, TRANSPORT_RETRIES + 1):
            try:
                return self._session.request(
                    method,
                    url,
                    headers=headers,
                    timeout=REQUEST_TIMEOUT_SECONDS,
                    verify=self._verify,
                    **kwargs,
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                if attempt == TRANSPORT_RETRIES:
                    raise ConnectionFailedError(
                        f"could not reach {self.api_base}: {error.__class__.__name__}"
                    ) from None
                self._sleep(2.0**attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _error(response: requests.Response) -> ApiError:
        if response.status_code == 401:
            return AuthenticationError("the function key is missing or wrong", status=401)
        try:
            document = response.json()
        except ValueError:
            document = {}
        error = document.get("error") if isinstance(document, dict) else None
        job = (
            Job.from_json(document)
            if isinstance(document, dict) and "id" in document and "status" in document
            else None
        )
        if not isinstance(error, dict):
            return ApiError(f"the API answered {response.status_code}", status=response.status_code, job=job)
        cls = ERRORS.get(str(error.get("code")), ApiError)
        return cls(
            str(error.get("message", "")),
            status=response.status_code,
            details=error.get("details") if isinstance(error.get("details"), dict) else None,
            retry_after=_retry_after(response),
            job=job,
        )


def _has_job(response: requests.Response) -> bool:
    if response.status_code not in (200, 202, 409, 422, 500, 502, 503, 504):
        return False
    try:
        document = response.json()
    except ValueError:
        return False
    return isinstance(document, dict) and "id" in document and "status" in document


def _retry_after(response: requests.Response) -> float | None:
    """Seconds to wait, when the header is a finite, non-negative number (a proxy may rewrite it)."""
    try:
        seconds = float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
