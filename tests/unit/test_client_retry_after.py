"""The client follows 202 + Retry-After; a Retry-After that is not a finite, non-negative number of
seconds (a proxy may rewrite it) means its own default wait, never a crash in time.sleep."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from imagegen.client import ImageGenClient

JOB = {
    "id": "6f1c0e0e-0000-4000-8000-000000000001",
    "status": "running",
    "request": {"prompt": "a"},
    "images": [],
}


def _response(status: int, body: dict[str, Any], headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update({"Content-Type": "application/json", **headers})
    return response


class TwoAnswers(requests.Session):
    """202 with the Retry-After under test, then the job succeeded."""

    def __init__(self, retry_after: str) -> None:
        super().__init__()
        self.answers = [
            _response(202, JOB, {"Retry-After": retry_after, "Location": "http://api/images/x"}),
            _response(200, {**JOB, "status": "succeeded"}, {}),
        ]

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        return self.answers.pop(0)


@pytest.mark.parametrize("retry_after", ["nan", "-1", "soon", "1e400x"])
def test_a_retry_after_that_is_not_a_wait_falls_back_to_the_default(retry_after: str) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        time_sleep_would_accept = seconds >= 0  # time.sleep raises on nan and negative values
        assert time_sleep_would_accept
        slept.append(seconds)

    client = ImageGenClient("http://api", "key", session=TwoAnswers(retry_after), sleep=sleep)
    job = client.generate("a")
    assert job.status == "succeeded"
    assert slept == [2.0]


def test_a_usable_retry_after_is_honoured() -> None:
    slept: list[float] = []
    client = ImageGenClient("http://api", "key", session=TwoAnswers("3"), sleep=slept.append)
    client.generate("a")
    assert slept == [3.0]
