"""A typed client for the image API, sync and async (on httpx): generate, get, cancel, download.

    with ImageGenClient("https://<app>.azurewebsites.net/api", function_key="…") as client:
        job = client.generate("a painting of a dog", n=2)
        client.download(job.images[0], "dog.png")

`generate` follows the API's asynchronous request-reply pattern (202 + Location + Retry-After) and
sends an Idempotency-Key, so a POST repeated after a dropped connection is the same job, never a
second paid generation. Every failure raises one ApiError subclass per error code of the API.
"""

from imagegen_client._async import AsyncImageGenClient
from imagegen_client._protocol import CertificateCheck, ProgressCallback
from imagegen_client._sync import ImageGenClient
from imagegen_client._version import __version__
from imagegen_client.errors import (
    ApiError,
    AuthenticationError,
    CallerLimitReachedError,
    ConflictError,
    ConnectionFailedError,
    ContentFilteredError,
    IdempotencyKeyReusedError,
    InternalServerError,
    InvalidRequestError,
    JobCanceledError,
    NotFoundError,
    ProcessingFailedError,
    StorageError,
    ThrottledError,
    UpstreamError,
    UpstreamTimeoutError,
    WaitTimeoutError,
)
from imagegen_client.models import Image, Job

__all__ = [
    "ApiError",
    "AsyncImageGenClient",
    "AuthenticationError",
    "CallerLimitReachedError",
    "CertificateCheck",
    "ConflictError",
    "ConnectionFailedError",
    "ContentFilteredError",
    "IdempotencyKeyReusedError",
    "Image",
    "ImageGenClient",
    "InternalServerError",
    "InvalidRequestError",
    "Job",
    "JobCanceledError",
    "NotFoundError",
    "ProcessingFailedError",
    "ProgressCallback",
    "StorageError",
    "ThrottledError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "WaitTimeoutError",
    "__version__",
]
