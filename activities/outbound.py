"""Requests to URLs our users give us (webhook endpoints; attachment URLs later), SSRF-safe.

A URL a tenant registers must not let it reach what only our servers can reach: the cloud
metadata service, loopback, the private network. So, by default:

- https only, no user info in the URL;
- the host is resolved here and EVERY address it resolves to must be public (not loopback,
  private, link-local, CGNAT, multicast, unspecified, reserved, metadata; IPv4-mapped,
  NAT64 and 6to4 forms are judged by the IPv4 address they carry);
- the connection goes to the address just checked (Host header and TLS SNI/certificate
  check keep the name), so a DNS answer that changes between check and connect (DNS
  rebinding) cannot redirect it;
- redirects are never followed (a 3xx is a failed delivery), the request body and the
  response read are bounded, and the whole exchange has one deadline.

`allow_private=True` (WEBHOOK_ALLOW_PRIVATE_URLS, development and tests) allows http and any
address. `check_url` is the cheap early check (create/update: a clear 422); `post` checks
again at connect time, which is the check that counts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses to try, in order (tests inject one; DNS otherwise).
Resolver = Callable[[str, int], Awaitable[list[str]]]

CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
MAX_URL_CHARS = 2048


class OutboundRefused(Exception):
    """The URL may not be called (our own words: safe to show the caller and to log)."""


@dataclass(frozen=True)
class OutboundPolicy:
    """What an outbound request may do; the defaults are the safe ones."""

    allow_private: bool = False
    timeout_seconds: float = 15.0
    max_request_bytes: int = 256 * 1024
    max_response_bytes: int = 16 * 1024


@dataclass(frozen=True)
class OutboundResponse:
    """The status and the first `max_response_bytes` of the body (the rest is not read)."""

    status_code: int
    body: bytes


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address DNS (or /etc/hosts) gives `host`, without blocking the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why an address is not a public one we may call, or None if it is."""
    if (inner := _embedded_ipv4(address)) is not None:
        return refusal(inner)
    if address in METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return "a shared (CGNAT) address"
    if address.is_private or address.is_reserved or not address.is_global:
        return "a private or reserved address"
    return None


def check_url(url: str, *, allow_private: bool) -> SplitResult:
    """The URL's parts if it may be called as far as its text tells; OutboundRefused if not.

    A literal IP address is judged here; a name is judged at connect time (`post`).
    """
    if len(url) > MAX_URL_CHARS:
        raise OutboundRefused(f"the URL is longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise OutboundRefused("the URL does not parse") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        raise OutboundRefused(f"the URL must use {' or '.join(allowed)}")
    if not parts.hostname:
        raise OutboundRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused("the URL may not carry a user name or password")
    if port == 0:
        raise OutboundRefused("the URL's port is not valid")
    if not allow_private:
        try:
            literal = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return parts
        if (why := refusal(literal)) is not None:
            raise OutboundRefused(f"the URL's host is {why}")
    return parts


async def resolve_checked(
    parts: SplitResult, *, allow_private: bool, resolver: Resolver
) -> list[IPAddress]:
    """The host's addresses, refused if any of them is not public (unless allowed)."""
    host = parts.hostname
    assert host is not None  # check_url
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [
                ipaddress.ip_address(a.split("%", 1)[0]) for a in await resolver(host, port)
            ]
        except OSError:
            raise OutboundRefused("the URL's host does not resolve") from None
    if not addresses:
        raise OutboundRefused("the URL's host does not resolve")
    if not allow_private:
        # Every address, not only the first: a resolver may rotate through them.
        for address in addresses:
            if (why := refusal(address)) is not None:
                raise OutboundRefused(f"the URL's host resolves to {why}")
    return addresses


async def post(
    http: httpx.AsyncClient,
    url: str,
    content: bytes,
    headers: dict[str, str],
    policy: OutboundPolicy,
    resolver: Resolver = system_resolver,
) -> OutboundResponse:
    """POST `content` to `url` under `policy`: OutboundRefused before any connection if the
    URL or any address of its host is refused; httpx errors (timeouts included) otherwise."""
    if len(content) > policy.max_request_bytes:
        raise OutboundRefused(f"the request body is over {policy.max_request_bytes} bytes")
    parts = check_url(url, allow_private=policy.allow_private)
    addresses = await resolve_checked(parts, allow_private=policy.allow_private, resolver=resolver)
    host = parts.hostname
    assert host is not None
    # Connect to the address checked above; the name stays in Host and in TLS (SNI and the
    # certificate's check), so the peer is the one the name's certificate proves.
    target = httpx.URL(url).copy_with(host=str(addresses[0]))
    request = http.build_request(
        "POST",
        target,
        content=content,
        headers={**headers, "Host": parts.netloc.rpartition("@")[2]},
        extensions={"sni_hostname": host},
    )
    async with asyncio.timeout(policy.timeout_seconds):
        response = await http.send(request, stream=True, follow_redirects=False)
        try:
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk[: policy.max_response_bytes - len(body)]
                if len(body) >= policy.max_response_bytes:
                    break
        finally:
            await response.aclose()
    return OutboundResponse(response.status_code, bytes(body))
