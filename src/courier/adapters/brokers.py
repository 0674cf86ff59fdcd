"""What the broker adapters share: the signed headers, the SSRF check of a broker URL,
redacted results, and a keyed set of long-lived clients.

A broker URL is tenant input like a webhook URL: its host is resolved and vetted before
any connection, and a plain (non-TLS) URL is connected to by the vetted address, so a
name that re-resolves elsewhere (DNS rebinding) cannot move the connection. TLS URLs keep
the name (certificate checks need it); they are vetted the same way first.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

from courier import kinds, redact, signing
from courier.adapters.addresses import IPNetwork, forbidden_class, parse_networks
from courier.adapters.base import (
    EVENT_TYPE_HEADER,
    AttemptOutcome,
    AttemptResult,
    DeliveryRequest,
)
from courier.adapters.resolver import Resolver
from courier.errors import CourierError

TLS_SCHEMES: Final = frozenset({"amqps", "tls", "rediss"})


class BrokerRefused(CourierError):
    """The broker URL is refused before any connection: a permanent failure."""


class AddressGuard:
    """Vets broker hosts against the SSRF policy (the webhook adapter's rules)."""

    def __init__(
        self,
        allow_private: bool = False,
        allowed_networks: Sequence[str] = (),
        dns_servers: Sequence[str] = (),
    ) -> None:
        self._allow_private = allow_private
        self._allowed: tuple[IPNetwork, ...] = parse_networks(allowed_networks)
        self._resolver = Resolver(dns_servers)

    async def vetted_url(self, url: str) -> str:
        """`url` to connect to: its host vetted, replaced by the vetted IP unless TLS."""
        try:
            parts = urlsplit(url)
            port_number = parts.port
        except ValueError:
            raise BrokerRefused("invalid broker URL") from None
        host = parts.hostname
        if not host:
            raise BrokerRefused("invalid broker URL: missing host")
        try:
            allowed = await self.addresses(host, port_number or 0)
        except BrokerRefused as exc:
            raise BrokerRefused(f"broker {exc}") from None
        if parts.scheme in TLS_SCHEMES or allowed[0] == host:
            return url
        ip = allowed[0]
        shown = f"[{ip}]" if ":" in ip else ip
        userinfo, _, _ = parts.netloc.rpartition("@")
        port = f":{port_number}" if port_number else ""
        netloc = (userinfo + "@" if userinfo else "") + shown + port
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    async def addresses(self, host: str, port: int) -> list[str]:
        """The vetted addresses of `host`, for a client that connects to them itself (the
        HTTP client's `resolve`); raises BrokerRefused when none is allowed."""
        try:
            ipaddress.ip_address(host)
            found = [host]
        except ValueError:
            found = await self._resolver.resolve(host)
        allowed = [a for a in found if self._reason(a) is None]
        if not allowed:
            reason = self._reason(found[0]) if found else "no address"
            raise BrokerRefused(f"address not allowed: {reason}")
        return allowed

    def _reason(self, address: str) -> str | None:
        if self._allow_private:
            return None
        try:
            return forbidden_class(ipaddress.ip_address(address), self._allowed)
        except ValueError:
            return "not a valid IP address"

    async def close(self) -> None:
        await self._resolver.close()


def signed_headers(request: DeliveryRequest) -> dict[str, str]:
    """webhook-id, webhook-timestamp, webhook-signature (as for a webhook), the type and the
    destination's extra headers."""
    headers = signing.webhook_headers(
        request.secrets, request.event_id, int(time.time()), request.body
    )
    del headers["content-type"]
    headers[EVENT_TYPE_HEADER] = request.event_type
    if request.options is not None:
        headers.update(request.options.headers)
    return headers


def broker_url(request: DeliveryRequest) -> str:
    url = request.config.get("url")
    if not isinstance(url, str) or not url:
        raise BrokerRefused("the destination has no broker URL")
    return url


def redaction_secrets(request: DeliveryRequest) -> tuple[str, ...]:
    found: list[str] = [*request.secrets, *request.config_secrets]
    if request.options is not None:
        found += request.options.secrets
    for value in request.config_secrets:
        found.extend(kinds.url_secrets(value))
    return tuple(dict.fromkeys(found))


async def within_timeout(
    request: DeliveryRequest,
    publish: Callable[[DeliveryRequest, float], Awaitable[AttemptResult]],
) -> AttemptResult:
    """Run one publish under the destination's timeout; running out is retryable."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(request.timeout_s):
            return await publish(request, started)
    except TimeoutError:
        text = f"timeout after {request.timeout_s:g}s"
        return result(request, started, "retryable_failure", text)


def result(
    request: DeliveryRequest, started: float, outcome: AttemptOutcome, text: str | None
) -> AttemptResult:
    """An attempt's result, its summary redacted of every secret the request carries."""
    summary = None
    if text is not None:
        for secret in request.config_secrets:  # the whole URL first, then its parts
            text = text.replace(secret, "<broker URL>")
        summary = redact.summarize(text, secrets=redaction_secrets(request))
    return AttemptResult(
        outcome=outcome,
        http_status=None,
        duration_ms=int((time.perf_counter() - started) * 1000),
        error_summary=summary,
    )


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


T = TypeVar("T")


@dataclass(slots=True)
class _Slot(Generic[T]):
    lock: asyncio.Lock
    client: T | None = None


class ClientPool(Generic[T]):
    """One long-lived client per (tenant, broker URL), made on first use, made again
    after `discard` (a failure) or once `alive` says it is not (the broker dropped it
    between attempts), and closed by `close` (worker shutdown)."""

    def __init__(
        self,
        open_client: Callable[[str, int], Awaitable[T]],
        close_client: Callable[[T], Awaitable[None]],
        alive: Callable[[T], bool] = lambda client: True,
    ) -> None:
        self._open = open_client
        self._close = close_client
        self._alive = alive
        self._slots: dict[tuple[str, str], _Slot[T]] = {}

    async def get(self, tenant_id: str, url: str, connect_url: str, size: int) -> T:
        slot = self._slots.get((tenant_id, url))
        if slot is None:
            slot = self._slots[(tenant_id, url)] = _Slot(asyncio.Lock())
        client = slot.client
        if client is not None and self._alive(client):
            return client
        async with slot.lock:  # one connect per key, however many deliveries wait
            client = slot.client
            if client is not None and not self._alive(client):
                slot.client = None
                with contextlib.suppress(Exception):
                    await self._close(client)
            if slot.client is None:
                slot.client = await self._open(connect_url, size)
            return slot.client

    async def discard(self, tenant_id: str, url: str, client: T) -> None:
        slot = self._slots.get((tenant_id, url))
        if slot is not None and slot.client is client:
            slot.client = None
        with contextlib.suppress(Exception):
            await self._close(client)

    async def close(self) -> None:
        slots, self._slots = self._slots, {}
        for slot in slots.values():
            if slot.client is not None:
                with contextlib.suppress(Exception):
                    await self._close(slot.client)


class PooledBrokerAdapter(Generic[T]):
    """What each broker kind's adapter shares: the address guard, one client pool, and
    the destination's timeout around one publish; a kind supplies `_publish`."""

    def __init__(self, guard: AddressGuard, pool: ClientPool[T]) -> None:
        self._guard = guard
        self._pool = pool

    async def close(self) -> None:
        await self._pool.close()

    async def deliver(self, request: DeliveryRequest) -> AttemptResult:
        return await within_timeout(request, self._publish)

    async def _publish(self, request: DeliveryRequest, started: float) -> AttemptResult:
        raise NotImplementedError
