"""Handlers called with real azure.functions request objects and a service whose storage fails."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from imagegen.edges.context import HandlerContext
from imagegen.edges.http_api import Preference, create_image, parse_prefer


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, Preference(False, None)),
        ("respond-async", Preference(True, None)),
        ("wait=10", Preference(False, 10.0)),
        ("respond-async, wait=5", Preference(True, 5.0)),
        ('wait="7"', Preference(False, 7.0)),
        ("handling=lenient; x=y, WAIT=3", Preference(False, 3.0)),
        ("wait=soon", Preference(False, None)),
    ],
)
def test_prefer_header(header: str | None, expected: Preference) -> None:
    assert parse_prefer(header) == expected


@pytest.mark.parametrize(
    ("body", "content_type", "field"),
    [
        (b"{", "application/json", "body"),
        (b'{"prompt": "a"}', "text/plain", "Content-Type"),
    ],
)
async def test_bad_requests_answer_400_with_the_field(body: bytes, content_type: str, field: str) -> None:
    request = func.HttpRequest(
        "POST", "https://app.example/api/images", headers={"Content-Type": content_type}, body=body
    )

    class Service:
        rules = None
        settings = None

    context = HandlerContext(settings=lambda: Service.settings, service=lambda: Service())  # type: ignore[arg-type,return-value]
    response = await create_image(request, context)
    assert response.status_code == 400
    document = json.loads(response.get_body())
    assert document["error"]["code"] == "invalid_request"
    assert document["error"]["details"]["field"] == field
