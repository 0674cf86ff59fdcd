"""Target: what a destination URL becomes on the wire (pure functions, no sockets)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from courier.adapters.http1 import Target

UA = "courier-webhooks/test"


def head_lines(target: Target) -> list[str]:
    return target.head.decode().split("\r\n")[:-1]


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "request_line", "host_header"),
    [
        ("http://example.com/hook", "example.com", 80, False, "POST /hook HTTP/1.1", "example.com"),
        ("https://example.com", "example.com", 443, True, "POST / HTTP/1.1", "example.com"),
        (
            "https://example.com:8443/a/b?x=1&y=%20",
            "example.com",
            8443,
            True,
            "POST /a/b?x=1&y=%20 HTTP/1.1",
            "example.com:8443",
        ),
        ("http://[::1]:9000/h", "::1", 9000, False, "POST /h HTTP/1.1", "[::1]:9000"),
        ("http://10.0.0.1:80/h#frag", "10.0.0.1", 80, False, "POST /h HTTP/1.1", "10.0.0.1"),
    ],
)
def test_a_url_becomes_its_origin_and_request_head(
    url: str, host: str, port: int, tls: bool, request_line: str, host_header: str
) -> None:
    target = Target.for_post(URL(url), UA)
    assert target.origin == (host, port, tls)
    assert head_lines(target) == [request_line, f"host: {host_header}", f"user-agent: {UA}"]


def test_user_info_becomes_basic_credentials() -> None:
    target = Target.for_post(URL("https://alice:s%3Acret@example.com/h"), UA)
    token = base64.b64encode(b"alice:s:cret").decode()
    assert f"authorization: Basic {token}" in head_lines(target)


@pytest.mark.parametrize("url", ["ftp://example.com/", "http:///nohost", "/relative"])
def test_urls_without_an_http_origin_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        Target.for_post(URL(url), UA)


def test_the_request_carries_headers_length_and_body() -> None:
    target = Target.for_post(URL("http://example.com/hook"), UA)
    message = target.request({"webhook-id": "msg_1", "content-type": "application/json"}, b"{}")
    head, _, body = message.partition(b"\r\n\r\n")
    assert body == b"{}"
    assert head.split(b"\r\n")[3:] == [
        b"webhook-id: msg_1",
        b"content-type: application/json",
        b"content-length: 2",
    ]


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


@given(value=_text)
def test_no_header_value_can_add_a_line_to_the_head(value: str) -> None:
    target = Target.for_post(URL("http://example.com/hook"), UA)
    if "\r" in value or "\n" in value:
        with pytest.raises(ValueError):
            target.request({"webhook-id": value}, b"")
        return
    head = target.request({"webhook-id": value}, b"").removesuffix(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert len(lines) == 5  # request line, host, user-agent, webhook-id, content-length
    assert lines[3] == f"webhook-id: {value}".encode()


def test_a_trailing_dot_is_resolved_but_never_named() -> None:
    target = Target.for_post(URL("https://hooks.example.com.:8443/h"), UA)
    assert (target.host, target.server_name) == ("hooks.example.com.", "hooks.example.com")
    assert "host: hooks.example.com:8443" in head_lines(target)
