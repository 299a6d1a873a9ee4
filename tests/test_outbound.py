"""The SSRF guard of outbound requests (activities/outbound.py): every refused class, the
connect-time check of a name (DNS rebinding), redirects not followed, bounded reads."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from activities.outbound import (
    OutboundPolicy,
    OutboundRefused,
    check_url,
    post,
    refusal,
)
from testkit.app_endpoint import app_endpoint

REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.1.1",
    "fd00:ec2::254",
    "fe80::1",
    "100.64.0.1",
    "224.0.0.1",
    "ff02::1",
    "0.0.0.0",
    "::",
    "240.0.0.1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "fc00::1",
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111", "8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # not https
        "ftp://example.com/hook",
        "https:///nohost",
        "https://user:pw@example.com/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://example.com:0/hook",
        "https://example.com/" + "a" * 3000,
    ],
)
def test_urls_refused_by_their_text(url: str) -> None:
    with pytest.raises(OutboundRefused):
        check_url(url, allow_private=False)


def test_private_urls_pass_when_allowed() -> None:
    assert check_url("http://127.0.0.1:8080/h", allow_private=True).hostname == "127.0.0.1"


async def test_a_name_resolving_to_loopback_is_refused_at_connect_time() -> None:
    """DNS rebinding: the name passes the text check, its address is refused before any
    connection, and the endpoint behind it receives nothing."""
    with app_endpoint() as endpoint:
        port = int(endpoint.url.split(":")[2].split("/")[0])
        url = f"https://rebind.example.com:{port}/hooks"
        check_url(url, allow_private=False)  # the create-time check cannot see it

        async def rebinding(host: str, port: int) -> list[str]:
            return ["127.0.0.1"]

        async with httpx.AsyncClient() as http:
            with pytest.raises(OutboundRefused, match="loopback"):
                await post(http, url, b"{}", {}, OutboundPolicy(), resolver=rebinding)
        assert endpoint.received == []


async def test_one_private_address_among_public_ones_is_refused() -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.1.2.3"]

    async with httpx.AsyncClient() as http:
        with pytest.raises(OutboundRefused, match="private"):
            await post(http, "https://x.example.com/", b"{}", {}, OutboundPolicy(), mixed)


async def test_connects_to_the_checked_address_keeping_the_host_name() -> None:
    """With private addresses allowed, the request goes to the resolved address and the
    endpoint sees the name it was registered with in Host."""
    with app_endpoint() as endpoint:
        port = int(endpoint.url.split(":")[2].split("/")[0])

        async def local(host: str, port: int) -> list[str]:
            return ["127.0.0.1"]

        policy = OutboundPolicy(allow_private=True)
        async with httpx.AsyncClient() as http:
            answer = await post(
                http, f"http://hooks.app.test:{port}/in", b'{"a":1}', {}, policy, local
            )
        assert answer.status_code == 200
        assert endpoint.received[0].headers["host"] == f"hooks.app.test:{port}"
        assert endpoint.received[0].body == b'{"a":1}'


async def test_redirects_are_not_followed() -> None:
    with app_endpoint() as target, app_endpoint() as endpoint:
        endpoint.redirect_to = target.url
        async with httpx.AsyncClient() as http:
            answer = await post(http, endpoint.url, b"{}", {}, OutboundPolicy(allow_private=True))
        assert answer.status_code == 302
        assert target.received == []


async def test_request_and_response_are_bounded() -> None:
    policy = OutboundPolicy(allow_private=True, max_request_bytes=10, max_response_bytes=1)
    with app_endpoint() as endpoint:
        async with httpx.AsyncClient() as http:
            with pytest.raises(OutboundRefused, match="over 10 bytes"):
                await post(http, endpoint.url, b"x" * 11, {}, policy)
            answer = await post(http, endpoint.url, b"{}", {}, policy)
        assert answer.body == b"o"  # "ok" read up to one byte
        assert len(endpoint.received) == 1
