"""Transport failures: idempotent calls are tried again (the POST with the same Idempotency-Key), then
ConnectionFailedError; image links are downloaded without the function key."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from imagegen_client import ApiError, ConnectionFailedError, Image

from tests.unit.client_fakes import (
    BLOB_HOST,
    JOB_ID,
    PNG,
    ClientDriver,
    ClientKind,
    FakeApi,
    both_clients,
    image_json,
    running,
    succeeded,
)


@both_clients
def test_an_idempotency_key_is_sent_and_reused_when_the_post_is_tried_again(kind: ClientKind) -> None:
    api = FakeApi(httpx.ConnectError("refused"), httpx.ReadTimeout("no answer"), succeeded())
    client = ClientDriver(kind, api)
    assert client.generate("a").status == "succeeded"
    posts = api.api_requests()
    assert [request.method for request in posts] == ["POST"] * 3
    keys = {request.headers["Idempotency-Key"] for request in posts}
    assert len(keys) == 1
    assert keys.pop().startswith("client-")
    assert {request.content for request in posts} == {posts[0].content}
    assert client.time.slept == [2.0, 4.0]


@both_clients
def test_a_given_idempotency_key_is_sent_as_it_is(kind: ClientKind) -> None:
    api = FakeApi(succeeded())
    ClientDriver(kind, api).generate("a", idempotency_key="order-42")
    assert api.requests[0].headers["Idempotency-Key"] == "order-42"


@both_clients
def test_each_generate_has_a_key_of_its_own(kind: ClientKind) -> None:
    api = FakeApi(succeeded(), succeeded())
    client = ClientDriver(kind, api)
    client.generate("a")
    client.generate("a")
    assert api.requests[0].headers["Idempotency-Key"] != api.requests[1].headers["Idempotency-Key"]


@both_clients
def test_polls_are_tried_again_too(kind: ClientKind) -> None:
    api = FakeApi(running(retry_after="1"), httpx.RemoteProtocolError("closed"), succeeded())
    client = ClientDriver(kind, api)
    assert client.generate("a").status == "succeeded"
    assert [request.method for request in api.requests] == ["POST", "GET", "GET"]
    assert client.time.slept == [1.0, 2.0]


@both_clients
def test_three_failures_are_a_connection_failed_error(kind: ClientKind) -> None:
    api = FakeApi(*[httpx.ConnectError("refused")] * 3)
    client = ClientDriver(kind, api)
    with pytest.raises(ConnectionFailedError) as caught:
        client.get(JOB_ID)
    assert caught.value.code == "connection_failed"
    assert str(caught.value) == "could not reach http://api.test: ConnectError"
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(api.requests) == 3
    assert client.time.slept == [2.0, 4.0]


@both_clients
def test_a_failure_that_cannot_heal_is_not_tried_again(kind: ClientKind) -> None:
    api = FakeApi(httpx.UnsupportedProtocol("no such scheme"))
    with pytest.raises(ConnectionFailedError):
        ClientDriver(kind, api).get(JOB_ID)
    assert len(api.requests) == 1


@both_clients
def test_download_writes_the_file_through_the_link_without_the_function_key(
    kind: ClientKind, tmp_path: Path
) -> None:
    api = FakeApi()
    target = tmp_path / "new" / "folder" / "boat.png"
    saved = ClientDriver(kind, api).download(Image.from_json(image_json()), target)
    assert saved == target
    assert target.read_bytes() == PNG
    assert sorted(path.name for path in target.parent.iterdir()) == ["boat.png"]  # no .part left
    assert api.requests[0].url.host == BLOB_HOST
    assert "x-functions-key" not in api.requests[0].headers


@both_clients
def test_a_refused_link_leaves_no_file_and_never_shows_its_signature(
    kind: ClientKind, tmp_path: Path
) -> None:
    api = FakeApi(blobs={})
    target = tmp_path / "boat.png"
    with pytest.raises(ApiError) as caught:
        ClientDriver(kind, api).download(Image.from_json(image_json()), target)
    assert caught.value.status == 403
    assert "expired" in caught.value.message
    assert list(tmp_path.iterdir()) == []


class BrokenBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """An image body whose connection drops after the first chunk."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield PNG[:4]
        raise httpx.ReadError("connection reset")

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        yield PNG[:4]
        raise httpx.ReadError("connection reset")


@both_clients
def test_a_download_cut_short_is_a_connection_failed_error_and_leaves_no_file(
    kind: ClientKind, tmp_path: Path
) -> None:
    class CutShort(FakeApi):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(200, stream=BrokenBody())

    target = tmp_path / "boat.png"
    with pytest.raises(ConnectionFailedError) as caught:
        ClientDriver(kind, CutShort()).download(Image.from_json(image_json()), target)
    assert str(caught.value) == f"could not reach https://{BLOB_HOST}: ReadError"
    assert "secret-signature" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []
