"""The webhook address guard, on the check itself and on the resolver with its answer injected: no connection is
ever attempted here (traffic to these ranges is not allowed from the test machines, even by mistake)."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from guildgate.core.ssrf import check_url, literal, parse_networks, refusal
from guildgate.workers.webhook_http import GuardedResolver, RefusedAddressError, literal_refusal

REFUSED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "::ffff:127.0.0.1": "loopback",  # IPv4-mapped
    "::127.0.0.1": "loopback",  # IPv4-compatible
    "2002:7f00:1::": "loopback",  # 6to4
    "64:ff9b::7f00:1": "loopback",  # NAT64
    "10.0.0.1": "private",
    "172.16.5.4": "private",
    "192.168.1.1": "private",
    "fc00::1": "private",
    "::ffff:10.1.2.3": "private",
    "64:ff9b::a00:1": "private",
    "2002:c0a8:101::1": "private",
    "169.254.169.254": "link-local",
    "fe80::1": "link-local",
    "100.64.0.1": "shared",
    "100.127.255.254": "shared",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "reserved",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
}


@pytest.mark.parametrize(("address", "why"), sorted(REFUSED.items()))
def test_every_non_global_address_is_refused_with_its_reason(address: str, why: str) -> None:
    reason = refusal(address)
    assert reason is not None and why in reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_global_addresses_are_allowed(address: str) -> None:
    assert refusal(address) is None


def test_the_operators_networks_admit_internal_receivers() -> None:
    networks = parse_networks(["10.20.0.0/16", "fd00:1::/32"])
    assert refusal("10.20.3.4", allow_networks=networks) is None
    assert refusal("::ffff:10.20.3.4", allow_networks=networks) is None
    assert refusal("fd00:1::5", allow_networks=networks) is None
    assert refusal("10.21.0.1", allow_networks=networks) is not None
    assert refusal("127.0.0.1", allow_networks=networks) is not None
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        parse_networks(["10.0.0.0/33"])


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[2002:7f00:1::]/hook",
        "https://[64:ff9b::7f00:1]/hook",
        "https://127.1/hook",
        "https://2130706433/hook",
        "https://0x7f.0.0.1/hook",
        "https://0177.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[fe80::1%25eth0]/hook",
    ],
)
def test_a_url_naming_a_non_global_address_in_any_spelling_is_refused(url: str) -> None:
    reason = check_url(url, allow_insecure=False)
    assert reason is not None and reason.startswith("url: ")
    assert "globally routable" in reason


def test_urls_other_reasons_are_named() -> None:
    assert "https://" in str(check_url("http://example.com/hook", allow_insecure=False))
    assert check_url("http://127.0.0.1:8000/hook", allow_insecure=True) is None
    assert "user name" in str(check_url("https://u:p@example.com/", allow_insecure=False))
    assert "https://" in str(check_url("ftp://example.com/", allow_insecure=False))
    assert "control" in str(check_url("https://example.com/a b", allow_insecure=False))
    assert check_url("https://hooks.example.com/guildgate?x=1", allow_insecure=False) is None
    assert literal("hooks.example.com") is None and literal("deadbeef") is None


class Answer(AbstractResolver):
    """Stands in for DNS: answers every name with the given addresses (nothing leaves the process)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("address", sorted(REFUSED))
async def test_a_name_resolving_to_a_refused_address_gets_no_address_to_connect_to(address: str) -> None:
    guarded = GuardedResolver(Answer(address), allow_networks=(), insecure=False)
    with pytest.raises(RefusedAddressError, match="may not reach"):
        await guarded.resolve("hooks.example.com", 443)


async def test_only_the_checked_addresses_are_handed_to_the_connection() -> None:
    guarded = GuardedResolver(
        Answer("10.0.0.7", "8.8.4.4", "::1", "2001:4860:4860::8844"), allow_networks=(), insecure=False
    )
    kept = await guarded.resolve("mixed.example.com", 443, socket.AF_UNSPEC)
    assert [r["host"] for r in kept] == ["8.8.4.4", "2001:4860:4860::8844"]
    internal = GuardedResolver(Answer("10.20.0.9"), allow_networks=parse_networks(["10.20.0.0/16"]), insecure=False)
    assert [r["host"] for r in await internal.resolve("internal.example", 443)] == ["10.20.0.9"]
    anything = GuardedResolver(Answer("127.0.0.1"), allow_networks=(), insecure=True)
    assert [r["host"] for r in await anything.resolve("localhost", 80)] == ["127.0.0.1"]


def test_an_address_literal_is_checked_before_any_connection() -> None:
    # aiohttp connects to an address literal without asking the resolver, so the sender checks it first
    assert "loopback" in str(literal_refusal("https://[::ffff:127.0.0.1]:8443/x", allow_networks=(), insecure=False))
    assert "private" in str(literal_refusal("https://10.9.8.7/x", allow_networks=(), insecure=False))
    assert literal_refusal("https://hooks.example.com/x", allow_networks=(), insecure=False) is None
    assert literal_refusal("http://127.0.0.1:9/x", allow_networks=(), insecure=True) is None
