"""The half both clients share, free of I/O: which call to send, and what an answer means.

ImageGenClient and AsyncImageGenClient only send requests, sleep and write files; every decision
(the request body, following 202 + Location + Retry-After, answer -> Job or ApiError, which
transport failures are tried again) is made here, once.
"""

from __future__ import annotations

import math
import os
import ssl
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from imagegen_client._version import __version__
from imagegen_client.errors import (
    SERVER_ERRORS_BY_CODE,
    ApiError,
    AuthenticationError,
    ConnectionFailedError,
    WaitTimeoutError,
)
from imagegen_client.models import Job

DEFAULT_TIMEOUT_SECONDS = 600.0  # how long `generate` follows a job
REQUEST_TIMEOUT_SECONDS = 240.0  # one HTTP call; the service answers within 230 s
DEFAULT_POLL_SECONDS = 2.0  # the wait when an answer's Retry-After is not one
TRANSPORT_ATTEMPTS = 3
DOWNLOAD_CHUNK_BYTES = 256 * 1024
FUNCTION_KEY_HEADER = "x-functions-key"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
DEFAULT_HEADERS = {"User-Agent": f"imagegen-client/{__version__}"}
# Answers that may carry the job itself (a failed job answers with its error's status).
JOB_ANSWER_STATUSES = frozenset({200, 202, 409, 422, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRIED_TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

ProgressCallback = Callable[[Job, float], None]
"""Called with the job and the seconds since `generate` began, after every answer while following it."""

CertificateCheck = bool | str | os.PathLike[str] | ssl.SSLContext
"""`verify=`: True (public CAs), False (no check), a CA bundle file or folder, or an SSLContext."""


def ssl_context(verify: CertificateCheck) -> bool | ssl.SSLContext:
    """What httpx takes for `verify`: a path becomes a context trusting that CA bundle."""
    if isinstance(verify, bool | ssl.SSLContext):
        return verify
    bundle = Path(verify)
    if bundle.is_dir():
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle)


# --- what to send ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiCall:
    """One call of the API, before any client turns it into an httpx.Request."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


class Endpoint:
    """Where the API is and how to authenticate: builds each call (the key goes to the API only)."""

    def __init__(self, api_base: str, function_key: str | None) -> None:
        self.api_base = api_base.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if function_key:
            self._headers[FUNCTION_KEY_HEADER] = function_key

    def job_url(self, job_id: str) -> str:
        return f"{self.api_base}/images/{job_id}"

    def create_job(self, body: dict[str, Any], idempotency_key: str) -> ApiCall:
        headers = {**self._headers, IDEMPOTENCY_KEY_HEADER: idempotency_key, "Prefer": "respond-async"}
        return ApiCall("POST", f"{self.api_base}/images", headers, body)

    def read_job(self, job_id: str) -> ApiCall:
        return self.poll(self.job_url(job_id))

    def poll(self, location: str) -> ApiCall:
        return ApiCall("GET", location, self._headers)

    def cancel_job(self, job_id: str) -> ApiCall:
        return ApiCall("DELETE", self.job_url(job_id), self._headers)


def generate_body(
    prompt: str,
    *,
    n: int | None,
    size: str | None,
    quality: str | None,
    background: str | None,
    output_format: str | None,
    output_compression: int | None,
    user: str | None,
    metadata: Mapping[str, str] | None,
    callback_url: str | None,
) -> dict[str, Any]:
    """The POST body: the prompt and every option given (the service picks the others' defaults)."""
    options: dict[str, Any] = {
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
    return {"prompt": prompt, **{name: value for name, value in options.items() if value is not None}}


def new_idempotency_key() -> str:
    return f"client-{uuid.uuid4()}"


# --- what an answer means -------------------------------------------------------------------


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Retry-After as seconds, when it is a finite, non-negative number (a proxy may rewrite it)."""
    try:
        seconds = float(headers["Retry-After"])
    except (KeyError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def poll_delay(headers: httpx.Headers) -> float:
    """How long to wait before the next poll: Retry-After when it is a wait, else the default."""
    seconds = retry_after_seconds(headers)
    return DEFAULT_POLL_SECONDS if seconds is None else seconds


def _document(response: httpx.Response) -> dict[str, Any] | None:
    try:
        document = response.json()
    except ValueError:  # not JSON, or not text
        return None
    return document if isinstance(document, dict) else None


def _job_in(document: Mapping[str, Any] | None) -> Job | None:
    if document is None or "id" not in document or "status" not in document:
        return None
    try:
        return Job.from_json(document)
    except (KeyError, TypeError, ValueError):
        return None


def error_from_answer(response: httpx.Response) -> ApiError:
    """The ApiError an answer stands for: its `error.code`'s class, with details, Retry-After, job."""
    status = response.status_code
    document = _document(response)
    job = _job_in(document)
    error = document.get("error") if document is not None else None
    if status == 401 and not isinstance(error, dict):  # the Functions host's own 401 has no body
        return AuthenticationError("the function key is missing or wrong", status=status)
    if not isinstance(error, dict):
        return ApiError(f"the API answered {status}", status=status, job=job)
    details = error.get("details")
    error_type = SERVER_ERRORS_BY_CODE.get(str(error.get("code")), ApiError)
    return error_type(
        str(error.get("message", "")),
        status=status,
        details=details if isinstance(details, dict) else None,
        retry_after=retry_after_seconds(response.headers),
        job=job,
    )


def _job_or_error(response: httpx.Response, statuses: frozenset[int]) -> Job:
    if response.status_code not in statuses:
        raise error_from_answer(response)
    job = _job_in(_document(response))
    if job is None:
        raise ApiError(f"the API answered {response.status_code} without a job", status=response.status_code)
    return job


def job_from_read(response: httpx.Response) -> Job:
    """GET's answer: the job in any status (a failed one too); raises when there is no job."""
    job = _job_in(_document(response)) if response.status_code in JOB_ANSWER_STATUSES else None
    if job is None:
        raise error_from_answer(response)
    return job


def job_from_cancel(response: httpx.Response) -> Job:
    """DELETE's answer: the canceled job, or why it could not be canceled."""
    return _job_or_error(response, frozenset({200}))


@dataclass(frozen=True)
class Poll:
    """The job is still running: wait `delay` seconds, then send `call`."""

    call: ApiCall
    delay: float


class JobFollower:
    """Reads the answers of one `generate`: 202 -> Poll, 200 -> the Job, anything else -> its ApiError."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float,
        on_progress: ProgressCallback | None,
        clock: Callable[[], float],
    ) -> None:
        self._endpoint = endpoint
        self._timeout = timeout
        self._on_progress = on_progress
        self._clock = clock
        self._started = clock()

    def next_step(self, response: httpx.Response) -> Job | Poll:
        """Raises the answer's ApiError, or WaitTimeoutError when the next wait would end too late."""
        job = _job_or_error(response, frozenset({200, 202}))
        elapsed = self._clock() - self._started
        if self._on_progress is not None:
            self._on_progress(job, elapsed)
        if response.status_code == 200:
            return job
        delay = poll_delay(response.headers)
        if elapsed + delay > self._timeout:
            raise WaitTimeoutError(f"job {job.id} did not end within {self._timeout:g} s", job=job)
        location = response.headers.get("Location")
        url = response.request.url.join(location) if location else httpx.URL(self._endpoint.job_url(job.id))
        if _origin(url) != _origin(httpx.URL(self._endpoint.api_base)):
            # Following it would send the function key to whoever the Location names.
            raise ApiError(
                f"the API's Location points outside the API ({_origin(url)}); not followed", job=job
            )
        return Poll(self._endpoint.poll(str(url)), delay)


# --- transport failures ---------------------------------------------------------------------


def _origin(url: httpx.URL) -> str:
    """scheme://host:port only: an image link's query is its SAS signature, never shown."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def connection_failed(request: httpx.Request, error: httpx.TransportError) -> ConnectionFailedError:
    return ConnectionFailedError(f"could not reach {_origin(request.url)}: {type(error).__name__}")


@dataclass(frozen=True)
class TransportRetry:
    """Connection failures and timeouts of idempotent calls are tried again, after 2 s, then 4 s, ….

    A POST that carries an Idempotency-Key is idempotent: sent twice, it is still one job.
    """

    attempts: int = TRANSPORT_ATTEMPTS

    def wait_before_retry(self, request: httpx.Request, error: httpx.TransportError, attempt: int) -> float:
        """Seconds to wait before try `attempt + 1`; raises ConnectionFailedError when there is none."""
        idempotent = request.method in IDEMPOTENT_METHODS or IDEMPOTENCY_KEY_HEADER in request.headers
        if attempt >= self.attempts or not idempotent or not isinstance(error, RETRIED_TRANSPORT_ERRORS):
            raise connection_failed(request, error) from error
        return 2.0**attempt


# --- downloads ------------------------------------------------------------------------------


def download_failed(response: httpx.Response) -> ApiError:
    hint = " (the link has expired, or is not this image's)" if response.status_code == 403 else ""
    return ApiError(
        f"downloading the image answered {response.status_code}{hint}", status=response.status_code
    )


class PartialFile:
    """A download is written next to its target and moved into place only once complete.

    Plain blocking file calls: the async client runs each one in a worker thread.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self._partial = target.with_name(f"{target.name}.part")
        self._file: IO[bytes] | None = None

    def open(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._file = self._partial.open("wb")

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise RuntimeError("PartialFile.write before open")
        self._file.write(chunk)

    def commit(self) -> Path:
        self._close()
        self._partial.replace(self.target)
        return self.target

    def discard(self) -> None:
        """Remove what an unfinished download left (nothing once committed)."""
        self._close()
        self._partial.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
