"""Which DNS server entries the resolver (and COURIER_DNS_SERVERS) accepts."""

from __future__ import annotations

import pytest

from courier.nameservers import check_nameserver
from courier.settings import Settings


@pytest.mark.parametrize(
    "entry", ["10.0.0.53", "10.0.0.53:5353", "::1", "fd00::53", "[::1]:53", " 9.9.9.9 "]
)
def test_an_ip_with_an_optional_port_is_accepted(entry: str) -> None:
    assert check_nameserver(entry) == entry.strip()


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "dns.example",
        "10.0.0.53:",
        "10.0.0.53:0",
        "10.0.0.53:65536",
        "10.0.0.53:x",
        "[::1]",
        "[::1]53",
        "[10.0.0.53]:53",
        "::1:53:",
        "10.0.0.256",
        "1.2.3.4:53:53",
    ],
)
def test_anything_else_is_refused_naming_the_entry(entry: str) -> None:
    with pytest.raises(ValueError, match="is not an IP address"):
        check_nameserver(entry)


def test_the_setting_is_a_comma_separated_list() -> None:
    settings = Settings(dns_servers="10.0.0.53, [fd00::53]:5353,")
    assert settings.dns_server_list() == ["10.0.0.53", "[fd00::53]:5353"]
    assert Settings().dns_server_list() == []


def test_a_bad_entry_in_the_setting_names_the_variable() -> None:
    with pytest.raises(ValueError, match=r"^COURIER_DNS_SERVERS: 'dns\.example' is not"):
        Settings(dns_servers="10.0.0.53,dns.example").dns_server_list()
