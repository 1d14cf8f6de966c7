"""AsyncImageGenClient: the image API on httpx.AsyncClient (the decisions live in _protocol)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Self

import httpx

from imagegen_client._protocol import (
    DEFAULT_HEADERS,
    DEFAULT_TIMEOUT_SECONDS,
    DOWNLOAD_CHUNK_BYTES,
    REQUEST_TIMEOUT_SECONDS,
    ApiCall,
    CertificateCheck,
    Endpoint,
    JobFollower,
    PartialFile,
    Poll,
    ProgressCallback,
    TransportRetry,
    connection_failed,
    download_failed,
    generate_body,
    job_from_cancel,
    job_from_read,
    new_idempotency_key,
    ssl_context,
)
from imagegen_client.models import Image, Job


class AsyncImageGenClient:
    """The image API for asyncio: the same calls as ImageGenClient, awaited.

    `api_base` is the routes' root, e.g. `https://<app>.azurewebsites.net/api`. `transport` replaces
    the network (e.g. `httpx.MockTransport` in tests); `sleep` and `clock` replace time.
    """

    def __init__(
        self,
        api_base: str,
        function_key: str | None = None,
        *,
        verify: CertificateCheck = True,
        transport: httpx.AsyncBaseTransport | None = None,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._endpoint = Endpoint(api_base, function_key)
        self._http = httpx.AsyncClient(
            headers=DEFAULT_HEADERS, timeout=request_timeout, verify=ssl_context(verify), transport=transport
        )
        self._retry = TransportRetry()
        self._sleep = sleep
        self._clock = clock

    @property
    def api_base(self) -> str:
        return self._endpoint.api_base

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def generate(
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
        # Not asyncio.timeout's job: running out raises WaitTimeoutError carrying the unfinished job.
        timeout: float = DEFAULT_TIMEOUT_SECONDS,  # noqa: ASYNC109
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        """Create a job and follow it to its end; return it when it succeeded, raise otherwise."""
        body = generate_body(
            prompt,
            n=n,
            size=size,
            quality=quality,
            background=background,
            output_format=output_format,
            output_compression=output_compression,
            user=user,
            metadata=metadata,
            callback_url=callback_url,
        )
        follower = JobFollower(self._endpoint, timeout=timeout, on_progress=on_progress, clock=self._clock)
        create = self._endpoint.create_job(body, idempotency_key or new_idempotency_key())
        step = follower.next_step(await self._call(create))
        while isinstance(step, Poll):
            await self._sleep(step.delay)
            step = follower.next_step(await self._call(step.call))
        return step

    async def get(self, job_id: str) -> Job:
        """The job as it stands (any status); raises only when the API cannot answer with one."""
        return job_from_read(await self._call(self._endpoint.read_job(job_id)))

    async def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job; ConflictError when it has already ended."""
        return job_from_cancel(await self._call(self._endpoint.cancel_job(job_id)))

    async def download(self, image: Image, path: str | os.PathLike[str]) -> Path:
        """Fetch an image through its SAS link (no function key) into `path`; returns the path."""
        request = self._http.build_request("GET", image.url)
        response = await self._send(request, stream=True)
        file = PartialFile(Path(path))
        try:
            if response.status_code != 200:
                raise download_failed(response)
            await asyncio.to_thread(file.open)
            async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK_BYTES):
                await asyncio.to_thread(file.write, chunk)
            return await asyncio.to_thread(file.commit)
        except httpx.TransportError as error:
            raise connection_failed(request, error) from error
        finally:
            await response.aclose()
            await asyncio.to_thread(file.discard)

    async def _call(self, call: ApiCall) -> httpx.Response:
        request = self._http.build_request(call.method, call.url, headers=call.headers, json=call.body)
        return await self._send(request)

    async def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """Send, trying again after a transport failure when the call is idempotent (the same request,
        so the same Idempotency-Key)."""
        attempt = 1
        while True:
            try:
                return await self._http.send(request, stream=stream)
            except httpx.TransportError as error:
                await self._sleep(self._retry.wait_before_retry(request, error, attempt))
                attempt += 1
