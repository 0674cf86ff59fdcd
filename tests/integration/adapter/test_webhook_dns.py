"""Name resolution in the webhook adapter, against a real DNS server on a loopback UDP port.

The server (tests/support/dns_server.py) answers `fast.test` at once, never answers names
under `.slow.test`, and says NXDOMAIN to everything else; the adapter is pointed at it
with `dns_servers`. Every test runs on both event loops (see conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from courier.adapters.base import AttemptResult, DeliveryRequest
from courier.adapters.resolver import Resolver
from courier.adapters.webhook import WebhookAdapter
from courier.signing import generate_secret
from tests.support.dns_server import DnsServer
from tests.support.receiver import Receiver

SECRET = generate_secret()
BODY = json.dumps({"type": "invoice.paid"}).encode()
# Four times the threads of the event loop's default pool on a 2-core machine
# (min(32, cores + 4) = 6), which the old getaddrinfo-based lookups ran on.
SLOW_LOOKUPS = 24
DNS_TIMEOUT_S = 1.5
SLOW_DESTINATION_TIMEOUT_S = 4.0
HEALTHY_TIMEOUT_S = 2.0


def request(url: str, timeout_s: float = HEALTHY_TIMEOUT_S) -> DeliveryRequest:
    return DeliveryRequest(
        url=url, event_id="msg_dns", body=BODY, secrets=(SECRET,), timeout_s=timeout_s
    )


@pytest.fixture
async def dns() -> AsyncIterator[DnsServer]:
    async with DnsServer({"fast.test": "127.0.0.1"}, slow_suffix=".slow.test") as server:
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as rx:
        yield rx


async def _wait_for_queries(dns: DnsServer, names: set[str], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not names <= dns.names_queried():
        if time.monotonic() > deadline:
            missing = len(names - dns.names_queried())
            raise AssertionError(f"{missing} of {len(names)} lookups never reached the server")
        await asyncio.sleep(0.01)


async def _timed(adapter: WebhookAdapter, req: DeliveryRequest) -> tuple[AttemptResult, float]:
    started = time.monotonic()
    result = await adapter.deliver(req)
    return result, time.monotonic() - started


async def test_slow_dns_for_one_tenant_does_not_delay_another_tenants_delivery(
    dns: DnsServer, receiver: Receiver
) -> None:
    adapter = WebhookAdapter(
        allow_private=True, dns_servers=[dns.address], dns_timeout=DNS_TIMEOUT_S
    )
    slow_names = {f"d{i}.slow.test" for i in range(SLOW_LOOKUPS)}
    try:
        tenant_a = [
            asyncio.create_task(
                _timed(
                    adapter,
                    request(f"http://{name}:{receiver.port}/a", SLOW_DESTINATION_TIMEOUT_S),
                )
            )
            for name in sorted(slow_names)
        ]
        # Every slow lookup is in flight (its query reached the server) before B starts.
        await _wait_for_queries(dns, slow_names, within_s=1.0)
        by_dns, by_dns_s = await _timed(adapter, request(f"http://fast.test:{receiver.port}/b"))
        by_hosts, by_hosts_s = await _timed(adapter, request(f"http://localhost:{receiver.port}/b"))
        a_still_waiting = sum(not task.done() for task in tenant_a)
        slow = await asyncio.gather(*tenant_a)
    finally:
        await adapter.close()

    # Tenant B: delivered at once, while all of A's lookups were still unanswered.
    assert (by_dns.outcome, by_hosts.outcome) == ("succeeded", "succeeded")
    assert by_dns_s < HEALTHY_TIMEOUT_S / 2 and by_hosts_s < HEALTHY_TIMEOUT_S / 2
    assert a_still_waiting == SLOW_LOOKUPS
    assert len(receiver.hits("/b")) == 2
    # Tenant A: each attempt gave up on DNS, retryably, within its own timeout.
    for result, elapsed_s in slow:
        assert result.outcome == "retryable_failure"
        assert result.error_summary == "DNS lookup failed: timeout"
        assert DNS_TIMEOUT_S * 0.9 <= elapsed_s < SLOW_DESTINATION_TIMEOUT_S
    assert receiver.hits("/a") == []


async def test_the_attempt_timeout_bounds_a_lookup_slower_than_it(dns: DnsServer) -> None:
    adapter = WebhookAdapter(allow_private=True, dns_servers=[dns.address], dns_timeout=30.0)
    try:
        result, elapsed_s = await _timed(adapter, request("http://never.slow.test/", 0.5))
    finally:
        await adapter.close()
    assert result.outcome == "retryable_failure"
    assert result.error_summary == "DNS lookup failed: timeout after 0.5s"
    assert elapsed_s < 1.5


async def test_a_timeout_after_the_lookup_is_not_called_a_dns_failure(
    dns: DnsServer, receiver: Receiver
) -> None:
    async def hang(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response()

    receiver.always("/hang", hang)
    adapter = WebhookAdapter(allow_private=True, dns_servers=[dns.address])
    try:
        result = await adapter.deliver(request(f"http://fast.test:{receiver.port}/hang", 0.5))
    finally:
        await adapter.close()
    assert result.outcome == "retryable_failure"
    assert result.error_summary == "timeout after 0.5s"


async def test_an_answer_that_comes_late_but_within_the_timeout_is_used(
    receiver: Receiver,
) -> None:
    async with DnsServer({}, slow_suffix=".late.test", slow_delay_s=0.3) as dns:
        adapter = WebhookAdapter(allow_private=True, dns_servers=[dns.address], dns_timeout=3.0)
        try:
            result = await adapter.deliver(request(f"http://hook.late.test:{receiver.port}/l"))
        finally:
            await adapter.close()
    assert result.outcome == "succeeded"
    assert len(receiver.hits("/l")) == 1


async def test_an_unknown_name_is_a_retryable_dns_failure(dns: DnsServer) -> None:
    adapter = WebhookAdapter(allow_private=True, dns_servers=[dns.address])
    try:
        result = await adapter.deliver(request("http://nobody.test/"))
    finally:
        await adapter.close()
    assert result.outcome == "retryable_failure"
    assert result.error_summary == "DNS lookup failed: name not found"


async def test_answers_are_cached_for_the_ttl(dns: DnsServer, receiver: Receiver) -> None:
    # No keep-alive: each delivery opens a new connection and so needs the address again.
    adapter = WebhookAdapter(
        allow_private=True, dns_servers=[dns.address], keepalive_timeout=0.0, ttl_dns_cache=60
    )
    try:
        for _ in range(3):
            result = await adapter.deliver(request(f"http://fast.test:{receiver.port}/c"))
            assert result.outcome == "succeeded"
    finally:
        await adapter.close()
    assert len(receiver.hits("/c")) == 3
    assert sorted(q.qtype for q in dns.queries if q.name == "fast.test") == [1, 28]  # A, AAAA


def _hosts_file(path: Path = Path("/etc/hosts")) -> dict[str, set[str]]:
    """Each name in the hosts file with the addresses it lists for it."""
    names: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        fields = line.partition("#")[0].split()
        for name in fields[1:]:
            names.setdefault(name.lower(), set()).add(fields[0])
    return names


async def test_names_from_the_hosts_file_resolve_without_a_query(dns: DnsServer) -> None:
    # c-ares reads /etc/hosts before asking DNS, as the C library does; "localhost" is
    # always there, and whatever else this machine lists is checked too.
    listed = _hosts_file()
    assert "localhost" in listed
    resolver = Resolver([dns.address])
    try:
        found = {name: set(await resolver.resolve(name)) for name in listed}
    finally:
        await resolver.close()
    for name, addresses in listed.items():
        assert addresses <= found[name], name
    assert dns.queries == []


async def test_localhost_reaches_the_receiver(dns: DnsServer, receiver: Receiver) -> None:
    adapter = WebhookAdapter(allow_private=True, dns_servers=[dns.address])
    try:
        result = await adapter.deliver(request(f"http://localhost:{receiver.port}/h"))
    finally:
        await adapter.close()
    assert result.outcome == "succeeded"
    assert len(receiver.hits("/h")) == 1
    assert dns.queries == []


async def test_a_dns_server_on_ipv6_with_a_port(receiver: Receiver) -> None:
    async with DnsServer({"fast.test": "127.0.0.1"}, host="::1") as dns:
        assert dns.address.startswith("[::1]:")
        adapter = WebhookAdapter(allow_private=True, dns_servers=[dns.address])
        try:
            result = await adapter.deliver(request(f"http://fast.test:{receiver.port}/6"))
        finally:
            await adapter.close()
    assert result.outcome == "succeeded"
    assert {q.name for q in dns.queries} == {"fast.test"}


async def test_resolved_addresses_are_vetted_and_the_summary_names_only_the_class(
    dns: DnsServer, receiver: Receiver
) -> None:
    guarded = WebhookAdapter(dns_servers=[dns.address])
    try:
        result = await guarded.deliver(request(f"http://fast.test:{receiver.port}/v"))
    finally:
        await guarded.close()
    assert result.outcome == "permanent_failure"
    assert result.error_summary == "destination address not allowed: loopback"
    assert receiver.hits() == []
