"""Where a callback may go: the SSRF guard for `callback_url`, checked when a job is submitted.

Only https, and never to loopback, private, link-local (169.254.169.254, the instance metadata
endpoint), multicast, reserved or unspecified addresses: every address the name resolves to is
checked (and checked again by the webhook sender before each delivery, since DNS can change).
ALLOW_LOCAL_WEBHOOKS (local development only) also allows loopback, over http or https.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from imagegen.domain.errors import InvalidRequest

MAX_URL_CHARS = 2048

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_host(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def is_forbidden(address: str, allow_loopback: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.is_loopback:
        return not allow_loopback
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address carried inside IPv6 (mapped, 6to4 2002::/16, Teredo 2001::/32) is judged
        # as that IPv4 address, and a tunnel is never a way in.
        if ip.ipv4_mapped is not None:
            return is_forbidden(str(ip.ipv4_mapped), allow_loopback)
        if ip.sixtofour is not None or ip.teredo is not None:
            return True
    return (
        ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


_HOST_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def _is_host_name(host: str) -> bool:
    """A DNS name (international names in their IDNA form): labels of 1-63 letters, digits, hyphens."""
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.lower().removesuffix(".").split(".")
    return len(ascii_host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


async def check_callback_url(url: object, *, allow_local: bool, resolver: Resolver = resolve_host) -> str:
    """Refuse a callback target we must never call; InvalidRequest names `callback_url`."""
    field = "callback_url"
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise InvalidRequest(
            f"'callback_url' must be an absolute https URL of at most {MAX_URL_CHARS} characters", field=field
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed [IPv6 literal
        host = None
    # urlsplit quietly drops tabs and newlines; the URL we would call must not hold them either.
    unprintable = any(not character.isprintable() or character.isspace() for character in url)
    if host is None or unprintable or parts.scheme not in ("https", "http"):
        raise InvalidRequest("'callback_url' must be an absolute https URL", field=field)
    if parts.username or parts.password:
        raise InvalidRequest("'callback_url' must not carry credentials", field=field)
    try:
        explicit_port = parts.port
    except ValueError:
        explicit_port = 0
    if explicit_port == 0:
        raise InvalidRequest("'callback_url' has an invalid port", field=field)
    port = explicit_port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        if not _is_host_name(host):
            raise InvalidRequest("'callback_url' has an invalid host name", field=field) from None
        try:
            addresses = await resolver(host, port)
        except OSError:
            raise InvalidRequest("'callback_url' names a host that does not resolve", field=field) from None
    if not addresses:
        raise InvalidRequest("'callback_url' names a host that does not resolve", field=field)
    all_loopback = all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)
    if parts.scheme != "https" and not (allow_local and all_loopback):
        raise InvalidRequest("'callback_url' must use https", field=field)
    if any(is_forbidden(address, allow_local) for address in addresses):
        raise InvalidRequest(
            "'callback_url' points at a loopback, private, link-local or reserved address", field=field
        )
    return url
