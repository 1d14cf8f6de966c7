"""GET /api/openapi.json over the dev host: a valid Swagger 2.0 document, every documented status of
every operation really produced (and its body valid against the documented schema), and the
connector/ files in step with what is served."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from openapi_spec_validator import OpenAPIV2SpecValidator, validate

from devtools.stack import LocalStack, start_local_stack
from tests.integration.conftest import FAULT_SETTINGS, StackFactory
from tests.integration.test_durable_jobs import DURABLE_SETTINGS, FAST_DEVHOST, queue
from tests.integration.test_function_app import Api, _api
from tests.integration.waiting import wait_until

CONNECTOR = Path(__file__).resolve().parents[2] / "connector"


def served(api: Api) -> dict[str, Any]:
    response = requests.get(f"{api.base}/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture
def durable(stacks: StackFactory) -> Api:
    """The stack test_durable_jobs uses (shared through the factory): short waits and leases."""
    return _api(
        stacks(setting_overrides=DURABLE_SETTINGS, devhost_env=FAST_DEVHOST), {"latency_seconds": 0.1}
    )


@pytest.fixture
def faults(stacks: StackFactory) -> Api:
    """The stack test_function_app's fault tests use: a 4 s upstream deadline."""
    return _api(stacks(setting_overrides=FAULT_SETTINGS))


@dataclass
class StorageDown:
    """A stack of its own whose Azurite is stopped, and what each operation answered then.

    The SDK's retries make each answer take many seconds, so the four requests run at once."""

    api: Api
    answers: dict[str, requests.Response]


@pytest.fixture(scope="module")
def storage_down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageDown]:
    stack: LocalStack = start_local_stack(tmp_path_factory.mktemp("storage-down"))
    try:
        api = Api(stack)
        assert requests.get(f"{api.base}/health", timeout=30).status_code == 200
        stack.stop_azurite()
        calls: dict[str, Callable[[], requests.Response]] = {
            "CreateImage": lambda: api.post({"prompt": "nowhere to put it"}),
            "GetImage": lambda: _get(api, str(uuid.uuid4())),
            "CancelImage": lambda: _delete(api, str(uuid.uuid4())),
            "GetHealth": lambda: requests.get(f"{api.base}/health", timeout=60),
        }
        with ThreadPoolExecutor(len(calls)) as pool:
            futures = {name: pool.submit(call) for name, call in calls.items()}
            yield StorageDown(api, {name: future.result() for name, future in futures.items()})
    finally:
        stack.stop()


# --- the document --------------------------------------------------------------------------


def test_the_served_document_is_valid_swagger_2_for_the_configured_model(durable: Api) -> None:
    document = served(durable)
    validate(document, cls=OpenAPIV2SpecValidator)
    assert document["swagger"] == "2.0"
    assert document["host"] == durable.base.split("://")[1].removesuffix("/api")
    assert document["basePath"] == "/api"
    assert document["schemes"] == ["http"]
    assert document["securityDefinitions"]["api_key"] == {
        **document["securityDefinitions"]["api_key"],
        "type": "apiKey",
        "in": "header",
        "name": "x-functions-key",
    }
    assert document["paths"]["/health"]["get"]["security"] == []
    request = document["definitions"]["ImageRequest"]["properties"]
    assert "enum" not in request["size"]  # gpt-image-2 takes any size within its rule
    assert "multiples of 16" in request["size"]["description"]
    assert "2048x1152" in request["size"]["description"]
    assert request["output_format"]["enum"] == ["png", "jpeg"]
    assert request["n"]["maximum"] == 10
    assert "style" not in request  # gpt-image models take no style
    assert "callback_url" in request  # this stack has webhooks on


