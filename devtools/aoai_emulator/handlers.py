"""The Azure-facing routes: sync generation (deployments, v1), the legacy operation API, result downloads."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from devtools.aoai_emulator.auth import AuthError, authenticate
from devtools.aoai_emulator.errors import (
    ApiError,
    deployment_not_found,
    invalid,
    model_retired,
    rate_limited,
    resource_not_found,
    server_error,
)
from devtools.aoai_emulator.faults import PathKind
from devtools.aoai_emulator.images import CONTENT_TYPES, EXTENSIONS, render_image
from devtools.aoai_emulator.models import (
    LEGACY,
    ImageRequest,
    retirement_of,
    rules_for_model,
    usage,
    validate,
)
from devtools.aoai_emulator.safety import (
    LEGACY_FAILED,
    LEGACY_IMAGE_FILTERED,
    category_results,
    prompt_filter_results,
    prompt_is_filtered,
    prompt_rejected,
)
from devtools.aoai_emulator.state import LEGACY_QUOTA_KEY, EmulatorState, Operation, StoredResult

ENTRY_KEY = web.RequestKey("aoai_entry", dict[str, Any])
TRUNCATE_KEY = web.RequestKey("aoai_truncate", bool)
_DATED_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_OPERATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
FIRST_SYNC_IMAGES_VERSION = "2023-12-01"
LEGACY_API_VERSIONS = frozenset(
    {f"2023-{month:02d}-01-preview" for month in range(6, 11)}  # the :submit API's preview versions
)
V1_API_VERSIONS = frozenset({"preview", "latest"})
DEPLOYMENTS_PREVIEW_VERSION = "preview"  # what the FLUX Image API docs send on the deployments path


class ResetConnection(Exception):
    """Raised by a handler to make the app close the connection without answering."""


def format_seconds(value: float) -> str:
    """`retry-after` value: whole seconds as an integer, fractions kept when configured."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def entry(request: web.Request) -> dict[str, Any]:
    return request[ENTRY_KEY]


