"""The API described as Swagger 2.0 (OpenAPI 2.0), importable as a Power Automate custom connector.

One source of truth: the request schema is built from the same rules the handlers validate with
(imagegen.domain.requests: REQUEST_FIELDS and the configured model's ModelRules; callback_url from
imagegen.core.intake), the error codes from imagegen.domain.errors, the job states from imagegen.domain.jobs, the
headers from imagegen.edges.http_api. `GET /api/openapi.json` serves it for the configured model, with
`host` and `schemes` taken from the request.

    python -m imagegen.edges.openapi --host <app>.azurewebsites.net > connector/apiDefinition.swagger.json
    python -m imagegen.edges.openapi --properties > connector/apiProperties.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func

from imagegen.core.intake import MAX_IDEMPOTENCY_KEY_CHARS
from imagegen.domain.catalog import rules_for_model
from imagegen.domain.errors import (
    ERROR_TYPES_BY_CODE,
    ContentFiltered,
    IdempotencyKeyReused,
    InvalidRequest,
    JobCanceled,
    JobConflict,
    JobNotFound,
    ProcessingFailed,
    StorageError,
    UpstreamError,
    UpstreamThrottled,
    UpstreamTimeout,
)
from imagegen.domain.jobs import JobStatus
from imagegen.domain.requests import (
    CONTENT_TYPES,
    FIELDS_BY_NAME,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    MAX_USER_CHARS,
    REQUEST_FIELD_TABLE,
    REQUEST_FIELDS,
    ModelRules,
)
from imagegen.domain.settings import ROUTE_PREFIX
from imagegen.edges.context import HandlerContext

API_VERSION = "1.0.0"
KEY_HEADER = "x-functions-key"
SECURITY_NAME = "api_key"  # Power Automate maps the connection parameter `api_key` onto it
DEFAULT_CONNECTOR_HOST = "YOUR-FUNCTION-APP.azurewebsites.net"
JSON = "application/json"
# Body-level field that is not part of the image request itself (imagegen.core.intake.build_submission).
CALLBACK_FIELD = "callback_url"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/definitions/{name}"}


# --- the request body, per model --------------------------------------------------------------


def _request_property(name: str, rules: ModelRules) -> Schema | None:
    """The schema of one body field for this model, or None when the model does not take it."""
    entry = FIELDS_BY_NAME.get(name)
    choices = {item.name: item.choices(rules) for item in REQUEST_FIELD_TABLE if item.choices is not None}
    if name == "prompt":
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": rules.max_prompt_chars,
            "pattern": r"\S",
            "description": f"What to draw (at most {rules.max_prompt_chars} characters for {rules.name}).",
        }
    if name == "n":
        return {
            "type": "integer",
            "format": "int32",
            "minimum": 1,
            "maximum": rules.max_n,
            "default": 1,
            "description": f"How many images to generate (1-{rules.max_n} for {rules.name}).",
        }
    if name == "size" and rules.custom_size is not None:
        rule = rules.custom_size
        return {
            "type": "string",
            "pattern": (r"^(auto|" if "auto" in rules.sizes else r"^(")
            + r"[1-9][0-9]{0,4}x[1-9][0-9]{0,4})$",
            "default": rules.default_size,
            "description": (
                f"{'auto, or ' if 'auto' in rules.sizes else ''}WIDTHxHEIGHT in pixels for {rules.name}: "
                f"{rule.describe()} (e.g. {', '.join(s for s in rules.sizes if s != 'auto')})."
            ),
        }
    if name == "user":
        if not rules.takes_user:
            return None
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_USER_CHARS,
            "description": FIELDS_BY_NAME["user"].description,
        }
    if name in choices:
        allowed = choices[name]
        if not allowed:
            return None
        schema: Schema = {"type": "string", "enum": list(allowed)}
        if name == "size":
            schema["default"] = rules.default_size
        if name == "output_format":
            schema["default"] = "png"
        assert entry is not None
        schema["description"] = entry.description
        return schema
    if name == "output_compression":
        if not rules.supports_compression:
            return None
        return {
            "type": "integer",
            "format": "int32",
            "minimum": 0,
            "maximum": 100,
            "description": FIELDS_BY_NAME["output_compression"].description,
        }
    if name == "metadata":
        return {
            "type": "object",
            "maxProperties": MAX_METADATA_KEYS,
            "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE_CHARS},
            "description": (
                f"Your own labels, kept with the job and returned with it: at most {MAX_METADATA_KEYS} "
                f"keys of 1-{MAX_METADATA_KEY_CHARS} characters, string values of at most "
                f"{MAX_METADATA_VALUE_CHARS} characters."
            ),
        }
    if name == CALLBACK_FIELD:
        return {
            "type": "string",
            "format": "uri",
            "description": (
                "An https URL (not private or loopback) that receives the finished job as a signed "
                "Standard Webhooks POST."
            ),
            "x-ms-summary": "Callback URL",
            "x-ms-visibility": "advanced",
        }
    raise ValueError(f"request field {name!r} has no description in imagegen.edges.openapi")


def image_request_schema(rules: ModelRules, *, webhooks: bool = True) -> Schema:
    """The POST body for this model; callback_url only where webhooks are configured (else 400)."""
    properties: dict[str, Schema] = {}
    for name in (*REQUEST_FIELDS, *((CALLBACK_FIELD,) if webhooks else ())):
        schema = _request_property(name, rules)
        if schema is not None:
            entry = FIELDS_BY_NAME.get(name)
            if entry is not None:  # label and visibility from the one field table
                schema["x-ms-summary"] = entry.summary
                schema["x-ms-visibility"] = entry.visibility
            properties[name] = schema
    return {
        "type": "object",
        "required": ["prompt"],
        "additionalProperties": False,
        "description": (
            f"What to generate with {rules.name}. A field this model does not take, or a value out of "
            "its range, answers 400 naming the field."
        ),
        "properties": properties,
    }


def _without_constraints(schema: Schema) -> Schema:
    """A request field as a job echoes it: same type and labels, no limits (older jobs may predate
    a change of model)."""
    keep = ("type", "format", "description", "x-ms-summary", "additionalProperties")
    echoed = {k: v for k, v in schema.items() if k in keep}
    if "additionalProperties" in echoed:
        echoed["additionalProperties"] = {"type": "string"}
    echoed["x-ms-visibility"] = "advanced"
    return echoed


# --- responses -------------------------------------------------------------------------------


def _summary(text: str, schema: Schema, visibility: str = "advanced") -> Schema:
    return {**schema, "x-ms-summary": text, "x-ms-visibility": visibility}


def definitions(rules: ModelRules, *, webhooks: bool = True) -> dict[str, Schema]:
    request = image_request_schema(rules, webhooks=webhooks)
    echoed_request = {
        name: _without_constraints(schema)
        for name, schema in request["properties"].items()
        if name != CALLBACK_FIELD
    }
    timestamp = {"type": "string", "format": "date-time"}
    error_codes = sorted(ERROR_TYPES_BY_CODE)
    job_properties: dict[str, Schema] = {
        "id": _summary("Job ID", {"type": "string", "format": "uuid"}, "important"),
        "status": _summary(
            "Status",
            {
                "type": "string",
                "enum": [status.value for status in JobStatus],
                "description": "queued and running answer 202; succeeded 200; failed and canceled "
                "answer the status of their error code.",
            },
            "important",
        ),
        "created_at": _summary("Created At", timestamp),
        "updated_at": _summary("Updated At", timestamp),
        "completed_at": _summary("Completed At", timestamp),
        "estimated_start": _summary(
            "Estimated Start",
            {
                **timestamp,
                "description": "While queued for a backend's budget: when the job should start "
                "(a 202 then carries a Retry-After up to it).",
            },
        ),
        "queue_position": _summary(
            "Queue Position",
            {
                "type": "integer",
                "minimum": 1,
                "description": "While queued for a backend's budget: its place in line (1: next).",
            },
        ),
        "request": _summary(
            "Request",
            {
                "type": "object",
                "description": "What was asked for, with the model's defaults filled in.",
                "properties": echoed_request,
            },
        ),
        "images": _summary(
            "Images",
            {"type": "array", "items": _ref("JobImage"), "description": "One entry per stored image."},
            "important",
        ),
        "model": _summary(
            "Model", {"type": "string", "description": "The model that draws (drew) the images."}
        ),
        "usage": _summary("Usage", _ref("Usage")),
        "cost": _summary("Cost", _ref("Cost")),
        "error": _summary("Error", _ref("ErrorDetail")),
        "urls": _summary(
            "URLs",
            {
                "type": "object",
                "properties": {
                    "get": _summary("Job URL", {"type": "string", "format": "uri"}),
                    "cancel": _summary("Cancel URL", {"type": "string", "format": "uri"}),
                },
            },
        ),
    }
    return {
        "ImageRequest": request,
        "Job": {
            "type": "object",
            "description": "An image generation job (GET /images/{id} reads it; SAS links are fresh on "
            "every read).",
            "required": ["id", "status", "created_at", "updated_at", "request", "images"],
            "additionalProperties": False,
            "properties": job_properties,
        },
        "Failure": {
            "type": "object",
            "description": "Either a failed job (the job JSON with `error`) or, when no job exists, "
            "`{error}` alone: `error.code` is in the same place for every failure.",
            "required": ["error"],
            "additionalProperties": False,
            "properties": job_properties,
        },
        "Usage": {
            "type": "object",
            "description": "Azure's token counts for the job, in Azure's shape (absent for models that "
            "count none, such as FLUX).",
            "required": ["input_tokens", "input_tokens_details", "output_tokens", "total_tokens"],
            "additionalProperties": False,
            "properties": {
                "input_tokens": _summary("Input Tokens", {"type": "integer", "format": "int64"}),
                "input_tokens_details": _summary(
                    "Input Token Details",
                    {
                        "type": "object",
                        "required": ["text_tokens", "image_tokens"],
                        "additionalProperties": False,
                        "properties": {
                            "text_tokens": _summary("Text Tokens", {"type": "integer", "format": "int64"}),
                            "image_tokens": _summary("Image Tokens", {"type": "integer", "format": "int64"}),
                        },
                    },
                ),
                "output_tokens": _summary("Output Tokens", {"type": "integer", "format": "int64"}),
                "total_tokens": _summary("Total Tokens", {"type": "integer", "format": "int64"}),
            },
        },
        "Cost": {
            "type": "object",
            "description": "An estimate from the app's price table (or IMAGE_PRICES), computed when the "
            "job succeeded.",
            "required": ["amount", "currency", "prices_as_of"],
            "additionalProperties": False,
            "properties": {
                "amount": _summary("Amount", {"type": "number", "format": "double"}),
                "currency": _summary("Currency", {"type": "string", "pattern": "^[A-Z]{3}$"}),
                "prices_as_of": _summary("Prices As Of", {"type": "string", "format": "date"}),
            },
        },
        "JobImage": {
            "type": "object",
            "required": ["url", "expires_at", "content_type", "width", "height", "bytes", "blob"],
            "additionalProperties": False,
            "properties": {
                "url": _summary(
                    "Image URL",
                    {
                        "type": "string",
                        "format": "uri",
                        "description": "Read-only SAS link to the image (HTTPS in Azure).",
                    },
                    "important",
                ),
                "expires_at": _summary("Link Expires At", timestamp),
                "content_type": _summary(
                    "Content Type", {"type": "string", "enum": sorted(set(CONTENT_TYPES.values()))}
                ),
                "width": _summary("Width", {"type": "integer", "format": "int32"}),
                "height": _summary("Height", {"type": "integer", "format": "int32"}),
                "bytes": _summary("Size in Bytes", {"type": "integer", "format": "int64"}),
                "blob": _summary(
                    "Blob Name",
                    {"type": "string", "description": "{yyyy}/{mm}/{dd}/{job id}/{index}.{ext}"},
                ),
                "revised_prompt": _summary(
                    "Revised Prompt", {"type": "string", "description": "The prompt the model drew."}
                ),
            },
        },
        "ErrorDetail": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": _summary(
                    "Error Code",
                    {
                        "type": "string",
                        "enum": error_codes,
                        "description": "; ".join(
                            f"{code}: {ERROR_TYPES_BY_CODE[code].http_status}" for code in error_codes
                        ),
                    },
                    "important",
                ),
                "message": _summary("Error Message", {"type": "string"}, "important"),
                "details": _summary(
                    "Error Details",
                    {
                        "type": "object",
                        "description": "e.g. `field` for invalid_request, `categories` for content_filtered.",
                    },
                ),
            },
        },
        "Error": {
            "type": "object",
            "description": "An error that has no job (validation, lookup, conflict, storage).",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {"error": _summary("Error", _ref("ErrorDetail"), "important")},
        },
        "Health": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {
                "status": _summary(
                    "Status", {"type": "string", "enum": ["healthy", "unhealthy"]}, "important"
                ),
                "checks": _summary(
                    "Checks",
                    {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "`ok` or what is wrong, per check (settings, storage).",
                    },
                ),
                "api_style": _summary("API Style", {"type": "string"}),
                "model": _summary("Model", {"type": "string"}),
                "auth": _summary("Upstream Auth", {"type": "string"}),
                "webhooks": _summary("Webhooks", {"type": "string"}),
            },
        },
    }


# --- headers and responses ---------------------------------------------------------------------

LOCATION = {
    "type": "string",
    "format": "uri",
    "description": "Absolute URL of the job: GET it (GetImage) until it stops answering 202.",
    "x-ms-summary": "Location",
}
RETRY_AFTER = {
    "type": "integer",
    "format": "int32",
    "description": "Seconds to wait before polling again (or before retrying, on 503).",
    "x-ms-summary": "Retry After",
}
PREFERENCE_APPLIED = {
    "type": "string",
    "description": "The Prefer value honoured: respond-async or wait=N.",
    "x-ms-summary": "Preference Applied",
}


def _response(description: str, schema: str | None, headers: dict[str, Schema] | None = None) -> Schema:
    response: Schema = {"description": description}
    if schema is not None:
        response["schema"] = _ref(schema)
    if headers:
        response["headers"] = headers
    return response


UNAUTHORIZED = _response("Missing or wrong function key (answered by the Functions host, no body).", None)


def _create_image(rules: ModelRules) -> Schema:
    return {
        "operationId": "CreateImage",
        "summary": "Generate an image",
        "description": (
            f"Draws the prompt with {rules.name}, stores every image in Blob Storage and answers "
            "read-only SAS links. Asynchronous request-reply: a job not done in time answers 202 with "
            "Location (its GetImage URL) and Retry-After, which Power Automate and Logic Apps poll on "
            "their own; in flows send Prefer: respond-async (flows give up on a request after 120 s)."
        ),
        "x-ms-visibility": "important",
        "x-ms-long-running-operation": True,
        "x-ms-long-running-operation-options": {"final-state-via": "location"},
        "parameters": [
            {
                "name": "body",
                "in": "body",
                "required": True,
                "schema": _ref("ImageRequest"),
                "x-ms-summary": "Image Request",
            },
            {
                "name": "Prefer",
                "in": "header",
                "required": False,
                "type": "string",
                "description": (
                    "respond-async: answer 202 at once and run the job in the background; wait=N: wait "
                    "up to N seconds (capped by MAX_WAIT_SECONDS); without it the app waits up to "
                    "MAX_WAIT_SECONDS, then answers 202."
                ),
                "x-ms-summary": "Prefer",
                "x-ms-visibility": "advanced",
            },
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_IDEMPOTENCY_KEY_CHARS,
                "description": (
                    "Your key for this request (printable characters): the same key with the same body "
                    f"is the same job, with another body 422 {IdempotencyKeyReused.code}."
                ),
                "x-ms-summary": "Idempotency Key",
                "x-ms-visibility": "advanced",
            },
        ],
        "responses": {
            "200": _response(
                "The job succeeded in time: the images and their links.",
                "Job",
                {"Preference-Applied": PREFERENCE_APPLIED},
            ),
            "202": _response(
                "Accepted, not done yet: poll Location (GetImage) after Retry-After seconds.",
                "Job",
                {"Location": LOCATION, "Retry-After": RETRY_AFTER, "Preference-Applied": PREFERENCE_APPLIED},
            ),
            "400": _response(
                f"{InvalidRequest.code}: the body or a header is invalid for {rules.name} (details.field "
                "names it), or Azure OpenAI refused the request (a failed job).",
                "Failure",
            ),
            "401": UNAUTHORIZED,
            "409": _response(
                f"{JobCanceled.code}: the Idempotency-Key names a job that was canceled.", "Job"
            ),
            "422": _response(
                f"{IdempotencyKeyReused.code} (no job), or {ContentFiltered.code}: the safety system "
                "refused the prompt or an output image (a failed job; categories in error.details).",
                "Failure",
            ),
            "500": _response(
                f"{ProcessingFailed.code}: the job's queue message failed every try (a failed job).", "Job"
            ),
            "502": _response(f"{UpstreamError.code}: Azure OpenAI failed (a failed job).", "Job"),
            "503": _response(
                f"{UpstreamThrottled.code}: still throttled after retries (a failed job, with "
                f"Retry-After), or {StorageError.code}: storage unavailable (no job).",
                "Failure",
                {"Retry-After": RETRY_AFTER},
            ),
            "504": _response(
                f"{UpstreamTimeout.code}: Azure OpenAI took longer than UPSTREAM_TIMEOUT_SECONDS "
                "(a failed job).",
                "Job",
            ),
        },
    }


JOB_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "type": "string",
    "description": "The job's id (from CreateImage).",
    "x-ms-summary": "Job ID",
    "x-ms-visibility": "important",
}


def _get_image() -> Schema:
    return {
        "operationId": "GetImage",
        "summary": "Get an image job",
        "description": (
            "Reads a job, with fresh SAS links on every read. This is the polling target of "
            "CreateImage's 202 Location: 202 while queued or running, then 200 with the images, or the "
            "status of the job's error code."
        ),
        "x-ms-visibility": "advanced",
        "parameters": [JOB_ID],
        "responses": {
            "200": _response("The job succeeded: the images and their links.", "Job"),
            "202": _response(
                "Queued or running: poll again after Retry-After seconds.",
                "Job",
                {"Location": LOCATION, "Retry-After": RETRY_AFTER},
            ),
            "400": _response(
                f"{InvalidRequest.code}: Azure OpenAI refused the job's request (a failed job).", "Job"
            ),
            "401": UNAUTHORIZED,
            "404": _response(f"{JobNotFound.code}: no job with this id.", "Error"),
            "409": _response(f"{JobCanceled.code}: the job was canceled.", "Job"),
            "422": _response(
                f"{ContentFiltered.code}: the safety system refused the job (a failed job).", "Job"
            ),
            "500": _response(f"{ProcessingFailed.code}: the job's queue message failed every try.", "Job"),
            "502": _response(f"{UpstreamError.code}: Azure OpenAI failed.", "Job"),
            "503": _response(
                f"{UpstreamThrottled.code} (a failed job, with Retry-After), or {StorageError.code}: "
                "storage unavailable (no job).",
                "Failure",
                {"Retry-After": RETRY_AFTER},
            ),
            "504": _response(f"{UpstreamTimeout.code}: Azure OpenAI took too long.", "Job"),
        },
    }


def _cancel_image() -> Schema:
    return {
        "operationId": "CancelImage",
        "summary": "Cancel an image job",
        "description": "Cancels a job that is queued or running; a job that has ended answers 409.",
        "x-ms-visibility": "advanced",
        "parameters": [JOB_ID],
        "responses": {
            "200": _response("The job, now canceled.", "Job"),
            "401": UNAUTHORIZED,
            "404": _response(f"{JobNotFound.code}: no job with this id.", "Error"),
            "409": _response(f"{JobConflict.code}: the job has already ended.", "Error"),
            "503": _response(f"{StorageError.code}: storage unavailable.", "Error"),
        },
    }


def _get_health() -> Schema:
    return {
        "operationId": "GetHealth",
        "summary": "Check the service health",
        "description": "Configuration and storage reachability; anonymous, nothing secret.",
        "x-ms-visibility": "advanced",
        "security": [],
        "parameters": [],
        "responses": {
            "200": _response("Healthy.", "Health"),
            "503": _response("Unhealthy: checks says what is wrong.", "Health"),
        },
    }


def _get_api_description() -> Schema:
    return {
        "operationId": "GetApiDescription",
        "summary": "Get this API description",
        "description": "This Swagger 2.0 document, for the configured model.",
        "x-ms-visibility": "internal",
        "security": [],
        "parameters": [],
        "responses": {"200": {"description": "Swagger 2.0 (OpenAPI 2.0).", "schema": {"type": "object"}}},
    }


ENTRA_SECURITY_NAME = "entra"
# Power Automate's "Azure Active Directory" identity provider for custom connectors (OAuth 2.0, code flow).
ENTRA_AUTHORIZATION_URL = "https://login.microsoftonline.com/common/oauth2/authorize"
ENTRA_TOKEN_URL = "https://login.windows.net/common/oauth2/authorize"  # noqa: S105 - a URL, not a secret


def entra_security() -> Schema:
    """The OAuth 2.0 (Microsoft Entra ID) security definition, for an app with App Service
    Authentication (EASY_AUTH): the connector signs its users in instead of holding a function key."""
    return {
        ENTRA_SECURITY_NAME: {
            "type": "oauth2",
            "flow": "accessCode",
            "authorizationUrl": ENTRA_AUTHORIZATION_URL,
            "tokenUrl": ENTRA_TOKEN_URL,
            "scopes": {},
            "description": "Microsoft Entra ID: callers sign in; App Service Authentication validates "
            "the token and the app keeps each caller's jobs apart.",
        }
    }


def build_document(
    rules: ModelRules, *, host: str, scheme: str = "https", webhooks: bool = True, entra: bool = False
) -> Schema:
    """The Swagger 2.0 document for one model (and webhooks on or off), served from `scheme://host/api`;
    `entra`: the OAuth (Entra) security definition instead of the function key."""
    document = _document(rules, host=host, scheme=scheme, webhooks=webhooks)
    if entra:
        document["securityDefinitions"] = entra_security()
        document["security"] = [{ENTRA_SECURITY_NAME: []}]
    return document


def _document(rules: ModelRules, *, host: str, scheme: str, webhooks: bool) -> Schema:
    return {
        "swagger": "2.0",
        "info": {
            "title": "Azure OpenAI Images",
            "version": API_VERSION,
            "description": (
                f"Prompt to image with Azure OpenAI ({rules.name}), stored in Blob Storage, answered as "
                "short-lived read-only SAS links. Long generations follow the asynchronous "
                "request-reply pattern (202 + Location + Retry-After)."
            ),
        },
        "host": host,
        "basePath": ROUTE_PREFIX,
        "schemes": [scheme],
        "consumes": [JSON],
        "produces": [JSON],
        "securityDefinitions": {
            SECURITY_NAME: {
                "type": "apiKey",
                "in": "header",
                "name": KEY_HEADER,
                "description": "A function key (az functionapp keys list). The host also accepts it as "
                "the `code` query parameter.",
            }
        },
        "security": [{SECURITY_NAME: []}],
        "paths": {
            "/images": {"post": _create_image(rules)},
            "/images/{id}": {"get": _get_image(), "delete": _cancel_image()},
            "/health": {"get": _get_health()},
            "/openapi.json": {"get": _get_api_description()},
        },
        "definitions": definitions(rules, webhooks=webhooks),
    }


def api_properties() -> Schema:
    """connector/apiProperties.json: the function key as the connection's API key."""
    return {
        "properties": {
            "connectionParameters": {
                SECURITY_NAME: {
                    "type": "securestring",
                    "uiDefinition": {
                        "displayName": "Function key",
                        "description": "A function key of the function app (sent as x-functions-key)",
                        "tooltip": "Azure portal: the function app, App keys; or az functionapp keys list",
                        "constraints": {"tabIndex": 2, "clearText": False, "required": "true"},
                    },
                }
            },
            "iconBrandColor": "#007ee5",
            "capabilities": [],
            "publisher": "aoai-image-function",
            "stackOwner": "aoai-image-function",
        }
    }


