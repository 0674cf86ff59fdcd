"""The SSRF address policy: which destination IPs a webhook may never reach."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from courier.adapters.addresses import forbidden_class, is_forbidden_address, parse_networks

ip = ipaddress.ip_address


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.255", "CGNAT"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("fc00::1", "unique-local"),
        ("fd12:3456:789a::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("240.0.0.1", ""),
        ("255.255.255.255", ""),
        ("192.0.2.10", ""),
        ("198.18.0.1", ""),
        ("192.0.0.8", ""),
        ("2001:db8::1", ""),
        ("::127.0.0.1", ""),
        ("64:ff9b:1::1", "NAT64"),
        # Judged by the IPv4 address embedded in them.
        ("::ffff:10.0.0.1", "private (embedded IPv4 10.0.0.1)"),
        ("::ffff:127.0.0.1", "loopback (embedded IPv4 127.0.0.1)"),
        ("::ffff:169.254.169.254", "link-local (embedded IPv4 169.254.169.254)"),
        ("64:ff9b::a00:1", "private (embedded IPv4 10.0.0.1)"),
        ("64:ff9b::7f00:1", "loopback (embedded IPv4 127.0.0.1)"),
        ("2002:7f00:1::", "loopback (embedded IPv4 127.0.0.1)"),
    ],
)
def test_forbidden(address: str, reason: str) -> None:
    found = is_forbidden_address(ip(address))
    assert found is not None
    assert reason in found


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "100.63.255.255",  # just below CGNAT
        "100.128.0.0",  # just above CGNAT
        "172.32.0.1",  # just above 172.16/12
        "2001:4860:4860::8888",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_allowed(address: str) -> None:
    assert is_forbidden_address(ip(address)) is None


@pytest.mark.parametrize(
    ("address", "networks"),
    [
        ("127.0.0.1", ["127.0.0.0/8"]),
        ("10.1.2.3", ["10.0.0.0/8"]),
        ("10.1.2.3", ["10.1.2.3/32"]),
        ("fd00::5", ["fd00::/8"]),
        ("169.254.169.254", ["169.254.169.254/32"]),
        # A mapped address is admitted through the network of the IPv4 it embeds.
        ("::ffff:10.0.0.1", ["10.0.0.0/8"]),
        ("64:ff9b::a00:1", ["10.0.0.0/8"]),
    ],
)
def test_allowed_networks_admit(address: str, networks: list[str]) -> None:
    assert is_forbidden_address(ip(address)) is not None
    assert is_forbidden_address(ip(address), parse_networks(networks)) is None


def test_allowed_networks_admit_only_their_range() -> None:
    nets = parse_networks(["10.0.0.0/16"])
    assert is_forbidden_address(ip("10.0.255.255"), nets) is None
    assert is_forbidden_address(ip("10.1.0.0"), nets) == "private"
    assert is_forbidden_address(ip("127.0.0.1"), nets) == "loopback"


def test_parse_networks_is_lenient_about_host_bits() -> None:
    assert parse_networks([" 10.1.2.3/8 "]) == (ipaddress.ip_network("10.0.0.0/8"),)


def test_parse_networks_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_networks(["not-a-network"])


def _v4_in(cidr: str) -> st.SearchStrategy[ipaddress.IPv4Address]:
    net = ipaddress.IPv4Network(cidr)
    lo, hi = int(net.network_address), int(net.broadcast_address)
    return st.integers(lo, hi).map(ipaddress.IPv4Address)


_FORBIDDEN_V4_BLOCKS = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
]
_forbidden_v4 = st.one_of(*(_v4_in(block) for block in _FORBIDDEN_V4_BLOCKS))


@given(_v4_in("10.0.0.0/8"))
def test_every_address_in_10_slash_8_is_private(address: ipaddress.IPv4Address) -> None:
    assert is_forbidden_address(address) == "private"


@given(_forbidden_v4)
def test_forbidden_v4_stays_forbidden_through_every_v6_wrapping(
    address: ipaddress.IPv4Address,
) -> None:
    assert is_forbidden_address(address) is not None
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    nat64 = ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(address))
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80))
    for wrapped in (mapped, nat64, sixtofour):
        reason = is_forbidden_address(wrapped)
        assert reason is not None
        assert str(address) in reason


@given(_v4_in("8.0.0.0/7"))
def test_public_v4_is_judged_the_same_when_mapped(address: ipaddress.IPv4Address) -> None:
    assert is_forbidden_address(address) is None
    assert is_forbidden_address(ipaddress.IPv6Address(f"::ffff:{address}")) is None


@given(
    st.integers(
        int(ipaddress.IPv6Address("fc00::")),
        int(ipaddress.IPv6Address("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
    )
)
def test_every_unique_local_v6_is_forbidden(value: int) -> None:
    assert is_forbidden_address(ipaddress.IPv6Address(value)) == "unique-local"


@given(st.integers(0, 2**32 - 1))
def test_any_v4_is_admitted_by_a_network_containing_it(value: int) -> None:
    address = ipaddress.IPv4Address(value)
    assert is_forbidden_address(address, parse_networks([f"{address}/32"])) is None


@given(st.integers(0, 2**128 - 1))
def test_never_raises_on_any_v6(value: int) -> None:
    reason = is_forbidden_address(ipaddress.IPv6Address(value))
    assert reason is None or isinstance(reason, str)


# Every class forbidden_class may name: fixed words, so no address can appear in one.
_CLASSES = frozenset(
    {
        "unspecified",
        "loopback",
        "link-local",
        "multicast",
        "shared address space (CGNAT)",
        "private",
        "reserved",
        "special-purpose",
        "not globally routable",
        "local-use NAT64",
        "unique-local",
        "site-local",
    }
)

_any_ip = st.one_of(
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
    st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
    _forbidden_v4.map(lambda a: ipaddress.IPv6Address(f"::ffff:{a}")),
)


@given(_any_ip)
def test_the_class_is_the_reason_without_any_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    reason = is_forbidden_address(address)
    found = forbidden_class(address)
    if reason is None:
        assert found is None
    else:
        assert found in _CLASSES
        assert reason == found or reason.startswith(f"{found} (embedded IPv4 ")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::a00:1", "private"),
        ("2002:a9fe:a9fe::", "link-local"),
        ("fd00::1", "unique-local"),
        ("8.8.8.8", None),
    ],
)
def test_the_class_of_a_tunnelled_address_names_no_address(
    address: str, expected: str | None
) -> None:
    assert forbidden_class(ip(address)) == expected


def test_the_class_respects_allowed_networks() -> None:
    nets = parse_networks(["127.0.0.0/8"])
    assert forbidden_class(ip("127.0.0.1"), nets) is None
    assert forbidden_class(ip("::ffff:127.0.0.1"), nets) is None
    assert forbidden_class(ip("10.0.0.1"), nets) == "private"
