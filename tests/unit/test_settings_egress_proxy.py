"""COURIER_EGRESS_PROXY: `http://host:port`, or one line saying what is wrong with it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from courier.adapters.http1 import Proxy
from courier.settings import Settings, describe_invalid


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("http://127.0.0.1:3128", "127.0.0.1:3128"),
        ("http://proxy.internal:8888/", "proxy.internal:8888"),
        (" http://[::1]:3128 ", "[::1]:3128"),
    ],
)
def test_an_http_url_with_a_port_is_a_proxy(value: str, name: str) -> None:
    assert Settings(egress_proxy=value).egress_proxy == value.strip()
    assert Proxy.parse(value).name == name


def test_unset_or_empty_means_no_proxy() -> None:
    assert Settings().egress_proxy is None
    assert Settings(egress_proxy="  ").egress_proxy is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("https://proxy:3128", "expected http://host:port"),
        ("http://proxy", "expected http://host:port"),
        ("proxy:3128", "expected http://host:port"),
        ("http://user:pw@proxy:3128", "credentials in the proxy URL are not supported"),
        ("http://proxy:3128/path", "without a path or query"),
    ],
)
def test_anything_else_is_one_line_naming_the_variable(value: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(egress_proxy=value)
    (line,) = describe_invalid(caught.value)
    assert line.startswith("invalid setting COURIER_EGRESS_PROXY: ")
    assert reason in line
    assert value not in line  # a proxy URL may carry a password: never echoed
