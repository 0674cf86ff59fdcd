"""A lean HTTP/1.1 client for webhook POSTs: a keep-alive pool over asyncio, httptools parsing.

Why not aiohttp's ClientSession, which the adapter used before: on the 2-core bench
machine its request path cost ~160 µs of CPU per POST (header multidicts, URL objects,
tracing, cookie, redirect and decompression machinery the adapter switched off anyway),
about a third of a whole durable delivery. A webhook needs one thing: POST bytes and read
a bounded response. This does that in ~40 µs. Parsing is httptools (llhttp, Node.js's
parser); sockets, TLS and timers are asyncio's. What it deliberately lacks: redirects,
proxies, cookies, decompression, HTTP/2 and request pipelining.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, cast

import httptools
from yarl import URL

# Generous for any real receiver, small enough that a hostile one cannot make us buffer
# an endless status line or header block.
MAX_HEAD_BYTES: Final = 64 * 1024
MAX_FIELD_BYTES: Final = 8190
MAX_HEADERS: Final = 128
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

Resolve = Callable[[str, int], Awaitable[list[str]]]


class InvalidResponse(Exception):
    """The receiver's bytes are not an HTTP/1.x response this client accepts."""


class ConnectionClosed(ConnectionError):
    """The receiver closed the connection before its response was complete."""


class CannotConnect(ConnectionError):
    """No TCP connection to any of the destination's addresses (TLS errors are not wrapped)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


@dataclass(slots=True)
class Response:
    status: int
    retry_after: str | None  # the raw Retry-After header, if any
    excerpt: bytes  # the body's first bytes, at most the client's `excerpt_bytes`


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL's POSTs go, and the part of each request that never changes."""

    host: str  # a name or an IP literal, without brackets
    port: int
    tls: bool
    head: bytes  # request line, Host and (from user-info) Authorization, CRLF-ended

    @property
    def origin(self) -> tuple[str, int, bool]:
        return (self.host, self.port, self.tls)

    @classmethod
    def for_post(cls, url: URL, user_agent: str) -> Target:
        """Raises ValueError for a URL without an http(s) scheme or a host."""
        host = url.raw_host
        default_port = _DEFAULT_PORTS.get(url.scheme)
        if not host or default_port is None:
            raise ValueError("URL needs an http or https scheme and a host")
        port = url.port or default_port
        authority = f"[{host}]" if ":" in host else host
        if port != default_port:
            authority = f"{authority}:{port}"
        lines = [f"POST {url.raw_path_qs or '/'} HTTP/1.1", f"host: {authority}"]
        if url.user is not None or url.password is not None:
            # aiohttp sent URL user-info as Basic credentials (latin-1); receivers rely on it.
            token = f"{url.user or ''}:{url.password or ''}".encode("latin-1")
            lines.append(f"authorization: Basic {base64.b64encode(token).decode()}")
        lines.append(f"user-agent: {user_agent}")
        head = _head_lines(lines, "URL")
        return cls(host, port, url.scheme == "https", head.encode("utf-8"))

    def request(self, headers: Mapping[str, str], body: bytes) -> bytes:
        """The whole request; raises ValueError if a header value would split the head."""
        fields = _head_lines(
            [f"{name}: {value}" for name, value in headers.items()], "a header value"
        )
        length = b"content-length: %d\r\n\r\n" % len(body)
        return b"".join((self.head, fields.encode("utf-8"), length, body))


def _head_lines(lines: Sequence[str], what: str) -> str:
    """`lines`, each CRLF-ended; ValueError if one holds a CR or LF of its own, which
    would split the request head (header injection)."""
    text = "".join([f"{line}\r\n" for line in lines])
    if text.count("\n") != len(lines) or text.count("\r") != len(lines):
        raise ValueError(f"{what} contains a line break")
    return text