def test_the_document_follows_the_configured_model(stacks: StackFactory) -> None:
    flux = Api(stacks(model="FLUX.1-Kontext-pro"))
    request = served(flux)["definitions"]["ImageRequest"]["properties"]
    assert "enum" not in request["size"] and "auto" not in request["size"]["pattern"]
    assert "multiples of 32" in request["size"]["description"]
    assert "1,048,576" in request["size"]["description"]
    assert request["n"]["maximum"] == 1
    assert request["prompt"]["maxLength"] == 20000
    assert {"quality", "style", "background", "output_format", "output_compression", "user"}.isdisjoint(
        request
    )
    assert "callback_url" not in request  # this stack has no WEBHOOK_SECRET


def test_the_connector_files_agree_with_the_served_document(durable: Api) -> None:
    document = served(durable)
    definition = json.loads((CONNECTOR / "apiDefinition.swagger.json").read_text())
    properties = json.loads((CONNECTOR / "apiProperties.json").read_text())
    ignored = ("host", "schemes")
    assert {k: v for k, v in definition.items() if k not in ignored} == {
        k: v for k, v in document.items() if k not in ignored
    }
    assert definition["schemes"] == ["https"]
    parameter = properties["properties"]["connectionParameters"]["api_key"]
    assert parameter["type"] == "securestring"
    assert set(document["securityDefinitions"]) == {"api_key"}


# --- every documented status, produced ---------------------------------------------------------


def _delete(api: Api, job_id: str, key: str | None = None) -> requests.Response:
    headers = {"x-functions-key": key} if key is not None else api.key_headers
    return requests.delete(f"{api.base}/images/{job_id}", headers=headers, timeout=30)


def _get(api: Api, job_id: str, key: str | None = None) -> requests.Response:
    headers = {"x-functions-key": key} if key is not None else api.key_headers
    return requests.get(f"{api.base}/images/{job_id}", headers=headers, timeout=30)


def _final(api: Api, job_id: str, timeout: float = 30) -> requests.Response:
    """The job's first answer that is not 202 (a Response is falsy from 400 on, hence the list)."""
    [response] = wait_until(lambda: (r := _get(api, job_id)).status_code != 202 and [r], timeout=timeout)
    assert isinstance(response, requests.Response)
    return response


def _running_job(api: Api) -> dict[str, Any]:
    api.emulator("POST", "config", {"latency_seconds": 5})
    job: dict[str, Any] = api.post({"prompt": "a slow dawn"}, headers={"Prefer": "respond-async"}).json()
    return job


def _canceled_post(api: Api) -> tuple[dict[str, Any], str, requests.Response]:
    key = f"openapi-{uuid.uuid4()}"
    api.emulator("POST", "config", {"latency_seconds": 5})
    body = {"prompt": "changed my mind"}
    job = api.post(body, headers={"Prefer": "respond-async", "Idempotency-Key": key}).json()
    assert _delete(api, job["id"]).status_code == 200
    return body, key, api.post(body, headers={"Idempotency-Key": key})


def _poisoned(api: Api) -> tuple[dict[str, Any], str, str]:
    """A job whose queue message was poisoned (what the host does after maxDequeueCount tries)."""
    api.emulator("POST", "config", {"latency_seconds": 12})  # still running when the poison arrives
    key, body = f"openapi-{uuid.uuid4()}", {"prompt": "doomed"}
    job = api.post(body, headers={"Prefer": "wait=1", "Idempotency-Key": key}).json()
    queue(api.stack, "image-jobs-poison").send_message(json.dumps({"job_id": job["id"]}))
    assert _final(api, job["id"]).status_code == 500
    return body, key, job["id"]


def _upstream_refused(api: Api) -> requests.Response:
    """Azure OpenAI answers 400 (here: the deployment is really FLUX-1.1-pro, which draws one image only)."""
    api.emulator("POST", "config", {"deployments": {"gpt-image-2": "FLUX-1.1-pro"}})
    response = api.post({"prompt": "two of them", "n": 2})
    assert response.json()["error"]["code"] == "invalid_request"
    return response


