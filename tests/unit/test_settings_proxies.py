"""COURIER_FORWARDED_ALLOW_IPS: addresses, networks or `*`; anything else names itself."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from courier.settings import Settings


@pytest.mark.parametrize("value", ["", "127.0.0.1", "*", "10.0.0.1, 192.0.2.0/24", "::1,fd00::/8"])
def test_addresses_networks_and_star_are_accepted(value: str) -> None:
    assert Settings(forwarded_allow_ips=value).forwarded_allow_ips == value


def test_the_default_trusts_a_proxy_on_the_same_host() -> None:
    assert Settings().forwarded_allow_ips == "127.0.0.1"


@pytest.mark.parametrize("entry", ["proxy.internal", "10.0.0.256", "10.0.0.0/33"])
def test_anything_else_is_refused_naming_the_entry(entry: str) -> None:
    with pytest.raises(ValidationError, match=f"forwarded_allow_ips: '{entry}'"):
        Settings(forwarded_allow_ips=f"127.0.0.1,{entry}")
