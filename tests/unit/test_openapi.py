"""imagegen.edges.openapi: a valid Swagger 2.0 document built from the rules the handlers validate with."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import azure.functions as func
import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV2SpecValidator, validate

from imagegen.core.service import ImageService
from imagegen.domain.errors import ERROR_TYPES_BY_CODE, InvalidRequest
from imagegen.domain.jobs import JobStatus
from imagegen.domain.requests import (
    FLUX_1_KONTEXT_PRO,
    GPT_IMAGE_1_MINI,
    GPT_IMAGE_2,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    REQUEST_FIELDS,
    ModelRules,
    validate_image_request,
)
from imagegen.edges import openapi
from imagegen.edges.context import HandlerContext

CONNECTOR = Path(__file__).resolve().parents[2] / "connector"
MODELS = [GPT_IMAGE_2, GPT_IMAGE_1_MINI, FLUX_1_KONTEXT_PRO]


def document(rules: ModelRules = GPT_IMAGE_2) -> dict[str, Any]:
    return openapi.build_document(rules, host="app.example", scheme="https")


def request_schema(rules: ModelRules) -> dict[str, Any]:
    schema: dict[str, Any] = document(rules)["definitions"]["ImageRequest"]
    return schema


def accepted(body: dict[str, Any], rules: ModelRules) -> bool:
    try:
        validate_image_request(body, rules)
    except InvalidRequest:
        return False
    return True


def fits(body: dict[str, Any], rules: ModelRules) -> bool:
    schema = {**request_schema(rules), "definitions": document(rules)["definitions"]}
    return jsonschema.Draft4Validator(schema).is_valid(body)


@pytest.mark.parametrize("rules", MODELS, ids=lambda r: r.name)
def test_valid_swagger_2(rules: ModelRules) -> None:
    validate(document(rules), cls=OpenAPIV2SpecValidator)


@pytest.mark.parametrize("rules", MODELS, ids=lambda r: r.name)
def test_the_request_schema_has_exactly_the_fields_the_model_takes(rules: ModelRules) -> None:
    def first(allowed: tuple[str, ...], otherwise: str) -> str:
        return allowed[0] if allowed else otherwise

    samples: dict[str, Any] = {
        "n": 1,
        "size": rules.sizes[0],
        "quality": first(rules.qualities, "standard"),
        "background": first(rules.backgrounds, "opaque"),
        "output_format": first(rules.output_formats[::-1], "png"),
        "output_compression": 50,
        "user": "end-user-1",
        "metadata": {"a": "b"},
    }
    properties = request_schema(rules)["properties"]
    assert set(properties) <= {*REQUEST_FIELDS, "callback_url"}
    for name in REQUEST_FIELDS:
        if name == "prompt":
            continue
        body = {"prompt": "a cat", name: samples[name]}
        if name == "output_compression":
            body["output_format"] = first(rules.output_formats[::-1], "jpeg")
        assert (name in properties) == accepted(body, rules), name


@pytest.mark.parametrize("rules", MODELS, ids=lambda r: r.name)
def test_every_value_the_schema_allows_is_accepted_and_its_edges_are_where_validation_says(
    rules: ModelRules,
) -> None:
    properties = request_schema(rules)["properties"]
    for name in ("size", "quality", "background", "output_format"):
        for value in properties.get(name, {}).get("enum", []):
            body = {"prompt": "a cat", name: value}
            assert fits(body, rules) and accepted(body, rules), (name, value)
        if name in properties:
            assert not accepted({"prompt": "a cat", name: "nonsense"}, rules)
    n = properties["n"]
    for value in (n["minimum"], n["maximum"]):
        assert fits({"prompt": "x", "n": value}, rules) and accepted({"prompt": "x", "n": value}, rules)
    for value in (n["minimum"] - 1, n["maximum"] + 1):
        assert not fits({"prompt": "x", "n": value}, rules) and not accepted(
            {"prompt": "x", "n": value}, rules
        )
    longest = "p" * properties["prompt"]["maxLength"]
    assert fits({"prompt": longest}, rules) and accepted({"prompt": longest}, rules)
    assert not fits({"prompt": longest + "p"}, rules) and not accepted({"prompt": longest + "p"}, rules)
    for blank in ("", "   "):
        assert not fits({"prompt": blank}, rules) and not accepted({"prompt": blank}, rules)
    assert not fits({"prompt": "x", "colour": "red"}, rules) and not accepted(
        {"prompt": "x", "colour": "red"}, rules
    )
    assert properties["size"]["default"] == rules.default_size
    metadata = {f"k{i}": "v" * MAX_METADATA_VALUE_CHARS for i in range(MAX_METADATA_KEYS)}
    assert fits({"prompt": "x", "metadata": metadata}, rules) and accepted(
        {"prompt": "x", "metadata": metadata}, rules
    )
    too_many = {**metadata, "one more": "v"}
    assert not fits({"prompt": "x", "metadata": too_many}, rules) and not accepted(
        {"prompt": "x", "metadata": too_many}, rules
    )


def test_error_codes_and_job_states_come_from_the_code() -> None:
    definitions = document()["definitions"]
    assert definitions["ErrorDetail"]["properties"]["code"]["enum"] == sorted(ERROR_TYPES_BY_CODE)
    assert definitions["Job"]["properties"]["status"]["enum"] == [s.value for s in JobStatus]


def test_statuses_of_errors_match_the_error_table() -> None:
    operation = document()["paths"]["/images"]["post"]
    for code in ("invalid_request", "idempotency_key_reused", "content_filtered", "canceled"):
        status = str(ERROR_TYPES_BY_CODE[code].http_status)
        assert code in operation["responses"][status]["description"], code
    for code in (
        "upstream_throttled",
        "upstream_error",
        "upstream_timeout",
        "storage_error",
        "processing_failed",
    ):
        status = str(ERROR_TYPES_BY_CODE[code].http_status)
        assert code in operation["responses"][status]["description"], code


def _walk_properties(schema: dict[str, Any], where: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, item in schema.get("properties", {}).items():
        found.append((f"{where}.{name}", item))
        found.extend(_walk_properties(item, f"{where}.{name}"))
    return found


def test_the_flow_designer_gets_names_labels_and_visibility() -> None:
    doc = document()
    operations = [op for item in doc["paths"].values() for op in item.values()]
    assert sorted(op["operationId"] for op in operations) == [
        "CancelImage",
        "CreateImage",
        "GetApiDescription",
        "GetHealth",
        "GetImage",
    ]
    for operation in operations:
        assert operation["summary"] and operation["description"]
        for parameter in operation["parameters"]:
            assert parameter["x-ms-summary"], parameter["name"]
    for name, definition in doc["definitions"].items():
        for where, item in _walk_properties(definition, name):
            assert item.get("x-ms-summary"), where
    properties = doc["definitions"]["ImageRequest"]["properties"]
    assert properties["prompt"]["x-ms-visibility"] == "important"
    assert {p["x-ms-visibility"] for n, p in properties.items() if n != "prompt"} == {"advanced"}
    assert doc["paths"]["/openapi.json"]["get"]["x-ms-visibility"] == "internal"
    post = doc["paths"]["/images"]["post"]
    headers = {p["name"]: p for p in post["parameters"] if p["in"] == "header"}
    assert set(headers) == {"Prefer", "Idempotency-Key"}
    assert set(post["responses"]["202"]["headers"]) == {"Location", "Retry-After", "Preference-Applied"}
    assert set(doc["paths"]["/images/{id}"]["get"]["responses"]["202"]["headers"]) == {
        "Location",
        "Retry-After",
    }


def test_the_connector_files_are_what_the_script_prints() -> None:
    definition = json.loads((CONNECTOR / "apiDefinition.swagger.json").read_text())
    assert definition == openapi.build_document(GPT_IMAGE_2, host=openapi.DEFAULT_CONNECTOR_HOST)
    properties = json.loads((CONNECTOR / "apiProperties.json").read_text())
    assert properties == openapi.api_properties()
    api_key = properties["properties"]["connectionParameters"]["api_key"]
    assert api_key["type"] == "securestring"
    assert api_key["uiDefinition"]["constraints"]["required"] == "true"


def test_the_script() -> None:
    out = io.StringIO()
    assert openapi.main(["--host", "myapp.azurewebsites.net", "--model", "gpt-image-1-mini"], out.write) == 0
    printed = json.loads(out.getvalue())
    assert printed["host"] == "myapp.azurewebsites.net"
    properties = printed["definitions"]["ImageRequest"]["properties"]
    assert properties["size"]["enum"] == ["1024x1024", "1024x1536", "1536x1024", "auto"]
    assert properties["output_format"]["enum"] == ["png", "jpeg"]
    assert "style" not in properties
    out = io.StringIO()
    openapi.main(["--properties"], out.write)
    assert json.loads(out.getvalue()) == openapi.api_properties()


async def test_serve_takes_host_and_scheme_from_the_request() -> None:
    class FakeSettings:
        model = "flux.1-kontext-pro"
        webhook_secret = None
        public_api_base = None

    def no_service() -> ImageService:
        raise AssertionError("the document needs no service")

    context = HandlerContext(settings=lambda: FakeSettings(), service=no_service)  # type: ignore[arg-type,return-value]
    request = func.HttpRequest("GET", "http://127.0.0.1:7071/api/openapi.json", body=b"")
    response = await openapi.serve(request, context)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    served = json.loads(response.get_body())
    assert (served["host"], served["schemes"], served["basePath"]) == ("127.0.0.1:7071", ["http"], "/api")
    assert served["definitions"]["ImageRequest"]["properties"]["n"]["maximum"] == FLUX_1_KONTEXT_PRO.max_n
    assert "callback_url" not in served["definitions"]["ImageRequest"]["properties"]


def test_callback_url_only_where_webhooks_are_configured() -> None:
    on = openapi.build_document(GPT_IMAGE_2, host="h", webhooks=True)["definitions"]["ImageRequest"]
    off = openapi.build_document(GPT_IMAGE_2, host="h", webhooks=False)["definitions"]["ImageRequest"]
    assert set(on["properties"]) - set(off["properties"]) == {"callback_url"}
    out = io.StringIO()
    openapi.main(["--no-webhooks"], out.write)
    assert "callback_url" not in json.loads(out.getvalue())["definitions"]["ImageRequest"]["properties"]


def test_the_connector_can_offer_entra_sign_in_instead_of_a_function_key() -> None:
    out = io.StringIO()
    assert openapi.main(["--host", "myapp.azurewebsites.net", "--auth", "entra"], out.write) == 0
    document = json.loads(out.getvalue())
    [(name, definition)] = document["securityDefinitions"].items()
    assert definition["type"] == "oauth2" and definition["flow"] == "accessCode"
    assert document["security"] == [{name: []}]
    validate(document, cls=OpenAPIV2SpecValidator)


async def test_with_a_public_api_base_the_served_host_is_never_the_requests() -> None:
    class FakeSettings:
        model = "gpt-image-2"
        webhook_secret = None
        public_api_base = "https://my-app.azurewebsites.net/api"

    def no_service() -> ImageService:
        raise AssertionError("the document needs no service")

    context = HandlerContext(settings=lambda: FakeSettings(), service=no_service)  # type: ignore[arg-type,return-value]
    request = func.HttpRequest("GET", "http://attacker.example/api/openapi.json", body=b"")
    served = json.loads((await openapi.serve(request, context)).get_body())
    assert (served["host"], served["schemes"]) == ("my-app.azurewebsites.net", ["https"])
