"""Azure OpenAI's error bodies: `{"error": {"code", "message", "param"?, "type"?, "inner_error"?}}`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(eq=False)
class ApiError(Exception):
    """An error answer; raise it anywhere below a handler and the app turns it into a response."""

    status: int
    code: str | None
    message: str
    param: str | None = None
    type: str | None = None
    inner_error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.type is not None or self.param is not None:
            error["param"] = self.param
            error["type"] = self.type
        if self.inner_error is not None:
            error["inner_error"] = self.inner_error
        return {"error": error}

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers)


def invalid(code: str, message: str, param: str | None) -> ApiError:
    """A 400 for a bad parameter, typed `invalid_request_error` like Azure's OpenAI front end."""
    return ApiError(400, code, message, param=param, type="invalid_request_error")


def resource_not_found() -> ApiError:
    """What Azure answers for an unknown path or a missing/unknown api-version."""
    return ApiError(404, "404", "Resource not found")


def deployment_not_found() -> ApiError:
    return ApiError(
        404,
        "DeploymentNotFound",
        "The API deployment for this resource does not exist. If you created the deployment within "
        "the last 5 minutes, please wait a moment and try again.",
    )


def model_retired(model: str, retired: str, replacement: str) -> ApiError:
    """410 for a deployment of a retired model. Azure documents only the status; this body is ours."""
    return ApiError(
        410,
        "ModelRetired",
        f"The model '{model}' of this deployment was retired on {retired} and no longer serves inference "
        f"requests. Deploy its replacement, {replacement}, and send your requests to that deployment.",
    )


def retry_headers(seconds: float) -> dict[str, str]:
    """`retry-after` (whole seconds, rounded up, at least 1) and `retry-after-ms` (milliseconds).

    Both round up (a client that waits exactly that long finds room), after dropping float noise below
    a microsecond so that 1.5 s is `1500` and not `1501`.
    """
    exact = round(seconds, 6)
    return {
        "retry-after": str(max(1, math.ceil(exact))),
        "retry-after-ms": str(max(1, math.ceil(round(exact * 1000, 3)))),
    }


def rate_limited(
    seconds: float, operation: str, api_version: str | None, headers: dict[str, str] | None = None
) -> ApiError:
    """429 with `retry-after` and `retry-after-ms` (see `retry_headers`), plus any extra `headers`."""
    retry = retry_headers(seconds)
    whole = retry["retry-after"]
    version = api_version or "v1"
    return ApiError(
        429,
        "429",
        f"Requests to the {operation} Operation under Azure OpenAI API version {version} have exceeded "
        f"call rate limit of your current OpenAI S0 pricing tier. Please retry after {whole} seconds. "
        "Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the "
        "default rate limit.",
        headers={**(headers or {}), **retry},
    )


def server_error(status: int, retry_after: float | None = None) -> ApiError:
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers = retry_headers(retry_after)
    if status == 503:
        return ApiError(
            503,
            "ServiceUnavailable",
            "The service is temporarily unable to process your request. Please try again later.",
            headers=headers,
        )
    return ApiError(
        status,
        "InternalServerError",
        "The server had an error while processing your request. Sorry about that!",
        headers=headers,
    )
