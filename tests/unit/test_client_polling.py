"""generate() follows 202 + Location + Retry-After to the job's end, on both clients.

A Retry-After that is not a finite, non-negative number of seconds (a proxy may rewrite it) means the
client's own default wait, never a crash in sleep.
"""

from __future__ import annotations

import json

import httpx
import pytest
from imagegen_client import AsyncImageGenClient, Job, WaitTimeoutError

from tests.unit.client_fakes import (
    API_BASE,
    JOB_ID,
    ClientDriver,
    ClientKind,
    FakeApi,
    VirtualTime,
    both_clients,
    running,
    succeeded,
)


@both_clients
def test_202_is_followed_through_location_at_the_pace_of_retry_after(kind: ClientKind) -> None:
    api = FakeApi(
        running(retry_after="3", location=f"{API_BASE}/images/{JOB_ID}?poll=1"),
        running(retry_after="1", location="/api/images/relative"),
        succeeded(images=2),
    )
    client = ClientDriver(kind, api)
    seen: list[tuple[str, float]] = []
    job = client.generate("a", on_progress=lambda job, elapsed: seen.append((job.status, elapsed)))
    assert job.status == "succeeded"
    assert len(job.images) == 2
    assert [(r.method, str(r.url)) for r in api.requests] == [
        ("POST", f"{API_BASE}/images"),
        ("GET", f"{API_BASE}/images/{JOB_ID}?poll=1"),
        ("GET", "http://api.test/api/images/relative"),  # a relative Location is resolved
    ]
    assert client.time.slept == [3.0, 1.0]
    assert seen == [("running", 0.0), ("running", 3.0), ("succeeded", 4.0)]


@both_clients
def test_a_202_without_location_polls_the_jobs_own_url(kind: ClientKind) -> None:
    api = FakeApi(running(location=None), succeeded())
    ClientDriver(kind, api).generate("a")
    assert str(api.requests[1].url) == f"{API_BASE}/images/{JOB_ID}"


@both_clients
@pytest.mark.parametrize("retry_after", ["nan", "-1", "inf", "-inf", "soon", "1e400x", ""])
def test_a_retry_after_that_is_not_a_wait_falls_back_to_the_default(
    kind: ClientKind, retry_after: str
) -> None:
    client = ClientDriver(kind, FakeApi(running(retry_after=retry_after), succeeded()))
    job = client.generate("a")
    assert job.status == "succeeded"
    assert client.time.slept == [2.0]  # VirtualTime.sleep also checks that time.sleep would accept it


@both_clients
def test_no_retry_after_means_the_default_wait(kind: ClientKind) -> None:
    client = ClientDriver(kind, FakeApi(running(retry_after=None), succeeded()))
    client.generate("a")
    assert client.time.slept == [2.0]


@both_clients
@pytest.mark.parametrize(("retry_after", "wait"), [("3", 3.0), ("0.5", 0.5), ("0", 0.0)])
def test_a_usable_retry_after_is_honoured(kind: ClientKind, retry_after: str, wait: float) -> None:
    client = ClientDriver(kind, FakeApi(running(retry_after=retry_after), succeeded()))
    client.generate("a")
    assert client.time.slept == [wait]


@both_clients
def test_the_clients_own_timeout_raises_with_the_unfinished_job(kind: ClientKind) -> None:
    api = FakeApi(running(retry_after="2"), running(retry_after="2"))
    client = ClientDriver(kind, api)
    with pytest.raises(WaitTimeoutError) as caught:
        client.generate("a", timeout=3)
    assert caught.value.code == "client_timeout"
    assert isinstance(caught.value.job, Job)
    assert caught.value.job.status == "running"
    assert client.time.slept == [2.0]  # the second wait would end after 4 s > 3 s: no sleep, no call
    assert len(api.requests) == 2


@both_clients
def test_the_post_body_holds_the_prompt_and_only_the_options_given(kind: ClientKind) -> None:
    api = FakeApi(succeeded())
    ClientDriver(kind, api).generate(
        "a paper boat",
        n=2,
        size="1024x1536",
        output_compression=80,
        metadata={"order": "42"},
        callback_url="https://hooks.test/done",
        user="user-7",
    )
    request = api.requests[0]
    assert json.loads(request.content) == {
        "prompt": "a paper boat",
        "n": 2,
        "size": "1024x1536",
        "output_compression": 80,
        "user": "user-7",
        "metadata": {"order": "42"},
        "callback_url": "https://hooks.test/done",
    }
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Prefer"] == "respond-async"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["x-functions-key"] == "the-function-key"
    assert request.headers["User-Agent"].startswith("imagegen-client/")


@both_clients
def test_job_fields_are_read(kind: ClientKind) -> None:
    cost = {"amount": "0.04", "currency": "USD", "prices_as_of": "2026-01-01"}
    usage = {"input_tokens": 10, "output_tokens": 4160}
    api = FakeApi(succeeded(model="gpt-image-2", usage=usage, cost=cost, completed_at="2026-01-01T00:00:09Z"))
    job = ClientDriver(kind, api).generate("a")
    assert (job.model, job.usage, job.cost, job.completed_at) == (
        "gpt-image-2",
        usage,
        cost,
        "2026-01-01T00:00:09Z",
    )
    assert job.done
    assert job.images[0].extension == "png"
    assert job.images[0].width == 1024


async def test_the_async_client_is_awaited_inside_a_running_loop() -> None:
    """The driver runs the async client with asyncio.run; here it runs in pytest-asyncio's loop."""
    virtual = VirtualTime()
    api = FakeApi(running(), succeeded())
    async with AsyncImageGenClient(
        API_BASE, "key", transport=httpx.MockTransport(api), sleep=virtual.async_sleep, clock=virtual.clock
    ) as client:
        job = await client.generate("a")
    assert job.status == "succeeded"
    assert virtual.slept == [2.0]


@both_clients
@pytest.mark.parametrize(
    "location",
    ["https://attacker.test/steal", "http://api.test:8443/api/images/x", "https://api.test/api/images/x"],
)
def test_a_location_on_another_origin_is_never_followed_with_the_key(kind: ClientKind, location: str) -> None:
    """A 202 whose Location points elsewhere (another host, port or scheme) would receive the
    function key: the client refuses to follow it."""
    from imagegen_client import ApiError

    api = FakeApi(running(location=location), succeeded(images=1))
    client = ClientDriver(kind, api)
    with pytest.raises(ApiError, match="outside the API"):
        client.generate("a")
    assert [str(r.url) for r in api.requests] == [f"{API_BASE}/images"]


@both_clients
def test_a_redirect_is_never_followed_with_the_key(kind: ClientKind) -> None:
    from imagegen_client import ApiError

    api = FakeApi(httpx.Response(307, headers={"Location": "https://attacker.test/api/images"}))
    client = ClientDriver(kind, api)
    with pytest.raises(ApiError):
        client.generate("a")
    assert [r.url.host for r in api.requests] == ["api.test"]
