"""A hostile HTTP/1.1 receiver on loopback: raw bytes, scripted per request.

It answers `POST /ok` like a well-behaved server (reads the whole request, answers a
framed 200, keeps the connection). Every other request plays the next `Exchange` of
its script: read some or none of the request, send arbitrary bytes (split anywhere,
paced, or streamed without end), then keep, close, reset or hang on the connection.
What it never does is tidy up after itself: bytes a request left unread are parsed as
the next request, and an unparsable request line is echoed back in a 400, as many
real servers do. A client that reuses a connection it should have dropped therefore
sees bytes of an earlier request in a later answer.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

# Replaced by the start and end of the request body the server read, padded to the
# placeholder's own length so that the Content-Length written around it stays right.
ECHO = b"{echo" + b"_" * 58 + b"}"
STREAM_UNIT_BYTES = 64 * 1024
HEAD_LIMIT_BYTES = 1024 * 1024

Read = Literal["line", "head", "all"]
End = Literal["keep", "close", "reset", "hang"]


@dataclass(frozen=True)
class Endless:
    """`prefix`, then `unit` over and over until `limit_bytes` or the client hangs up."""

    prefix: bytes
    unit: bytes
    limit_bytes: int = 512 * 1024 * 1024

    def __repr__(self) -> str:
        return f"Endless({self.prefix[:80]!r}, unit={self.unit[:24]!r}x{len(self.unit)})"


@dataclass(frozen=True)
class Exchange:
    """One request's treatment: how much of it to read, what to send back, how to end."""

    read: Read
    response: bytes  # may contain ECHO
    cuts: tuple[int, ...] = ()  # offsets into the response where a write ends
    pause_s: float = 0.0  # between writes
    then: Endless | None = None  # streamed after `response`
    end: End = "keep"


@dataclass
class HostileServer:
    script: Sequence[Exchange] = ()
    port: int = 0
    played: int = 0
    requests: int = 0
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _server: asyncio.Server | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> HostileServer:
        self._server = await asyncio.start_server(
            self._on_connect, "127.0.0.1", 0, limit=HEAD_LIMIT_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        await self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def drop_connections(self) -> None:
        """Close every open connection, so the next example starts with no pooled ones."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def _next(self) -> Exchange:
        exchange = self.script[self.played % len(self.script)]
        self.played += 1
        return exchange

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; False when the connection is done."""
        line = await reader.readuntil(b"\r\n")
        self.requests += 1
        parts = line.rstrip(b"\r\n").split(b" ")
        if len(parts) != 3 or parts[0] != b"POST" or not parts[2].startswith(b"HTTP/1."):
            # The client's bytes are not a request line: say so, quoting them.
            text = b"bad request line: " + line[:60] + b" ... " + line[-120:]
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(text))
            writer.write(text)
            await writer.drain()
            return False
        if parts[1] == b"/ok":
            await self._read_body(reader, await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            return True
        exchange = self._next()
        body = b""
        if exchange.read != "line":
            head = await reader.readuntil(b"\r\n\r\n")
            if exchange.read == "all":
                body = await self._read_body(reader, head)
        echo = body[:24] + b" .. " + body[-26:] if body else b""
        await self._play(exchange, writer, echo.ljust(len(ECHO), b"-")[: len(ECHO)])
        if exchange.end == "keep":
            return True
        if exchange.end == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif exchange.end == "hang":
            while await reader.read(STREAM_UNIT_BYTES):
                pass  # until the client gives up
        return False

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
        length = 0
        for header in head.split(b"\r\n"):
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return await reader.readexactly(length)

    @staticmethod
    async def _play(exchange: Exchange, writer: asyncio.StreamWriter, echo: bytes) -> None:
        data = exchange.response.replace(ECHO, echo)
        start = 0
        for cut in [*sorted({min(c, len(data)) for c in exchange.cuts}), len(data)]:
            if cut > start:
                writer.write(data[start:cut])
                await writer.drain()
                start = cut
                if exchange.pause_s:
                    await asyncio.sleep(exchange.pause_s)
        endless = exchange.then
        if endless is None:
            return
        writer.write(endless.prefix)
        sent = 0
        started = time.monotonic()
        while sent < endless.limit_bytes and time.monotonic() - started < 30:
            writer.write(endless.unit)
            sent += len(endless.unit)
            await writer.drain()  # raises once the client hung up
