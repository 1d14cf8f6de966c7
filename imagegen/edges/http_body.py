"""An HTTP request body as a JSON object (content type, size, syntax), before the request rules."""

from __future__ import annotations

from typing import Any

from imagegen.domain.errors import InvalidRequest
from imagegen.domain.jsontext import NotJson, parse_json
from imagegen.domain.requests import MAX_BODY_BYTES, ImageRequest, ModelRules, validate_image_request


def parse_image_request(body: bytes, content_type: str | None, rules: ModelRules) -> ImageRequest:
    """Validate a POST body for the configured model; raise InvalidRequest naming the field."""
    return validate_image_request(parse_json_object(body, content_type), rules)


def parse_json_object(body: bytes, content_type: str | None) -> dict[str, Any]:
    """A JSON object from a request body, or InvalidRequest (content type, size, syntax)."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise InvalidRequest("Content-Type must be application/json", field="Content-Type")
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequest(f"the body is larger than {MAX_BODY_BYTES} bytes", field="body")
    try:
        document = parse_json(body)
    except NotJson as error:
        raise InvalidRequest(f"the body is not valid JSON ({error.reason})", field="body") from None
    if not isinstance(document, dict):
        raise InvalidRequest("the body must be a JSON object", field="body")
    return document
