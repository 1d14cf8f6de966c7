"""Azure OpenAI image generation in its two dialects (v1, and the per-deployment path).

Async over aiohttp, with one retry policy for every call: 429 honours `retry-after-ms` /
`retry-after`, 5xx and connection errors back off with jitter, and everything ends by a deadline.
Errors leave this module as imagegen.domain.errors types only.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from azure.core.exceptions import AzureError

from imagegen.domain.backends import Backend
from imagegen.domain.catalog import ApiStyle
from imagegen.domain.errors import (
    ContentFiltered,
    ImageGenError,
    InvalidRequest,
    UpstreamError,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from imagegen.domain.images import BrokenImage, ImageInfo, inspect_image
from imagegen.domain.jsontext import NotJson, parse_json
from imagegen.domain.ports import GeneratedImage, Generation
from imagegen.domain.pricing import Usage
from imagegen.domain.requests import ImageRequest, ModelRules
from imagegen.domain.settings import Settings

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
MAX_DOWNLOAD_ATTEMPTS = 3
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0


class TokenProvider(Protocol):
    async def __call__(self) -> str: ...


@dataclass(frozen=True)
class UpstreamAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            document = parse_json(self.body)
        except NotJson:
            raise UpstreamError(f"Azure OpenAI answered {self.status} with a body that is not JSON") from None
        if not isinstance(document, dict):
            raise UpstreamError(f"Azure OpenAI answered {self.status} with unexpected JSON")
        return document


class AzureOpenAIImages:
    """Generates images on one backend; one instance per backend and process, its aiohttp session
    built lazily and reused.

    `retries=False` (the pool's way): a 429, a 5xx or a lost connection is raised at once
    (UpstreamThrottled with the retry-after, UpstreamUnavailable) for the pool to cool the backend
    down and send the job elsewhere or back to the queue; downloads of result URLs still retry.
    """

    def __init__(
        self,
        settings: Settings,
        rules: ModelRules,
        *,
        token_provider: TokenProvider | None,
        backend: Backend | None = None,
        retries: bool = True,
        session_factory: Callable[[], aiohttp.ClientSession] = aiohttp.ClientSession,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.api_key is None and token_provider is None:
            raise ValueError("either an api-key or a token provider is needed")
        self._settings = settings
        self._backend = backend or settings.backends[0]
        self._retries = retries
        self._endpoint_origin = _origin(self._backend.endpoint)  # the only origin given credentials
        self._rules = rules
        self._token_provider = token_provider
        self._session_factory = session_factory
        self._session: aiohttp.ClientSession | None = None
        self._sleep = sleep
        self._clock = clock

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def generate(self, request: ImageRequest, *, deadline: float) -> Generation:
        """Generate `request.n` images before `deadline` (a time.monotonic() value)."""
        body = request.upstream_body(self._rules)
        if self._backend.api_style is ApiStyle.V1:
            body["model"] = self._backend.deployment
        answer = await self._send("POST", self._url(), body, deadline)
        if answer.status != 200:
            raise self._error_from_answer(answer)
        document = answer.json()
        items = document.get("data")
        if not isinstance(items, list) or not items:
            raise UpstreamError("Azure OpenAI answered 200 without images")
        _raise_if_output_filtered(items)
        images = [await self._image_from_item(item, deadline) for item in items]
        return Generation(tuple(images), Usage.from_answer(document.get("usage")))

    def _url(self) -> str:
        backend = self._backend
        if backend.api_style is ApiStyle.V1:
            return f"{backend.endpoint}/openai/v1/images/generations?api-version={backend.api_version}"
        return (
            f"{backend.endpoint}/openai/deployments/{backend.deployment}/images/generations"
            f"?api-version={backend.api_version}"
        )

    # --- images -------------------------------------------------------------------------------

    async def _image_from_item(self, item: Any, deadline: float) -> GeneratedImage:
        if not isinstance(item, dict):
            raise UpstreamError("Azure OpenAI answered an image entry that is not an object")
        revised = item.get("revised_prompt") if isinstance(item.get("revised_prompt"), str) else None
        if isinstance(item.get("b64_json"), str):
            try:
                data = binascii.a2b_base64(item["b64_json"], strict_mode=True)  # no extra copy of the text
            except (binascii.Error, ValueError):
                raise UpstreamError("Azure OpenAI answered an image that is not valid base64") from None
            try:
                return GeneratedImage(data, inspect_image(data), revised)
            except BrokenImage as broken:
                raise UpstreamError(f"Azure OpenAI answered a broken image: {broken}") from None
        if isinstance(item.get("url"), str):
            data, info = await self._download(item["url"], deadline)
            return GeneratedImage(data, info, revised)
        raise UpstreamError("Azure OpenAI answered an image entry with neither b64_json nor url")

    async def _download(self, url: str, deadline: float) -> tuple[bytes, ImageInfo]:
        """Fetch a result URL (no auth: it is pre-signed); a truncated image is fetched again."""
        last_problem = "no attempt"
        for attempt in range(MAX_DOWNLOAD_ATTEMPTS):
            answer = await self._send("GET", url, None, deadline, authenticate=False)
            if answer.status != 200:
                raise UpstreamError(f"downloading a result image answered {answer.status}")
            try:
                return answer.body, inspect_image(answer.body)
            except BrokenImage as broken:
                last_problem = str(broken)
                log.warning("result image download broken (attempt %d): %s", attempt + 1, broken)
        raise UpstreamError(f"a result image could not be downloaded whole: {last_problem}")

    # --- one retry policy for every call -----------------------------------------------------

    async def _headers(self, authenticate: bool) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if not authenticate:
            return headers
        if self._settings.api_key is not None:
            headers["api-key"] = self._settings.api_key
        else:
            assert self._token_provider is not None
            try:
                headers["Authorization"] = f"Bearer {await self._token_provider()}"
            except AzureError as error:  # ClientAuthenticationError, CredentialUnavailableError, …
                raise UpstreamError(
                    f"could not get a Microsoft Entra token for Azure OpenAI ({error.__class__.__name__})"
                ) from None
        return headers

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._session_factory()
        return self._session

    async def _send(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None,
        deadline: float,
        *,
        authenticate: bool = True,
    ) -> UpstreamAnswer:
        if authenticate and _origin(url) != self._endpoint_origin:
            # An operation-location or a stored operation URL elsewhere must not get our credentials.
            raise UpstreamError("Azure OpenAI pointed outside the configured endpoint; not followed")
        retries = self._retries or not authenticate
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise UpstreamTimeout("Azure OpenAI did not answer in time")
            headers = await self._headers(authenticate)
            try:
                async with self._client().request(
                    method,
                    url,
                    json=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=remaining),
                    # A redirect would carry the api-key header to wherever it points.
                    allow_redirects=not authenticate,
                ) as response:
                    payload = await response.read()
                    answer = UpstreamAnswer(response.status, dict(response.headers), payload)
            except TimeoutError:
                raise UpstreamTimeout("Azure OpenAI did not answer in time") from None
            except aiohttp.ClientError as error:
                delay = self._backoff(attempt)
                log.warning(
                    "Azure OpenAI %s failed (%s), attempt %d", method, error.__class__.__name__, attempt
                )
                if not retries or attempt >= MAX_ATTEMPTS or self._clock() + delay >= deadline:
                    # A generation that never got through drew nothing (another backend may try);
                    # a download of a result that was drawn is not that: the job ends.
                    unreached = UpstreamUnavailable if authenticate else UpstreamError
                    raise unreached(f"could not reach Azure OpenAI ({error.__class__.__name__})") from None
                await self._sleep(delay)
                continue
            _log_answer(method, answer)
            if answer.status == 429:
                asked = _retry_after_seconds(answer.headers)
                delay = asked or self._backoff(attempt)
                if not retries:
                    raise UpstreamThrottled("Azure OpenAI is throttling this deployment", retry_after=asked)
                if attempt >= MAX_ATTEMPTS or self._clock() + delay >= deadline:
                    raise UpstreamThrottled(
                        "Azure OpenAI is throttling image generation; try again later", retry_after=delay
                    )
                await self._sleep(delay)
                continue
            if answer.status >= 500:
                delay = self._backoff(attempt)
                if not retries:
                    raise UpstreamUnavailable(f"Azure OpenAI answered {answer.status}")
                if attempt >= MAX_ATTEMPTS or self._clock() + delay >= deadline:
                    return answer
                await self._sleep(delay)
                continue
            return answer

    @staticmethod
    def _backoff(attempt: int) -> float:
        ceiling: float = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    @staticmethod
    def _error_from_answer(answer: UpstreamAnswer) -> ImageGenError:
        error: dict[str, Any] = {}
        try:
            found = answer.json().get("error")
            if isinstance(found, dict):
                error = found
        except UpstreamError:
            pass
        code = str(error.get("code", ""))
        inner = error.get("inner_error") or error.get("innererror") or {}
        if code == "content_policy_violation" or (
            isinstance(inner, dict) and inner.get("code") == "ResponsibleAIPolicyViolation"
        ):
            return ContentFiltered(
                "the safety system refused the prompt", details={"categories": _categories(error)}
            )
        if answer.status == 400:
            param = error.get("param") if isinstance(error.get("param"), str) else None
            return InvalidRequest(
                f"Azure OpenAI refused the request: {str(error.get('message', 'bad request'))[:300]}",
                field=param,
            )
        if answer.status in (401, 403):
            return UpstreamError(
                f"Azure OpenAI refused the app's credentials ({answer.status}); check the role assignment or key"
            )
        if answer.status == 404:
            return UpstreamError("Azure OpenAI does not know the deployment or operation (404)")
        return UpstreamError(f"Azure OpenAI answered {answer.status} ({code or 'no code'})")


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("retry-after", 1.0)):
        text = lowered.get(name)
        if text is None:
            continue
        try:
            value = float(text) * scale
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:  # "inf", "nan", "1e400" are not a wait
            return value
    return None


def _categories(error: Mapping[str, Any]) -> dict[str, Any]:
    """Which content-filter categories fired, from an error or a per-image result."""
    inner = error.get("inner_error") or error.get("innererror") or {}
    results = inner.get("content_filter_results") if isinstance(inner, dict) else None
    if results is None:
        results = error.get("content_filter_results")
    if not isinstance(results, dict):
        return {}
    return {
        name: {k: v for k, v in value.items() if k in ("filtered", "severity", "detected")}
        for name, value in results.items()
        if isinstance(value, dict) and (value.get("filtered") or value.get("detected"))
    }


def _raise_if_output_filtered(items: list[Any]) -> None:
    """An output image the safety system withheld fails the whole job as content_filtered."""
    filtered: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        error = item.get("error")
        if isinstance(error, dict) and error.get("code") in ("contentFilter", "content_filter"):
            filtered.append({"index": index, "categories": _categories(error)})
            continue
        results = item.get("content_filter_results")
        has_image = isinstance(item.get("b64_json"), str) or isinstance(item.get("url"), str)
        if isinstance(results, dict) and (not has_image or _categories(item)):
            filtered.append({"index": index, "categories": _categories(item)})
    if filtered:
        raise ContentFiltered("the safety system withheld an output image", details={"images": filtered})


def _log_answer(method: str, answer: UpstreamAnswer) -> None:
    request_id = answer.headers.get("apim-request-id") or answer.headers.get("x-request-id") or "-"
    log.info("Azure OpenAI %s answered %d (request id %s)", method, answer.status, request_id)


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port (default ports filled in): where credentials may be sent."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1  # never equal to the endpoint's
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or ""), port or {"https": 443, "http": 80}.get(scheme)