class Handlers:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    # ---- shared steps -------------------------------------------------------------------------
    def _authenticate(self, request: web.Request) -> None:
        try:
            kind = authenticate(
                request.headers,
                api_key=self.state.api_key,
                denied_object_ids=self.state.config.denied_object_ids,
            )
        except AuthError as error:
            entry(request)["auth"] = error.kind
            raise
        entry(request)["auth"] = kind

    async def _fault(self, request: web.Request, kind: PathKind, deployment: str | None) -> None:
        fault = self.state.faults.take(kind, deployment)
        if fault is None:
            return
        self.state.counters["faults_fired"] += 1
        entry(request)["fault"] = fault.kind
        if fault.kind == "429":
            raise rate_limited(fault.retry_after, _operation_name(kind), request.query.get("api-version"))
        if fault.kind in ("500", "503"):
            retry = fault.retry_after if fault.kind == "503" and fault.retry_after > 0 else None
            raise server_error(int(fault.kind), retry)
        if fault.kind == "reset":
            raise ResetConnection
        if fault.kind == "hang":
            seconds = fault.hang_seconds if fault.hang_seconds is not None else self.state.config.hang_seconds
            await asyncio.sleep(seconds)
        if fault.kind == "truncated":
            request[TRUNCATE_KEY] = True

    @staticmethod
    async def _json(request: web.Request) -> object:
        raw = await request.read()
        try:
            return json.loads(raw) if raw else {}
        except (ValueError, RecursionError):  # syntax, encoding, digits, depth: Azure answers 400
            raise ApiError(
                400,
                "invalid_json",
                "We could not parse the JSON body of your request. The request body must be valid JSON.",
                type="invalid_request_error",
            ) from None

    def _admit(self, key: str, operation: str, api_version: str | None) -> dict[str, str]:
        """Count one request against `key`'s RPM window; 429 when it is full.

        Answers the rate-limit headers for the success response (none when `key` has no quota); the 429
        carries them too.
        """
        decision = self.state.quota.admit(key, self.state.config.rpm_for(key))
        if decision is None:
            return {}
        if decision.retry_after is not None:
            self.state.counters["throttled"] += 1
            raise rate_limited(decision.retry_after, operation, api_version, decision.headers())
        return decision.headers()

    def _paid(self, request: web.Request, n: int) -> None:
        entry(request).update(paid=True, images=n)
        self.state.counters["paid_generations"] += 1
        self.state.counters["images_generated"] += n

    async def _render(self, image: ImageRequest, skip: int | None) -> list[bytes | None]:
        async def one(index: int) -> bytes | None:
            if index == skip:
                return None
            return await asyncio.to_thread(
                render_image,
                image.prompt,
                index,
                image.width,
                image.height,
                output_format=image.output_format,
                transparent=image.background == "transparent",
                compression=image.output_compression,
                detail=self.state.config.image_detail,
            )

        return list(await asyncio.gather(*(one(i) for i in range(image.n))))

    def _store(self, image: ImageRequest, images: list[bytes | None], start: float) -> str:
        result_id = uuid.uuid4().hex
        self.state.purge_expired()
        self.state.results[result_id] = StoredResult(
            images=images,
            content_type=CONTENT_TYPES[image.output_format],
            extension=EXTENSIONS[image.output_format],
            expires_at=start + self.state.config.result_ttl_seconds,
        )
        return result_id

    @staticmethod
    def _result_url(request: web.Request, result_id: str, index: int, stored: StoredResult) -> str:
        expiry = datetime.fromtimestamp(stored.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        signature = secrets.token_urlsafe(16)
        return (
            f"{request.scheme}://{request.host}/_emulator/results/{result_id}/{index}.{stored.extension}"
            f"?se={expiry}&sp=r&sv=2021-08-06&sr=b&sig={signature}"
        )

    # ---- sync dialects ------------------------------------------------------------------------
    async def deployments_generate(self, request: web.Request) -> web.Response:
        log = entry(request)
        log.update(dialect="deployments", kind="generate")
        api_version = request.query.get("api-version", "")
        dated = bool(_DATED_VERSION.match(api_version)) and api_version >= FIRST_SYNC_IMAGES_VERSION
        if not dated and api_version != DEPLOYMENTS_PREVIEW_VERSION:
            raise resource_not_found()
        deployment = request.match_info["deployment"]
        log["deployment"] = deployment
        self._authenticate(request)
        model = self.state.config.deployments.get(deployment)
        if model is None:
            raise deployment_not_found()
        self._refuse_retired(request, model)
        body = await self._json(request)
        return await self._generate(request, body, deployment, model, api_version)

    async def v1_generate(self, request: web.Request) -> web.Response:
        log = entry(request)
        log.update(dialect="v1", kind="generate")
        api_version = request.query.get("api-version")
        if api_version is not None and api_version not in V1_API_VERSIONS:
            raise ApiError(
                400, "BadRequest", f"API version '{api_version}' is not supported on the /openai/v1 path."
            )
        self._authenticate(request)
        body = await self._json(request)
        deployment = body.get("model") if isinstance(body, dict) else None
        if deployment is None:
            raise invalid("missing_required_parameter", "Missing required parameter: 'model'.", "model")
        if not isinstance(deployment, str):
            raise invalid("invalid_type", "Invalid type for 'model': expected a string.", "model")
        log["deployment"] = deployment
        model = self.state.config.deployments.get(deployment)
        if model is None:
            raise deployment_not_found()
        self._refuse_retired(request, model)
        return await self._generate(request, body, deployment, model, api_version)

    @staticmethod
    def _refuse_retired(request: web.Request, model: str) -> None:
        """A retired model's deployment answers 410 Gone, before faults, validation and quota."""
        retirement = retirement_of(model)
        if retirement is not None:
            entry(request)["model"] = model
            raise model_retired(model, retirement.retired, retirement.replacement)

    async def _generate(
        self, request: web.Request, body: object, deployment: str, model: str, api_version: str | None
    ) -> web.Response:
        config = self.state.config
        log = entry(request)
        log["model"] = model
        await self._fault(request, "generate", deployment)
        rules = rules_for_model(model)
        if rules is None:  # config validation keeps this out; a clear answer if it ever happens
            raise deployment_not_found()
        image = validate(body, rules, model)
        log["n"] = image.n
        if prompt_is_filtered(image.prompt, config.content_filter_words):
            self.state.counters["content_filtered"] += 1
            raise prompt_rejected(config.content_filter_category)
        rate_headers = self._admit(deployment, "Images_Generations", api_version)
        self._paid(request, image.n)
        started = time.time()
        skip = config.filter_output_index
        # The configured latency is the whole generation time: drawing happens within it, as on Azure.
        images, _ = await asyncio.gather(self._render(image, skip), asyncio.sleep(config.latency_seconds))
        result_id = None
        if image.response_format == "url":
            result_id = self._store(image, images, started)
        data = []
        for index, picture in enumerate(images):
            item: dict[str, Any] = {}
            if picture is None:
                self.state.counters["content_filtered"] += 1
                item["content_filter_results"] = category_results(config.content_filter_category)
            elif result_id is not None:
                item["url"] = self._result_url(request, result_id, index, self.state.results[result_id])
            else:
                item["b64_json"] = base64.b64encode(picture).decode("ascii")
            if rules.family != "flux":  # FLUX answers only {"url"}: no filter annotations
                if picture is not None:
                    item["content_filter_results"] = category_results(None)
                item["prompt_filter_results"] = prompt_filter_results()
            if rules.family == "dall-e-3":
                item["revised_prompt"] = _revised(image)
            data.append(item)
        answer: dict[str, Any] = {"created": int(started), "data": data}
        if rules.family == "gpt-image":
            answer["usage"] = usage(image)
        return web.json_response(answer, headers=rate_headers)

    # ---- legacy operations --------------------------------------------------------------------
    def _operation_url(self, request: web.Request, operation: Operation) -> str:
        return (
            f"{request.scheme}://{request.host}/openai/operations/images/{operation.id}"
            f"?api-version={operation.api_version}"
        )

    @staticmethod
    def _legacy_version(request: web.Request) -> str:
        api_version = request.query.get("api-version", "")
        if api_version not in LEGACY_API_VERSIONS:
            raise resource_not_found()
        return api_version

    async def legacy_submit(self, request: web.Request) -> web.Response:
        config = self.state.config
        log = entry(request)
        log.update(dialect="legacy", kind="submit", model="dall-e-2")
        api_version = self._legacy_version(request)
        self._authenticate(request)
        operation_id = request.headers.get("Operation-Id")
        if operation_id is not None and not _OPERATION_ID.match(operation_id):
            raise invalid(
                "invalid_value", "Operation-Id must be 1-128 letters, digits, '.', '_' or '-'.", None
            )
        existing = self.state.operations.get(operation_id) if operation_id else None
        if existing is not None:
            log.update(operation=existing.id, n=existing.request.n)
            return self._accepted(request, existing)
        body = await self._json(request)
        await self._fault(request, "submit", None)
        image = validate(body, LEGACY, "dall-e-2")
        log["n"] = image.n
        rate_headers = self._admit(LEGACY_QUOTA_KEY, "Images_Generations", api_version)
        now = time.time()
        filtered = prompt_is_filtered(image.prompt, config.content_filter_words)
        operation = Operation(
            id=operation_id or str(uuid.uuid4()),
            created=int(now),
            request=image,
            api_version=api_version,
            running_at=now + config.legacy_queue_seconds,
            done_at=now + config.legacy_queue_seconds + config.legacy_latency_seconds,
            prompt_filtered=filtered,
            filter_index=config.filter_output_index,
        )
        self.state.operations[operation.id] = operation
        if not filtered:
            # Drawn while the operation runs, so the images exist when it reports succeeded (as on Azure).
            operation.rendering = asyncio.ensure_future(
                self._render(operation.request, operation.filter_index)
            )
        log["operation"] = operation.id
        self._paid(request, image.n)
        if filtered:
            self.state.counters["content_filtered"] += 1
        return self._accepted(request, operation, rate_headers)

    def _accepted(
        self, request: web.Request, operation: Operation, extra_headers: dict[str, str] | None = None
    ) -> web.Response:
        status = operation.status(time.time())
        headers = {
            **(extra_headers or {}),
            "operation-location": self._operation_url(request, operation),
            "retry-after": format_seconds(self.state.config.retry_after_seconds),
        }
        return web.json_response({"id": operation.id, "status": status}, status=202, headers=headers)

    def _operation(self, request: web.Request) -> Operation:
        operation = self.state.operations.get(request.match_info["operation_id"])
        entry(request)["operation"] = request.match_info["operation_id"]
        if operation is None:
            raise ApiError(404, "NotFound", "The specified operation was not found.")
        entry(request)["n"] = operation.request.n
        return operation

    async def legacy_poll(self, request: web.Request) -> web.Response:
        entry(request).update(dialect="legacy", kind="poll", model="dall-e-2")
        self._legacy_version(request)
        self._authenticate(request)
        operation = self._operation(request)
        await self._fault(request, "poll", None)
        status = operation.status(time.time())
        body: dict[str, Any] = {"created": operation.created, "id": operation.id, "status": status}
        headers: dict[str, str] = {}
        if status in ("notRunning", "running"):
            headers["retry-after"] = format_seconds(self.state.config.retry_after_seconds)
        elif status == "failed":
            body["error"] = {"code": "contentFilter", "message": LEGACY_FAILED}
        elif status == "succeeded":
            stored = await self._legacy_result(operation)
            assert operation.result_id is not None
            data: list[dict[str, Any]] = []
            for index, picture in enumerate(stored.images):
                if picture is None:
                    data.append({"error": {"code": "contentFilter", "message": LEGACY_IMAGE_FILTERED}})
                else:
                    data.append({"url": self._result_url(request, operation.result_id, index, stored)})
            body["expires"] = int(stored.expires_at)
            body["result"] = {"created": int(operation.done_at), "data": data}
        return web.json_response(dict(sorted(body.items())), headers=headers)

    async def _legacy_result(self, operation: Operation) -> StoredResult:
        """Render the operation's images once (concurrent polls wait for the same rendering)."""
        if operation.result_id is None:
            if operation.rendering is None:
                operation.rendering = asyncio.ensure_future(
                    self._render(operation.request, operation.filter_index)
                )
            images = await asyncio.shield(operation.rendering)
            if operation.result_id is None:
                operation.result_id = self._store(operation.request, images, operation.done_at)
        stored = self.state.results.get(operation.result_id)
        if stored is None:  # purged after expiry: the operation's links are gone, like Azure's
            stored = StoredResult([], "image/png", "png", operation.done_at)
        return stored

    async def legacy_delete(self, request: web.Request) -> web.Response:
        entry(request).update(dialect="legacy", kind="cancel", model="dall-e-2")
        self._legacy_version(request)
        self._authenticate(request)
        operation = self._operation(request)
        await self._fault(request, "cancel", None)
        operation.canceled = True
        if operation.result_id is not None:
            self.state.results.pop(operation.result_id, None)
        return web.Response(status=204)

    # ---- result downloads (no auth, like a SAS link) ------------------------------------------
    async def download(self, request: web.Request) -> web.Response:
        entry(request).update(kind="download", auth="none")
        await self._fault(request, "download", None)
        stored = self.state.results.get(request.match_info["result_id"])
        index = int(request.match_info["index"])
        if stored is None or index >= len(stored.images) or stored.images[index] is None:
            return _blob_error(404, "BlobNotFound", "The specified blob does not exist.")
        if request.match_info["ext"] != stored.extension:
            return _blob_error(404, "BlobNotFound", "The specified blob does not exist.")
        if time.time() >= stored.expires_at:
            return _blob_error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Signed expiry time has to be after signed start "
                "time and not in the past.",
            )
        picture = stored.images[index]
        assert picture is not None
        return web.Response(body=picture, content_type=stored.content_type)


def _blob_error(status: int, code: str, message: str) -> web.Response:
    request_id = uuid.uuid4()
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}\nRequestId:{request_id}\n"
        f"Time:{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%S.%f0Z')}</Message></Error>"
    )
    return web.Response(
        status=status, text=xml, content_type="application/xml", headers={"x-ms-error-code": code}
    )


def _operation_name(kind: PathKind) -> str:
    return {"generate": "Images_Generations", "submit": "ImageGenerations_Submit"}.get(
        kind, "ImageGenerations_GetOperationStatus"
    )


def _revised(image: ImageRequest) -> str:
    style = image.style or "vivid"
    return f"A {style} illustration, made of bold abstract shapes, of the following: {image.prompt}"
