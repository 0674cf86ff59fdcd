"""Host names to addresses for outbound connections: asynchronous, bounded, cached.

Why not the event loop's `getaddrinfo`: it runs the C library's blocking resolver on the
loop's default thread pool (a handful of threads), and a timeout cancels the wait, not the
thread. A few destinations whose DNS never answers therefore hold every thread, and every
other tenant's lookups queue behind them. Here lookups are c-ares queries (`aiodns`):
they cost no thread while in flight, each one is bounded by its own timeout, and a slow
name delays only the deliveries that need it. c-ares reads /etc/hosts first, as the C
library does, so `localhost` and names from the hosts file still resolve.

Addresses are cached per name for a fixed time (the answers' TTLs are not used); failures
are not cached. Vetting the addresses (the SSRF policy) is the caller's job.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from typing import Final

import aiodns
from aiodns import error as dns_error

from courier.errors import CourierError
from courier.nameservers import check_nameserver

# Names whose addresses are cached; past this the cache starts over (a cheap bound).
_CACHE_SIZE: Final = 4096
# Each query is sent this many times (once more after a lost packet) within the timeout.
_TRIES: Final = 2

# c-ares status codes a delivery summary names; anything else is "error <code>".
_REASONS: Final = {
    dns_error.ARES_ETIMEOUT: "timeout",
    dns_error.ARES_ENOTFOUND: "name not found",
    dns_error.ARES_ENODATA: "no address for the name",
    dns_error.ARES_ENONAME: "name not found",
    dns_error.ARES_ESERVFAIL: "server failure",
    dns_error.ARES_EREFUSED: "query refused by the DNS server",
    dns_error.ARES_ECONNREFUSED: "cannot reach the DNS server",
    dns_error.ARES_EBADNAME: "malformed name",
    dns_error.ARES_EBADRESP: "malformed answer",
    dns_error.ARES_EFORMERR: "malformed query",
}


class LookupFailed(CourierError, OSError):
    """A name did not resolve; `reason` is a short fixed text such as "timeout"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Resolver:
    """Resolves names with c-ares, each lookup bounded by `timeout_s`.

    `nameservers` ("IP" or "IP:port") replaces the system's resolv.conf servers; empty
    means the system's. The c-ares channel is bound to the event loop that first uses it
    and made again for another loop (after `close()`, or in tests that run many loops).
    """

    def __init__(
        self, nameservers: Sequence[str] = (), *, timeout_s: float = 5.0, ttl_s: float = 60.0
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._nameservers = tuple(check_nameserver(n) for n in nameservers)
        self._timeout_s = timeout_s
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, list[str]]] = {}
        self._channel: aiodns.DNSResolver | None = None

    async def resolve(self, host: str) -> list[str]:
        """The addresses of `host`, in c-ares's preference order (RFC 6724); never empty.

        Raises LookupFailed when the name does not resolve within the timeout.
        """
        now = time.monotonic()
        cached = self._cache.get(host)
        if cached is not None and cached[0] > now:
            return cached[1]
        addresses = await self._lookup(host)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[host] = (now + self._ttl_s, addresses)
        return addresses

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        self._cache.clear()
        if channel is not None:
            await channel.close()

    async def _lookup(self, host: str) -> list[str]:
        channel = self._channel_for(asyncio.get_running_loop())
        try:
            # c-ares bounds each try; this bounds the whole lookup whatever c-ares does
            # with retries and several servers.
            async with asyncio.timeout(self._timeout_s):
                result = await channel.getaddrinfo(host, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise LookupFailed("timeout") from None
        except dns_error.DNSError as exc:
            code = exc.args[0] if exc.args else None
            raise LookupFailed(_REASONS.get(code, f"error {code}")) from None
        except (ValueError, TypeError, UnicodeError):
            # pycares refuses some names outright (an embedded NUL, a surrogate).
            raise LookupFailed("malformed name") from None
        addresses = list(dict.fromkeys(node.addr[0].decode("ascii") for node in result.nodes))
        if not addresses:
            raise LookupFailed("no address for the name")
        return addresses

    def _channel_for(self, loop: asyncio.AbstractEventLoop) -> aiodns.DNSResolver:
        channel = self._channel
        if channel is None or channel.loop is not loop:
            # A channel left on a closed loop is dropped; c-ares destroys it on its own
            # thread once its queries end.
            channel = self._channel = aiodns.DNSResolver(
                self._nameservers or None,
                loop=loop,
                timeout=self._timeout_s / _TRIES,
                tries=_TRIES,
            )
        return channel
