"""Which destination addresses a webhook may never reach (the SSRF policy), as pure functions.

Kept free of I/O so the policy can be tested exhaustively and reused by anything that
connects on a tenant's behalf.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# ipaddress classifies 100.64/10 as neither private nor global, so it needs naming.
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
# RFC 8215: a translator inside the operator's own network, so never treated as public.
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
# IANA special-purpose blocks that older ipaddress tables (3.11.x) still call global.
_SPECIAL_PURPOSE: tuple[IPNetwork, ...] = (
    ipaddress.IPv4Network("192.0.0.0/24"),
    ipaddress.IPv6Network("3fff::/20"),
    ipaddress.IPv6Network("5f00::/16"),
)


def parse_networks(networks: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse CIDR strings once, up front; `strict=False` so "10.1.2.3/8" means 10/8."""
    return tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a v6 address actually leads to, for the forms that tunnel to one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    # 6to4 packets are relayed to the embedded v4 host, so 2002:7f00:1:: reaches 127.0.0.1.
    return ip.sixtofour


def _admitted(ip: IPAddress, allowed_networks: Sequence[IPNetwork]) -> bool:
    # Mixed-version membership is simply False, so no version filtering is needed.
    return any(ip in net for net in allowed_networks)


def is_forbidden_address(ip: IPAddress, allowed_networks: Sequence[IPNetwork] = ()) -> str | None:
    """Why connecting to `ip` is refused (e.g. "private"), or None when it is allowed.

    An address inside `allowed_networks` is always allowed. IPv4-mapped, NAT64 and
    6to4 addresses are judged by the IPv4 address they embed, because that is the host
    the packets finally reach.
    """
    found = _forbidden(ip, allowed_networks)
    if found is None:
        return None
    reason, embedded = found
    return reason if embedded is None else f"{reason} (embedded IPv4 {embedded})"


def forbidden_class(ip: IPAddress, allowed_networks: Sequence[IPNetwork] = ()) -> str | None:
    """`is_forbidden_address` without naming any address: only the class ("loopback").

    For texts a tenant reads about a name it does not control the answers of: what an
    internal name resolves to is not the tenant's business.
    """
    found = _forbidden(ip, allowed_networks)
    return None if found is None else found[0]


def _forbidden(
    ip: IPAddress, allowed_networks: Sequence[IPNetwork]
) -> tuple[str, ipaddress.IPv4Address | None] | None:
    """The refusal's class and, for tunnelling forms, the IPv4 address that decided it."""
    if allowed_networks and _admitted(ip, allowed_networks):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id is not None:
            # A zone id only makes sense for link-local destinations; judge the bare address.
            ip = ipaddress.IPv6Address(int(ip))
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            if allowed_networks and _admitted(embedded, allowed_networks):
                return None
            reason = _common_reason(embedded)
            return None if reason is None else (reason, embedded)
        if ip in _NAT64_LOCAL_USE:
            return "local-use NAT64", None
        if ip in _UNIQUE_LOCAL:
            return "unique-local", None
        if ip.is_site_local:
            return "site-local", None
    reason = _common_reason(ip)
    return None if reason is None else (reason, None)


def _common_reason(ip: IPAddress) -> str | None:
    # Most specific names first so the refusal message tells an operator what they hit.
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared address space (CGNAT)"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if any(ip in net for net in _SPECIAL_PURPOSE):
        return "special-purpose"
    # Catches the special-purpose blocks (documentation, benchmarking, ...) the
    # named predicates above do not cover, whatever this Python's tables contain.
    if not ip.is_global:
        return "not globally routable"
    return None