def _fault(api: Api, fault: dict[str, Any], prompt: str) -> requests.Response:
    api.emulator("POST", "faults", fault)
    return api.post({"prompt": prompt})


THROTTLED = {"kind": "429", "count": 20, "retry_after": 2}
BROKEN = {"kind": "500", "count": 20}
HANG = {"kind": "hang", "count": 1, "hang_seconds": 30}


@dataclass(frozen=True)
class Case:
    stack: str  # fixture name: durable, faults or storage_down
    drive: Callable[[Any], requests.Response]


CASES: dict[tuple[str, int, str], Case] = {
    # CreateImage
    ("CreateImage", 200, "done in time"): Case("durable", lambda a: a.post({"prompt": "a lighthouse"})),
    ("CreateImage", 202, "respond-async"): Case(
        "durable", lambda a: a.post({"prompt": "later"}, headers={"Prefer": "respond-async"})
    ),
    ("CreateImage", 400, "validation"): Case("durable", lambda a: a.post({"prompt": "x", "n": 11})),
    ("CreateImage", 400, "upstream refused"): Case("durable", _upstream_refused),
    ("CreateImage", 401, "wrong key"): Case(
        "durable", lambda a: a.post({"prompt": "x"}, headers={"x-functions-key": "wrong"})
    ),
    ("CreateImage", 409, "canceled job's key"): Case("durable", lambda a: _canceled_post(a)[2]),
    ("CreateImage", 422, "content filter"): Case("durable", lambda a: a.post({"prompt": "forbidden art"})),
    ("CreateImage", 422, "idempotency key reused"): Case(
        "durable",
        lambda a: (
            a.post({"prompt": "one"}, headers={"Idempotency-Key": (k := f"openapi-{uuid.uuid4()}")}),
            a.post({"prompt": "two"}, headers={"Idempotency-Key": k}),
        )[1],
    ),
    ("CreateImage", 500, "poisoned job's key"): Case(
        "durable", lambda a: a.post((p := _poisoned(a))[0], headers={"Idempotency-Key": p[1]})
    ),
    ("CreateImage", 502, "upstream 500s"): Case("faults", lambda a: _fault(a, BROKEN, "broken")),
    ("CreateImage", 503, "throttled"): Case("faults", lambda a: _fault(a, THROTTLED, "busy")),
    ("CreateImage", 503, "storage down"): Case("storage_down", lambda d: d.answers["CreateImage"]),
    ("CreateImage", 504, "upstream hangs"): Case("faults", lambda a: _fault(a, HANG, "slow")),
    # GetImage (the polling target)
    ("GetImage", 200, "succeeded"): Case("durable", lambda a: _get(a, a.post({"prompt": "x"}).json()["id"])),
    ("GetImage", 202, "running"): Case("durable", lambda a: _get(a, _running_job(a)["id"])),
    ("GetImage", 400, "upstream refused"): Case(
        "durable", lambda a: _get(a, _upstream_refused(a).json()["id"])
    ),
    ("GetImage", 401, "wrong key"): Case("durable", lambda a: _get(a, str(uuid.uuid4()), key="wrong")),
    ("GetImage", 404, "unknown id"): Case("durable", lambda a: _get(a, str(uuid.uuid4()))),
    ("GetImage", 404, "not a uuid"): Case("durable", lambda a: _get(a, "not-a-job")),
    ("GetImage", 409, "canceled"): Case("durable", lambda a: _get(a, _canceled_post(a)[2].json()["id"])),
    ("GetImage", 422, "content filter"): Case(
        "durable",
        lambda a: _get(a, a.post({"prompt": "forbidden"}, headers={"Prefer": "wait=5"}).json()["id"]),
    ),
    ("GetImage", 500, "poisoned"): Case("durable", lambda a: _get(a, _poisoned(a)[2])),
    ("GetImage", 502, "upstream 500s"): Case(
        "faults", lambda a: _get(a, _fault(a, BROKEN, "b").json()["id"])
    ),
    ("GetImage", 503, "throttled"): Case("faults", lambda a: _get(a, _fault(a, THROTTLED, "t").json()["id"])),
    ("GetImage", 503, "storage down"): Case("storage_down", lambda d: d.answers["GetImage"]),
    ("GetImage", 504, "upstream hangs"): Case("faults", lambda a: _get(a, _fault(a, HANG, "h").json()["id"])),
    # CancelImage
    ("CancelImage", 200, "running job"): Case("durable", lambda a: _delete(a, _running_job(a)["id"])),
    ("CancelImage", 401, "wrong key"): Case("durable", lambda a: _delete(a, str(uuid.uuid4()), key="wrong")),
    ("CancelImage", 404, "unknown id"): Case("durable", lambda a: _delete(a, str(uuid.uuid4()))),
    ("CancelImage", 409, "finished job"): Case(
        "durable", lambda a: _delete(a, a.post({"prompt": "done"}).json()["id"])
    ),
    ("CancelImage", 503, "storage down"): Case("storage_down", lambda d: d.answers["CancelImage"]),
    # GetHealth, GetApiDescription
    ("GetHealth", 200, "healthy"): Case("durable", lambda a: requests.get(f"{a.base}/health", timeout=30)),
    ("GetHealth", 503, "storage down"): Case("storage_down", lambda d: d.answers["GetHealth"]),
    ("GetApiDescription", 200, "anonymous"): Case(
        "durable", lambda a: requests.get(f"{a.base}/openapi.json", timeout=30)
    ),
}


