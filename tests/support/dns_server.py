"""A tiny authoritative DNS server on a loopback UDP port, for resolver tests.

    async with DnsServer({"fast.test": "127.0.0.1"}, slow_suffix=".slow.test") as dns:
        adapter = WebhookAdapter(dns_servers=[dns.address])

It answers A queries for the names it knows (AAAA with no data), NXDOMAIN for other
names, and for names ending in `slow_suffix` answers after `slow_delay_s` seconds, or
never when that is None. Every query is recorded, so a test can wait until its lookups
are really in flight. Only what a stub resolver sends is understood: one question, no
compression in it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import cast

_A = 1
_IN = 1
_NXDOMAIN = 3
_HEADER = struct.Struct("!HHHHHH")


@dataclass(frozen=True)
class Query:
    name: str  # lower-case, without the trailing dot
    qtype: int
    at: float  # time.monotonic()


def _parse(packet: bytes) -> tuple[int, str, int, bytes] | None:
    """(id, name, qtype, question section) of a query, or None if it is not one."""
    if len(packet) < _HEADER.size:
        return None
    query_id, _, questions, *_ = _HEADER.unpack_from(packet)
    if questions != 1:
        return None
    labels: list[str] = []
    pos = _HEADER.size
    while pos < len(packet) and (length := packet[pos]) != 0:
        labels.append(packet[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    end = pos + 5  # the zero label, then qtype and qclass
    if end > len(packet):
        return None
    (qtype,) = struct.unpack_from("!H", packet, pos + 1)
    return query_id, ".".join(labels).lower(), qtype, packet[_HEADER.size : end]


def _answer(query_id: int, question: bytes, rcode: int, address: str | None) -> bytes:
    flags = 0x8400 | 0x0100 | 0x0080 | rcode  # response, authoritative, RD and RA echoed
    record = b""
    if address is not None:
        # The name is a pointer to the question's (offset 12); TTL 60 s.
        rdata = ipaddress.IPv4Address(address).packed
        record = struct.pack("!HHHIH", 0xC00C, _A, _IN, 60, len(rdata)) + rdata
    header = _HEADER.pack(query_id, flags, 1, 1 if record else 0, 0, 0)
    return header + question + record


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's and uvloop's UDP transports are DatagramTransports in behaviour only.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        self._server.received(data, addr)


class DnsServer:
    def __init__(
        self,
        names: Mapping[str, str],
        *,
        slow_suffix: str | None = None,
        slow_delay_s: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.names = {name.lower(): ip for name, ip in names.items()}
        self.slow_suffix = slow_suffix
        self.slow_delay_s = slow_delay_s
        self.queries: list[Query] = []
        self._host = host
        self._port = port
        self._protocol: _Protocol | None = None
        self._delayed: set[asyncio.TimerHandle] = set()

    @property
    def address(self) -> str:
        """The server as a resolver's nameserver list takes it: IP:port, [IPv6]:port."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self._port}"

    def names_queried(self) -> set[str]:
        return {q.name for q in self.queries}

    async def __aenter__(self) -> DnsServer:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self._host, self._port)
        )
        self._protocol = protocol
        self._port = transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handle in self._delayed:
            handle.cancel()
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()

    def received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        parsed = _parse(data)
        if parsed is None:
            return
        query_id, name, qtype, question = parsed
        self.queries.append(Query(name, qtype, time.monotonic()))
        if name in self.names:
            reply = _answer(query_id, question, 0, self.names[name] if qtype == _A else None)
        elif self.slow_suffix is not None and name.endswith(self.slow_suffix):
            if self.slow_delay_s is None:
                return  # never answered
            reply = _answer(query_id, question, 0, "127.0.0.1" if qtype == _A else None)
            handle = asyncio.get_running_loop().call_later(
                self.slow_delay_s, self._send, reply, addr
            )
            self._delayed.add(handle)
            return
        else:
            reply = _answer(query_id, question, _NXDOMAIN, None)
        self._send(reply, addr)

    def _send(self, reply: bytes, addr: tuple[str | int, int]) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.sendto(reply, addr)
