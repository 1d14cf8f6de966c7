from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from imagegen.adapters.webhooks import WebhookSender, sign
from imagegen.domain.callbacks import check_callback_url
from imagegen.domain.errors import InvalidRequest

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def test_signature_verifies_with_an_independent_implementation() -> None:
    body = json.dumps({"id": "job", "status": "succeeded"}).encode()
    now = int(time.time())
    headers = {"webhook-id": "job.succeeded", "webhook-timestamp": str(now)}
    headers["webhook-signature"] = sign(SECRET, "job.succeeded", now, body)
    assert Webhook(SECRET).verify(body, headers) == {"id": "job", "status": "succeeded"}
    headers["webhook-signature"] = sign(SECRET, "job.failed", now, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, headers)


def _resolver(addresses: list[str]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        return addresses

    return resolve


@pytest.mark.parametrize(
    ("url", "addresses"),
    [
        ("https://hooks.example.com/x", ["10.0.0.7"]),
        ("https://hooks.example.com/x", ["93.184.216.34", "127.0.0.1"]),  # any bad address is enough
        ("https://hooks.example.com/x", ["169.254.169.254"]),
        ("https://hooks.example.com/x", ["fd00::1"]),
        ("https://hooks.example.com/x", ["::ffff:192.168.1.1"]),
        ("https://hooks.example.com/x", ["100.64.0.1"]),  # shared address space (carrier NAT)
        ("https://hooks.example.com/x", ["0.0.0.0"]),  # noqa: S104 - the unspecified address, refused
        ("https://hooks.example.com/x", []),
        ("http://hooks.example.com/x", ["93.184.216.34"]),
        ("https://hooks.example.com:99999/x", ["93.184.216.34"]),
        ("https:///nohost", []),
    ],
)
async def test_forbidden_targets(url: str, addresses: list[str]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await check_callback_url(url, allow_local=False, resolver=_resolver(addresses))
    assert caught.value.field == "callback_url"


async def _never_resolve(host: str, port: int) -> list[str]:
    raise AssertionError("a malformed URL must be refused before any name lookup")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://[::1", "'callback_url' must be an absolute https URL"),
        ("https://[::1/x", "'callback_url' must be an absolute https URL"),
        ("https://a..b/x", "'callback_url' has an invalid host name"),
        ("https://" + "a" * 64 + ".example.com/", "'callback_url' has an invalid host name"),
        ("https://.example.com/", "'callback_url' has an invalid host name"),
        ("https://exa mple.com/", "'callback_url' must be an absolute https URL"),
        ("https://exa!mple.com/", "'callback_url' has an invalid host name"),
        ("https://-example.com/", "'callback_url' has an invalid host name"),
        ("https://host\n.example.com/x", "'callback_url' must be an absolute https URL"),
        ("https://example.com/a b", "'callback_url' must be an absolute https URL"),
        ("https://example.com:0/", "'callback_url' has an invalid port"),
    ],
)
async def test_malformed_urls_are_refused_before_resolving(url: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await check_callback_url(url, allow_local=False, resolver=_never_resolve)
    assert (caught.value.field, caught.value.message) == ("callback_url", message)


async def test_an_international_host_name_is_resolved() -> None:
    seen: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        seen.append(host)
        return ["93.184.216.34"]

    url = "https://b\u00fccher.example/x"
    assert await check_callback_url(url, allow_local=False, resolver=resolve) == url
    assert seen == ["b\u00fccher.example"]


async def test_a_public_https_target_is_allowed() -> None:
    url = "https://hooks.example.com/x"
    assert await check_callback_url(url, allow_local=False, resolver=_resolver(["93.184.216.34"])) == url


async def test_the_local_development_flag_allows_only_loopback() -> None:
    loopback = _resolver(["127.0.0.1"])
    assert await check_callback_url("http://localhost:8080/x", allow_local=True, resolver=loopback)
    with pytest.raises(InvalidRequest):
        await check_callback_url("https://h.example/x", allow_local=True, resolver=_resolver(["10.0.0.1"]))
    with pytest.raises(InvalidRequest):
        await check_callback_url(
            "http://h.example/x", allow_local=True, resolver=_resolver(["93.184.216.34"])
        )


async def test_a_name_that_rebinds_to_loopback_after_the_check_is_not_connected() -> None:
    """DNS rebinding: the name passes the check with a public address, then answers loopback when the
    connection resolves it. The connection must use the checked resolution, so nothing connects."""
    connections: list[object] = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer.get_extra_info("peername"))
        writer.close()

    listener = await asyncio.start_server(count, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    answers = iter([["93.184.216.34"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers, ["127.0.0.1"])

    async def no_sleep(seconds: float) -> None:
        return None

    sender = WebhookSender(SECRET, allow_local=False, resolver=rebinding, sleep=no_sleep)
    try:
        # "localhost" really is loopback, so a client that resolves it again itself would connect.
        delivered = await sender.deliver(f"https://localhost:{port}/hook", "job.succeeded", b"{}")
    finally:
        await sender.close()
        listener.close()
        await listener.wait_closed()
    assert delivered is False
    assert connections == []


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirecting_receiver_is_not_followed_nor_retried(status: int) -> None:
    """A 3xx will answer the same way next time: one attempt, no redirect followed, not delivered."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    hits: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=status, headers={"Location": "http://127.0.0.1:9/elsewhere"})

    app = web.Application()
    app.router.add_post("/hook", redirect)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()

    async def no_sleep(seconds: float) -> None:
        return None

    async def loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    sender = WebhookSender(SECRET, allow_local=True, resolver=loopback, sleep=no_sleep)
    try:
        delivered = await sender.deliver(str(server.make_url("/hook")), "job.succeeded", b"{}")
    finally:
        await sender.close()
        await server.close()
    assert delivered is False
    assert hits == ["/hook"]
