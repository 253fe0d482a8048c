"""Where a webhook may be sent (``../shared/spec/access.md``, "No request forgery"): pure functions, no I/O.

An address is allowed iff Python's ``ipaddress`` calls it global — and neither loopback, private, link-local,
multicast, reserved nor unspecified — judged on the address itself *and* on the IPv4 address it carries in an
IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), 6to4 (``2002::/16``), NAT64
(``64:ff9b::/96``) or Teredo form; or iff it is inside one of the operator's ``GUILDGATE_WEBHOOK_ALLOW_NETWORKS``.
The sender checks every address a name resolves to at connection time and connects only to those allowed
(workers/webhook_http.py); ``check_url`` judges a URL when an endpoint is added."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
MAX_URL = 2000


def parse_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    """CIDRs (or single addresses); ValueError naming a bad one."""
    found = []
    for entry in entries:
        try:
            found.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"each entry must be a CIDR like 10.0.0.0/8 or an address, got {entry[:60]!r}") from None
    return tuple(found)


def embedded(address: IPAddress) -> list[IPAddress]:
    """The addresses to judge for ``address``: an IPv4-mapped, IPv4-compatible or NAT64 address is only a wrapper
    (IPv6 calls them reserved), so the IPv4 address inside is judged; a 6to4 or Teredo address is judged itself
    and with the IPv4 addresses it carries."""
    if not isinstance(address, ipaddress.IPv6Address) or address.is_loopback or address.is_unspecified:
        return [address]
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in NAT64 or int(address) >> 32 == 0:  # NAT64, or IPv4-compatible ::a.b.c.d
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    found: list[IPAddress] = [address]
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def _why_not_global(address: IPAddress) -> str | None:
    for name, flag in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return name
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.IPv4Network("100.64.0.0/10"):
        return "shared (100.64.0.0/10)"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "not globally routable"
    return None


def refusal(address: IPAddress | str, *, allow_networks: Sequence[Network] = ()) -> str | None:
    """None when a webhook may connect to ``address``; else why not (e.g. ``"127.0.0.1 is loopback"``)."""
    if isinstance(address, str):
        text = address
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            return f"{text[:60]!r} is not an IP address"
    forms = embedded(address)
    if any(form in network for form in forms for network in allow_networks if form.version == network.version):
        return None
    for form in forms:
        why = _why_not_global(form)
        if why is not None:
            shown = str(address) if form == address else f"{address} (carrying {form})"
            return f"{shown} is {why}: webhooks go only to globally routable addresses"
    return None


def allowed(address: IPAddress | str, *, allow_networks: Sequence[Network] = ()) -> bool:
    return refusal(address, allow_networks=allow_networks) is None


_LEGACY_V4 = re.compile(r"^[0-9a-fA-FxX.]+$")


def literal(host: str) -> IPAddress | None:
    """The address a URL's host spells, in any form a resolver would read as one (``[::1]``, ``127.1``,
    ``2130706433``, ``0x7f.0.0.1``); None for a name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _LEGACY_V4.match(host) and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_url(url: str, *, allow_insecure: bool, allow_networks: Sequence[Network] = ()) -> str | None:
    """None when ``url`` may be an endpoint's; else the reason, naming the problem. A name is not resolved here:
    the sender checks what it resolves to at every connection."""
    if len(url) > MAX_URL:
        return f"url: longer than {MAX_URL} characters"
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        return "url: contains spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"url: not a valid URL ({exc})"
    del port
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "url: must be an https:// URL with a host"
    if parts.scheme == "http" and not allow_insecure:
        return "url: must be https:// (http:// only with GUILDGATE_WEBHOOK_ALLOW_INSECURE=1, for development)"
    if parts.username is not None or parts.password is not None:
        return "url: must not carry a user name or password (they would be shown wherever the URL is)"
    if parts.fragment:
        return "url: must not have a #fragment"
    address = literal(parts.hostname)
    if address is not None and not allow_insecure:
        why = refusal(address, allow_networks=allow_networks)
        if why is not None:
            return f"url: {why} (or add its network to GUILDGATE_WEBHOOK_ALLOW_NETWORKS)"
    return None
