"""Every error answer becomes one ApiError subclass per code, on both clients; the client knows
exactly the server's codes, plus the ones it makes itself."""

from __future__ import annotations

import importlib
from types import ModuleType

import httpx
import imagegen_client
import pytest
from imagegen_client import (
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
from imagegen_client.errors import SERVER_ERRORS_BY_CODE

from tests.unit.client_fakes import (
    JOB_ID,
    ClientDriver,
    ClientKind,
    FakeApi,
    both_clients,
    error_answer,
    job_json,
)

# The README's error table: code, HTTP status, the class a caller catches.
ERROR_TABLE: list[tuple[str, int, type[ApiError]]] = [
    ("invalid_request", 400, InvalidRequestError),
    ("unauthorized", 401, AuthenticationError),
    ("not_found", 404, NotFoundError),
    ("conflict", 409, ConflictError),
    ("canceled", 409, JobCanceledError),
    ("idempotency_key_reused", 422, IdempotencyKeyReusedError),
    ("content_filtered", 422, ContentFilteredError),
    ("upstream_throttled", 503, ThrottledError),
    ("caller_limit_reached", 429, CallerLimitReachedError),
    ("upstream_error", 502, UpstreamError),
    ("upstream_timeout", 504, UpstreamTimeoutError),
    ("storage_error", 503, StorageError),
    ("processing_failed", 500, ProcessingFailedError),
    ("internal_error", 500, InternalServerError),
]
# Codes no server answer carries: the client makes these itself.
CLIENT_CODES = {
    "api_error": ApiError,
    "client_timeout": WaitTimeoutError,
    "connection_failed": ConnectionFailedError,
}


def _server_errors_module() -> ModuleType:
    """The app's error module (the client cannot import the app; the test may)."""
    return importlib.import_module("imagegen.domain.errors")


def test_the_client_knows_exactly_the_servers_error_codes() -> None:
    server_codes = set(_server_errors_module().ERROR_TYPES_BY_CODE)
    assert set(SERVER_ERRORS_BY_CODE) == server_codes
    assert {code for code, _, _ in ERROR_TABLE} == server_codes
    assert not set(CLIENT_CODES) & server_codes


def test_every_code_has_one_class_and_every_class_is_exported() -> None:
    classes = [cls for _, _, cls in ERROR_TABLE] + list(CLIENT_CODES.values())
    assert len(set(classes)) == len(classes)
    assert all(cls.code == code for code, _, cls in ERROR_TABLE)
    assert all(cls.code == code for code, cls in CLIENT_CODES.items())
    assert all(issubclass(cls, ApiError) for cls in classes)
    assert {cls.__name__ for cls in classes} <= set(imagegen_client.__all__)


@both_clients
@pytest.mark.parametrize(("code", "status", "error_type"), ERROR_TABLE)
def test_an_error_answer_raises_its_class(
    kind: ClientKind, code: str, status: int, error_type: type[ApiError]
) -> None:
    answer = error_answer(status, code, details={"field": "n"}, headers={"Retry-After": "7"})
    with pytest.raises(error_type) as caught:
        ClientDriver(kind, FakeApi(answer)).generate("a")
    error = caught.value
    assert type(error) is error_type
    assert (error.code, error.status, error.message) == (code, status, f"a {code} happened")
    assert error.details == {"field": "n"}
    assert error.retry_after == 7.0
    assert error.job is None


@both_clients
def test_a_job_that_failed_while_followed_raises_with_the_job(kind: ClientKind) -> None:
    failed = job_json("failed")
    api = FakeApi(
        httpx.Response(202, json=job_json("running"), headers={"Retry-After": "1"}),
        error_answer(503, "upstream_throttled", job=failed, headers={"Retry-After": "30"}),
    )
    with pytest.raises(ThrottledError) as caught:
        ClientDriver(kind, api).generate("busy")
    assert caught.value.retry_after == 30.0
    assert caught.value.job is not None
    assert (caught.value.job.id, caught.value.job.status) == (JOB_ID, "failed")


@both_clients
def test_401_is_an_authentication_error_whatever_its_body(kind: ClientKind) -> None:
    with pytest.raises(AuthenticationError) as caught:
        ClientDriver(kind, FakeApi(httpx.Response(401)), function_key="wrong").generate("a")
    assert (caught.value.code, caught.value.status) == ("unauthorized", 401)


@both_clients
@pytest.mark.parametrize(
    ("status", "body"),
    [(502, b"<html>Bad Gateway</html>"), (500, b'{"error": "a string, not an object"}'), (403, b"[1, 2]")],
    ids=["html", "error-not-an-object", "not-an-object"],
)
def test_an_answer_without_an_error_object_is_a_plain_api_error(
    kind: ClientKind, status: int, body: bytes
) -> None:
    with pytest.raises(ApiError) as caught:
        ClientDriver(kind, FakeApi(httpx.Response(status, content=body))).generate("a")
    assert type(caught.value) is ApiError
    assert caught.value.status == status


@both_clients
def test_an_unknown_code_is_a_plain_api_error_with_its_message(kind: ClientKind) -> None:
    with pytest.raises(ApiError) as caught:
        ClientDriver(kind, FakeApi(error_answer(418, "teapot"))).get(JOB_ID)
    assert type(caught.value) is ApiError
    assert caught.value.message == "a teapot happened"


@both_clients
def test_a_200_without_a_readable_job_is_an_api_error(kind: ClientKind) -> None:
    broken = {**job_json("succeeded"), "images": [{"url": "no other field"}]}
    with pytest.raises(ApiError, match="without a job"):
        ClientDriver(kind, FakeApi(httpx.Response(200, json=broken))).generate("a")


@both_clients
def test_get_returns_a_failed_job_and_raises_for_an_unknown_one(kind: ClientKind) -> None:
    failed = error_answer(502, "upstream_error", job=job_json("failed"))
    job = ClientDriver(kind, FakeApi(failed)).get(JOB_ID)
    assert job.status == "failed"
    assert job.error is not None and job.error["code"] == "upstream_error"
    with pytest.raises(NotFoundError):
        ClientDriver(kind, FakeApi(error_answer(404, "not_found"))).get("unknown")


@both_clients
def test_cancel_returns_the_canceled_job_or_a_conflict(kind: ClientKind) -> None:
    api = FakeApi(httpx.Response(200, json=job_json("canceled")))
    assert ClientDriver(kind, api).cancel(JOB_ID).status == "canceled"
    assert (api.requests[0].method, api.requests[0].headers["x-functions-key"]) == (
        "DELETE",
        "the-function-key",
    )
    with pytest.raises(ConflictError):
        ClientDriver(kind, FakeApi(error_answer(409, "conflict"))).cancel(JOB_ID)