def _operations(document: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        operation["operationId"]: (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def test_every_documented_status_has_a_case_and_every_case_is_documented(durable: Api) -> None:
    documented = {
        (operation_id, int(status))
        for operation_id, (_, _, operation) in _operations(served(durable)).items()
        for status in operation["responses"]
    }
    assert {(operation_id, status) for operation_id, status, _ in CASES} == documented


def check_against_document(document: dict[str, Any], operation_id: str, response: requests.Response) -> None:
    """The status is documented for the operation, the body fits its schema, headers their types."""
    _, _, operation = _operations(document)[operation_id]
    declared = operation["responses"].get(str(response.status_code))
    assert declared is not None, f"{operation_id} answered an undocumented {response.status_code}"
    if "schema" in declared:
        schema = {**declared["schema"], "definitions": document["definitions"]}
        jsonschema.validate(
            response.json(), schema, cls=jsonschema.Draft4Validator, format_checker=jsonschema.FormatChecker()
        )
    else:
        assert response.content == b""
    for name, header in declared.get("headers", {}).items():
        value = response.headers.get(name)
        if value is None:
            continue
        if header["type"] == "integer":
            assert value.isdigit(), f"{name}: {value!r}"
        if header.get("format") == "uri":
            assert value.startswith(("http://", "https://")), f"{name}: {value!r}"


@pytest.mark.parametrize(
    ("operation_id", "status", "variant"), list(CASES), ids=[f"{o}-{s}-{v}" for o, s, v in CASES]
)
def test_each_documented_status_is_produced_and_fits_its_schema(
    request: pytest.FixtureRequest, durable: Api, operation_id: str, status: int, variant: str
) -> None:
    document = served(durable)
    case = CASES[(operation_id, status, variant)]
    target = request.getfixturevalue(case.stack)
    api: Api = target.api if isinstance(target, StorageDown) else target
    started = time.monotonic()
    response = case.drive(target)
    assert response.status_code == status, (response.status_code, response.text[:500])
    check_against_document(document, operation_id, response)
    if status == 202:
        assert response.headers["Location"] == f"{api.base}/images/{response.json()['id']}"
        assert int(response.headers["Retry-After"]) >= 1
    if variant == "throttled":
        assert response.headers["Retry-After"] == "2"
    assert time.monotonic() - started < 60