class _Connection(asyncio.Protocol):
    """One keep-alive connection; a request is one `send()` whose future the parser settles."""

    __slots__ = (
        "_excerpt_bytes",
        "_live",
        "_max_body",
        "body_bytes",
        "closed",
        "error",
        "excerpt",
        "framed",
        "head_bytes",
        "headers",
        "headers_done",
        "idle_since",
        "parser",
        "retry_after",
        "reusable",
        "status",
        "transport",
        "waiter",
    )

    def __init__(self, live: set[_Connection], max_body: int, excerpt_bytes: int) -> None:
        self._live = live
        self._max_body = max_body
        self._excerpt_bytes = excerpt_bytes
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reusable = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.retry_after: str | None = None
        self.excerpt = bytearray()
        self.body_bytes = 0
        self.head_bytes = 0
        self.headers = 0
        self.headers_done = False
        self.framed = False  # Content-Length or chunked: the body's end is in the stream
        self.error: str | None = None

    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self._reset()
        self.reusable = False
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return waiter

    def time_out(self) -> None:
        if self.waiter is not None:  # else the response won the race: keep the connection
            self._fail(TimeoutError())

    def usable(self, oldest_usable: float) -> bool:
        """Still open, and idle since no earlier than `oldest_usable` (monotonic)."""
        return not self.closed and self.idle_since > oldest_usable

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # --- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self._live.add(self)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            # Bytes nobody asked for: this stream can no longer be matched to requests.
            self.abort()
            return
        if not self.headers_done:
            self.head_bytes += len(data)
            # Counts body bytes that share a packet with the head, hence the allowance.
            if self.head_bytes > MAX_HEAD_BYTES + self._max_body:
                self._fail(InvalidResponse("response head too large"))
                return
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self.waiter is not None:
                # llhttp's reasons are fixed texts: they never quote the receiver's bytes.
                self._fail(InvalidResponse(self.error or str(exc) or type(exc).__name__))
        if self.waiter is None and not self.reusable:
            self.abort()

    def eof_received(self) -> bool | None:
        self.closed = True
        return None  # let the transport close itself; connection_lost settles any waiter

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._live.discard(self)
        if self.waiter is None:
            return
        if self.headers_done and not self.framed and self.status >= 200:
            # A response without Content-Length or chunking ends when the connection does.
            self._finish(reusable=False)
        elif isinstance(exc, OSError):
            self._fail(exc)
        else:
            self._fail(ConnectionClosed("the receiver closed the connection mid-response"))

    # --- httptools callbacks --------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.waiter is None:
            # A second response to one request: nothing after it can be trusted.
            self.reusable = False
            raise _StopParsing

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers += 1
        if self.headers > MAX_HEADERS:
            self.error = f"more than {MAX_HEADERS} response headers"
            raise InvalidResponse(self.error)
        if len(name) > MAX_FIELD_BYTES or len(value) > MAX_FIELD_BYTES:
            self.error = f"response header longer than {MAX_FIELD_BYTES} bytes"
            raise InvalidResponse(self.error)
        lowered = name.lower()
        if lowered == b"retry-after":
            self.retry_after = value.decode("latin-1")
        elif lowered == b"content-length" or lowered == b"transfer-encoding":
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        room = self._excerpt_bytes - len(self.excerpt)
        if room > 0:
            self.excerpt += body[:room]
        if self.body_bytes >= self._max_body and self.waiter is not None:
            # Enough read: answer now and drop the connection rather than drain the rest.
            self._finish(reusable=False)
            raise _StopParsing

    def on_message_complete(self) -> None:
        if self.status < 200:
            self._reset()  # 1xx (e.g. 103 Early Hints): the real response follows
            return
        self._finish(reusable=self.parser.should_keep_alive())

    # --- settling the request -----------------------------------------------------

    def _finish(self, reusable: bool) -> None:
        waiter, self.waiter = self.waiter, None
        self.reusable = reusable
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self.status, self.retry_after, bytes(self.excerpt)))

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        self.reusable = False
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.abort()


class _StopParsing(Exception):
    """Raised from a parser callback to stop reading a response that has been answered."""


class Http1Client:
    """POSTs over pooled keep-alive connections, one request per connection at a time.

    `resolve(host, port)` returns the addresses a connection may use (the adapter's SSRF
    policy lives there); addresses are tried in order. A cancelled or timed-out `post()`
    closes its connection.
    """

    def __init__(
        self,
        resolve: Resolve,
        *,
        max_body_bytes: int,
        excerpt_bytes: int,
        keepalive_s: float = 30.0,
    ) -> None:
        self._resolve = resolve
        self._max_body = max_body_bytes
        self._excerpt_bytes = excerpt_bytes
        self._keepalive_s = keepalive_s
        self._ssl_context: ssl.SSLContext | None = None  # made at the first https connect
        self._idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self._live: set[_Connection] = set()
        self._next_sweep = 0.0

    async def post(self, target: Target, request: bytes, timeout_s: float) -> Response:
        """POST `request`; the whole exchange, connect included, ends within `timeout_s`.

        Raises TimeoutError when it does not. The exchange on a pooled connection is
        bounded by one timer on the loop rather than an `asyncio.timeout` scope: the
        same bound for a fraction of the CPU, paid on every delivery.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        conn = self._idle_connection(target.origin)
        if conn is None:
            async with asyncio.timeout_at(deadline):
                conn = await self._connect(target)
        timer = loop.call_at(deadline, conn.time_out)
        try:
            response = await conn.send(request)
        except BaseException:
            conn.abort()
            raise
        finally:
            timer.cancel()
        if conn.reusable and not conn.closed:
            now = time.monotonic()
            conn.idle_since = now
            self._idle.setdefault(target.origin, []).append(conn)
            if now >= self._next_sweep:
                self._sweep(now)
        else:
            conn.abort()
        return response

    async def close(self) -> None:
        self._idle.clear()
        for conn in list(self._live):
            conn.abort()
        self._live.clear()

    def _idle_connection(self, origin: tuple[str, int, bool]) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        oldest_usable = time.monotonic() - self._keepalive_s
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be closed by now
            if conn.usable(oldest_usable):
                return conn
            conn.abort()
        return None

    def _sweep(self, now: float) -> None:
        """Close idle connections past the keep-alive time (their destinations went quiet)."""
        self._next_sweep = now + self._keepalive_s / 2
        oldest_usable = now - self._keepalive_s
        for origin, idle in list(self._idle.items()):
            kept = []
            for conn in idle:
                if conn.usable(oldest_usable):
                    kept.append(conn)
                else:
                    conn.abort()
            if kept:
                self._idle[origin] = kept
            else:
                del self._idle[origin]

    async def _connect(self, target: Target) -> _Connection:
        addresses = await self._resolve(target.host, target.port)
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if target.tls else None
        server_hostname = target.host if tls is not None else None
        last_error: OSError | None = None
        for address in addresses:
            try:
                _, conn = await loop.create_connection(
                    lambda: _Connection(self._live, self._max_body, self._excerpt_bytes),
                    address,
                    target.port,
                    ssl=tls,
                    server_hostname=server_hostname,
                )
            except (ssl.SSLError, ssl.CertificateError):
                raise  # the address answered; its certificate or protocol is the problem
            except OSError as exc:
                last_error = exc
                continue
            return conn
        if last_error is None:
            raise CannotConnect(OSError("the destination resolved to no address"))
        raise CannotConnect(last_error)

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context
