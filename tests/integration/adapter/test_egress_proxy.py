"""COURIER_EGRESS_PROXY: webhook connections go through a real tinyproxy on loopback with
CONNECT to the address courier resolved and vetted itself; TLS runs inside the tunnel
with the destination's name; a proxy failure is retryable and names the proxy, not the
destination. Every test runs on both event loops (see conftest.py)."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from yarl import URL

from courier.adapters.base import DeliveryRequest
from courier.adapters.http1 import Http1Client, Proxy, Target
from courier.adapters.webhook import WebhookAdapter
from courier.signing import generate_secret
from tests.integration.adapter.test_http1_tls import tls_server  # a server for "localhost"
from tests.support.dns_server import DnsServer
from tests.support.receiver import Receiver
from tests.support.tinyproxy import Tinyproxy, free_port, tinyproxy

__all__ = ["tls_server"]

SECRET = generate_secret()
BODY = json.dumps({"type": "invoice.paid"}).encode()


def request(url: str) -> DeliveryRequest:
    return DeliveryRequest(url=url, event_id="msg_proxy", body=BODY, secrets=(SECRET,), timeout_s=5)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Tinyproxy]:
    with tinyproxy(tmp_path) as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as rx:
        yield rx


async def test_a_delivery_goes_through_the_proxy_to_the_vetted_address(
    proxy: Tinyproxy, receiver: Receiver
) -> None:
    port = URL(receiver.url()).port
    async with DnsServer({"hooks.test": "127.0.0.1"}) as dns:
        adapter = WebhookAdapter(
            allow_private=False,
            allowed_networks=["127.0.0.0/8"],
            dns_servers=[dns.address],
            egress_proxy=proxy.url,
        )
        try:
            first = await adapter.deliver(request(f"http://hooks.test:{port}/in"))
            second = await adapter.deliver(request(f"http://hooks.test:{port}/in"))
        finally:
            await adapter.close()
    assert (first.outcome, first.http_status) == ("succeeded", 200)
    assert (second.outcome, second.http_status) == ("succeeded", 200)
    hits = receiver.hits("/in")
    assert len(hits) == 2 and hits[0].body == BODY
    assert hits[0].headers["Host"] == f"hooks.test:{port}"  # the request names the host
    # one tunnel, kept alive, to the address courier resolved, never the name
    assert proxy.connects() == [f"127.0.0.1:{port}"]


async def test_the_address_guard_holds_behind_the_proxy(proxy: Tinyproxy) -> None:
    async with DnsServer({"internal.test": "127.0.0.1"}) as dns:
        adapter = WebhookAdapter(dns_servers=[dns.address], egress_proxy=proxy.url)
        try:
            named = await adapter.deliver(request("http://internal.test:8080/x"))
            literal = await adapter.deliver(request("http://10.0.0.1/x"))
        finally:
            await adapter.close()
    for result in (named, literal):
        assert result.outcome == "permanent_failure"
        assert (result.error_summary or "").startswith("destination address not allowed")
    assert proxy.connects() == []  # the proxy was never asked


async def test_a_proxy_that_refuses_connections_is_a_retryable_failure_naming_it(
    receiver: Receiver,
) -> None:
    closed = free_port()
    adapter = WebhookAdapter(allow_private=True, egress_proxy=f"http://127.0.0.1:{closed}")
    try:
        result = await adapter.deliver(request(receiver.url("/in")))
    finally:
        await adapter.close()
    summary = result.error_summary or ""
    assert result.outcome == "retryable_failure" and result.http_status is None
    assert summary.startswith(f"egress proxy 127.0.0.1:{closed}: cannot connect")
    assert str(URL(receiver.url()).port) not in summary.replace(str(closed), "")
    assert receiver.hits() == []


async def test_a_proxy_that_will_not_open_the_tunnel_is_named_with_its_answer(
    tmp_path: Path, receiver: Receiver
) -> None:
    with tinyproxy(tmp_path, connect_ports=[443]) as strict:  # CONNECT to 443 only
        adapter = WebhookAdapter(allow_private=True, egress_proxy=strict.url)
        try:
            result = await adapter.deliver(request(receiver.url("/in")))
        finally:
            await adapter.close()
    assert result.outcome == "retryable_failure"
    assert result.error_summary == f"egress proxy 127.0.0.1:{strict.port}: answered 403 to CONNECT"
    assert receiver.hits() == []


async def test_tls_runs_inside_the_tunnel_with_the_destinations_name(
    proxy: Tinyproxy, tls_server: dict
) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        assert host == "localhost"
        return ["127.0.0.1"]

    client = Http1Client(
        resolve, max_body_bytes=65536, excerpt_bytes=64, proxy=Proxy.parse(proxy.url)
    )
    port = tls_server["port"]
    target = Target.for_post(URL(f"https://localhost:{port}/hook"), "test")
    try:
        response = await client.post(target, target.request({}, b"{}"), 5.0)
    finally:
        await client.close()
    assert (response.status, response.excerpt) == (200, b"ok")
    assert tls_server["sni"] == ["localhost"]  # verified against the name, not the IP
    assert proxy.connects() == [f"127.0.0.1:{port}"]


async def test_a_certificate_for_another_name_fails_inside_the_tunnel_too(
    proxy: Tinyproxy, tls_server: dict
) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    client = Http1Client(
        resolve, max_body_bytes=65536, excerpt_bytes=64, proxy=Proxy.parse(proxy.url)
    )
    target = Target.for_post(URL(f"https://other.example:{tls_server['port']}/hook"), "test")
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            await client.post(target, target.request({}, b"{}"), 5.0)
    finally:
        await client.close()