def to_json(document: Schema) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


async def serve(req: func.HttpRequest, context: HandlerContext) -> func.HttpResponse:
    """GET /api/openapi.json: the description for the configured model, host and scheme of this request."""
    settings = context.settings()
    # PUBLIC_API_BASE names the host where it is set (in Azure); the request's Host only locally.
    parts = urlsplit(settings.public_api_base or req.url)
    text = _served_text(settings.model, bool(settings.webhook_secret), parts.netloc, parts.scheme or "https")
    return func.HttpResponse(text, status_code=200, mimetype=JSON)


@lru_cache(maxsize=16)  # bounded: the host comes from the request
def _served_text(model: str, webhooks: bool, host: str, scheme: str) -> str:
    """The document as served, built once per model, host and scheme."""
    document = build_document(rules_for_model(model), host=host, scheme=scheme, webhooks=webhooks)
    return json.dumps(document)


def main(argv: Sequence[str] | None = None, write: Callable[[str], object] = sys.stdout.write) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m imagegen.edges.openapi", description="Print the API's Swagger 2.0 description."
    )
    parser.add_argument("--host", default=DEFAULT_CONNECTOR_HOST, help="e.g. myapp.azurewebsites.net")
    parser.add_argument("--scheme", default="https", choices=("https", "http"))
    parser.add_argument("--model", default="gpt-image-2", help="AZURE_OPENAI_MODEL of the deployment")
    parser.add_argument(
        "--no-webhooks", action="store_true", help="the app has no WEBHOOK_SECRET (no callback_url)"
    )
    parser.add_argument(
        "--properties", action="store_true", help="print connector/apiProperties.json instead"
    )
    parser.add_argument(
        "--auth",
        choices=("function-key", "entra"),
        default="function-key",
        help="how the connector authenticates: a function key, or Microsoft Entra ID (EASY_AUTH)",
    )
    args = parser.parse_args(argv)
    if args.properties:
        write(to_json(api_properties()))
    else:
        rules = rules_for_model(args.model)
        document = build_document(
            rules,
            host=args.host,
            scheme=args.scheme,
            webhooks=not args.no_webhooks,
            entra=args.auth == "entra",
        )
        write(to_json(document))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
