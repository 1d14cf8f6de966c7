"""A scripted image API behind httpx.MockTransport, virtual time, and one driver for both clients.

`ClientDriver("sync" | "async", api)` offers the client's calls as plain functions, so one test
body checks ImageGenClient and AsyncImageGenClient alike; nothing really sleeps.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from imagegen_client import AsyncImageGenClient, Image, ImageGenClient, Job

API_BASE = "http://api.test/api"
FUNCTION_KEY = "the-function-key"
BLOB_HOST = "blob.test"
JOB_ID = "6f1c0e0e-0000-4000-8000-000000000001"
PNG = b"\x89PNG\r\n\x1a\n-image-bytes"
ClientKind = Literal["sync", "async"]
CLIENT_KINDS: tuple[ClientKind, ...] = ("sync", "async")
both_clients = pytest.mark.parametrize("kind", CLIENT_KINDS)
"""Runs a test taking `kind: ClientKind` once with each client."""


def image_json(index: int = 0) -> dict[str, Any]:
    return {
        "url": f"https://{BLOB_HOST}/images/{JOB_ID}-{index}.png?sv=2025-01-05&sig=secret-signature",
        "expires_at": "2026-01-01T00:15:00Z",
        "content_type": "image/png",
        "width": 1024,
        "height": 1024,
        "bytes": len(PNG),
        "blob": f"{JOB_ID}-{index}.png",
    }


def job_json(status: str = "running", *, images: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "id": JOB_ID,
        "status": status,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:01Z",
        "request": {"prompt": "a", "n": max(images, 1)},
        "images": [image_json(index) for index in range(images)],
        **extra,
    }


def running(
    retry_after: str | None = "2", location: str | None = f"{API_BASE}/images/{JOB_ID}"
) -> httpx.Response:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if location is not None:
        headers["Location"] = location
    return httpx.Response(202, json=job_json("running"), headers=headers)


def succeeded(images: int = 1, **extra: Any) -> httpx.Response:
    return httpx.Response(200, json=job_json("succeeded", images=images, **extra))


def error_answer(
    status: int,
    code: str,
    *,
    job: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    **error: Any,
) -> httpx.Response:
    """An error as the service writes it: `{"error": …}`, or the failed job carrying its error."""
    body_error = {"code": code, "message": f"a {code} happened", **error}
    body = {**job, "error": body_error} if job is not None else {"error": body_error}
    return httpx.Response(status, json=body, headers=headers)


class FakeApi:
    """Answers API calls in the order scripted (an exception is raised instead) and serves image
    links on BLOB_HOST from `blobs`; records every request."""

    def __init__(self, *answers: httpx.Response | Exception, blobs: dict[str, bytes] | None = None) -> None:
        self.answers = list(answers)
        self.blobs = blobs if blobs is not None else {f"/images/{JOB_ID}-0.png": PNG}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == BLOB_HOST:
            blob = self.blobs.get(request.url.path)
            return httpx.Response(200, content=blob) if blob is not None else httpx.Response(403)
        if not self.answers:
            raise AssertionError(f"unscripted call {request.method} {request.url}")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def api_requests(self) -> list[httpx.Request]:
        return [request for request in self.requests if request.url.host != BLOB_HOST]


class VirtualTime:
    """A clock that only moves when the client sleeps; sleeping checks what time.sleep would accept."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert math.isfinite(seconds) and seconds >= 0, f"time.sleep would refuse {seconds!r}"
        self.slept.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


class ClientDriver:
    """The same calls on the sync or the async client, each on a client of its own."""

    def __init__(self, kind: ClientKind, api: FakeApi, *, function_key: str | None = FUNCTION_KEY) -> None:
        self.kind = kind
        self.api = api
        self.time = VirtualTime()
        self._function_key = function_key

    def generate(self, prompt: str, **options: Any) -> Job:
        result: Job = self._call("generate", prompt, **options)
        return result

    def get(self, job_id: str) -> Job:
        result: Job = self._call("get", job_id)
        return result

    def cancel(self, job_id: str) -> Job:
        result: Job = self._call("cancel", job_id)
        return result

    def download(self, image: Image, path: Path) -> Path:
        result: Path = self._call("download", image, path)
        return result

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.kind == "sync":
            with ImageGenClient(
                API_BASE,
                self._function_key,
                transport=httpx.MockTransport(self.api),
                sleep=self.time.sleep,
                clock=self.time.clock,
            ) as client:
                method: Callable[..., Any] = getattr(client, name)
                return method(*args, **kwargs)
        return asyncio.run(self._call_async(name, *args, **kwargs))

    async def _call_async(self, name: str, *args: Any, **kwargs: Any) -> Any:
        async with AsyncImageGenClient(
            API_BASE,
            self._function_key,
            transport=httpx.MockTransport(self.api),
            sleep=self.time.async_sleep,
            clock=self.time.clock,
        ) as client:
            method: Callable[..., Any] = getattr(client, name)
            return await method(*args, **kwargs)
