"""A lean HTTP/1.1 client for webhook POSTs: a keep-alive pool over asyncio, httptools parsing.

Why not aiohttp's ClientSession or httpx: a webhook needs one thing, POST bytes and read a
bounded response, and their request paths cost several times the CPU per POST of this one
(docs/decisions/http-client.md has the figures; `make bench-http-clients` measures them
side by side). Parsing is httptools (llhttp, Node.js's parser); sockets, TLS and timers are
asyncio's. What it deliberately lacks: redirects, proxies, cookies, decompression, HTTP/2
and request pipelining. One kind of proxy it has: an egress proxy that every connection
goes through with CONNECT, to an address the caller resolved and vetted itself.
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

from courier.errors import CourierError

# Generous for any real receiver, small enough that a hostile one cannot make us buffer
# an endless status line or header block.
MAX_HEAD_BYTES: Final = 64 * 1024
MAX_FIELD_BYTES: Final = 8190
MAX_HEADERS: Final = 128
# A response's every byte (1xx responses, head, body, chunk framing, trailers) counts
# against one bound: the head allowance, the body the client reads, and as much again
# for framing and trailers. httptools buffers a field whole by copying, so an endless
# trailer or header field must be cut off by count, not by the parser.
_FRAMING_ALLOWANCE: Final = 2  # times the body cap
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

Resolve = Callable[[str, int], Awaitable[list[str]]]
_PoolKey = tuple[str, str, int, bool, str]  # tenant, host, port, tls, TLS identity
# A TLS context of the caller's (a client certificate, extra trusted CAs) and the name
# that tells it apart: connections made with it are pooled under that name only.
TlsIdentity = tuple[str, ssl.SSLContext]


class InvalidResponse(CourierError):
    """The receiver's bytes are not an HTTP/1.x response this client accepts."""


class ConnectionClosed(CourierError, ConnectionError):
    """The receiver closed the connection before its response was complete."""


class CannotConnect(CourierError, ConnectionError):
    """No TCP connection to any of the destination's addresses (TLS errors are not wrapped)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


class ProxyFailed(CourierError, ConnectionError):
    """The egress proxy could not be reached, or did not open the tunnel. The message
    names the proxy, never the destination."""

    def __init__(self, proxy: Proxy, reason: str) -> None:
        super().__init__(f"egress proxy {proxy.name}: {reason}")


@dataclass(frozen=True, slots=True)
class Proxy:
    """An egress proxy, `http://host:port`: connections are tunnelled with CONNECT."""

    host: str
    port: int

    @property
    def name(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Proxy:
        """ValueError, saying what is wrong, unless `text` is `http://host:port`."""
        try:
            url = URL(text.strip())
            port = url.explicit_port
        except Exception:
            raise ValueError("not a URL; expected http://host:port") from None
        if url.scheme != "http" or not url.raw_host or port is None:
            raise ValueError("expected http://host:port (an http URL with a port)")
        if url.raw_user is not None or url.raw_password is not None:
            raise ValueError("credentials in the proxy URL are not supported")
        if url.raw_path not in ("", "/") or url.raw_query_string or url.raw_fragment:
            raise ValueError("expected http://host:port, without a path or query")
        return cls(url.raw_host, port)


@dataclass(slots=True)
class Response:
    status: int
    retry_after: str | None  # the raw Retry-After header, if any
    excerpt: bytes  # the body's first bytes, at most the client's `excerpt_bytes`


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL's POSTs go, and the part of each request that never changes."""

    host: str  # a name or an IP literal, without brackets; as written, for DNS
    port: int
    tls: bool
    head: bytes  # request line, Host and (from user-info) Authorization, CRLF-ended
    # `host` without a trailing dot: what TLS checks the certificate against and what the
    # Host header names. A fully qualified "hooks.example.com." is resolved as written (no
    # search domains), but certificates and virtual hosts never carry the dot; urllib3 and
    # aiohttp strip it the same way.
    server_name: str

    @property
    def origin(self) -> tuple[str, int, bool]:
        return (self.host, self.port, self.tls)

    @classmethod
    def for_post(cls, url: URL, user_agent: str) -> Target:
        """Raises ValueError for a URL without an http(s) scheme or a host."""
        return cls.for_method("POST", url, user_agent)

    @classmethod
    def for_method(cls, method: str, url: URL, user_agent: str) -> Target:
        """A target for `method` (an API client's GET and PUT as well as a webhook's POST)."""
        host = url.raw_host
        default_port = _DEFAULT_PORTS.get(url.scheme)
        if not host or default_port is None:
            raise ValueError("URL needs an http or https scheme and a host")
        port = url.port or default_port
        server_name = host[:-1] if host.endswith(".") else host
        authority = f"[{server_name}]" if ":" in server_name else server_name
        if port != default_port:
            authority = f"{authority}:{port}"
        lines = [f"{method} {url.raw_path_qs or '/'} HTTP/1.1", f"host: {authority}"]
        if url.user is not None or url.password is not None:
            # aiohttp sent URL user-info as Basic credentials (latin-1); receivers rely on it.
            token = f"{url.user or ''}:{url.password or ''}".encode("latin-1")
            lines.append(f"authorization: Basic {base64.b64encode(token).decode()}")
        lines.append(f"user-agent: {user_agent}")
        head = _head_lines(lines, "URL")
        return cls(host, port, url.scheme == "https", head.encode("utf-8"), server_name)

    def request(self, headers: Mapping[str, str], body: bytes, extra: bytes = b"") -> bytes:
        """The whole request; raises ValueError if a header value would split the head.

        `extra` is more header lines, already checked by `header_block` and encoded.
        """
        fields = _head_lines(
            [f"{name}: {value}" for name, value in headers.items()], "a header value"
        )
        length = b"content-length: %d\r\n\r\n" % len(body)
        return b"".join((self.head, fields.encode("utf-8"), extra, length, body))


def header_block(headers: Sequence[tuple[str, str]]) -> bytes | None:
    """`headers` as CRLF-ended lines, encoded; None when one would split the head."""
    try:
        return _head_lines([f"{name}: {value}" for name, value in headers], "").encode("utf-8")
    except ValueError:
        return None


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
        "_max_bytes",
        "body_bytes",
        "closed",
        "codings",
        "eof_ends_body",
        "error",
        "excerpt",
        "has_length",
        "headers",
        "headers_done",
        "idle_since",
        "must_close",
        "parser",
        "received",
        "retry_after",
        "reusable",
        "status",
        "transport",
        "waiter",
    )

    def __init__(self, live: set[_Connection], max_body: int, excerpt_bytes: int) -> None:
        self._live = live
        self._max_body = max_body
        self._max_bytes = MAX_HEAD_BYTES + _FRAMING_ALLOWANCE * max_body
        self._excerpt_bytes = excerpt_bytes
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        # Lets a response carry Transfer-Encoding and Content-Length both (llhttp refuses
        # it by default): RFC 9112 says Transfer-Encoding wins, and such a connection is
        # never reused (`must_close`).
        self.parser.set_dangerous_leniencies(lenient_chunked_length=True)
        self.received = 0
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
        self.headers = 0
        self.headers_done = False
        self.has_length = False  # a Content-Length field (llhttp vets its value)
        self.codings: bytes | None = None  # the last Transfer-Encoding field's value
        self.eof_ends_body = False  # the body is close-delimited (decided with the head)
        self.must_close = False
        self.error: str | None = None

    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self._reset()
        self.reusable = False
        self.received = 0  # not in _reset: 1xx responses count too
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
        self.received += len(data)
        over = self.received > self._max_bytes
        if over:
            # The parser never sees a byte past the bound, however the bytes arrive;
            # those before it may still settle the response (e.g. reach the body cap).
            data = data[: len(data) - (self.received - self._max_bytes)]
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self.waiter is not None:
                self._fail(InvalidResponse(self.error or _parser_reason(exc)))
        if self.waiter is None:
            if not self.reusable:
                self.abort()
        elif over:
            self._fail(InvalidResponse(self._unending()))

    def eof_received(self) -> bool | None:
        self.closed = True
        return None  # let the transport close itself; connection_lost settles any waiter

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._live.discard(self)
        if self.waiter is None:
            return
        if self.headers_done and self.eof_ends_body:
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
        elif lowered == b"content-length":
            self.has_length = True
        elif lowered == b"transfer-encoding":
            self.codings = value

    def on_headers_complete(self) -> None:
        self.headers_done = True
        status = self.status = self.parser.get_status_code()
        if status == 101:
            self.error = "the receiver switched protocols (101), which a webhook cannot use"
            raise InvalidResponse(self.error)
        # RFC 9112 section 6.3, as llhttp applies it (1xx, 204 and 304 have no body and
        # llhttp ends them itself): chunked as the final transfer coding frames the body;
        # any other transfer coding means the body ends when the connection does, whatever
        # Content-Length says; else Content-Length frames it; else the close does.
        codings = self.codings
        if codings is None:
            self.eof_ends_body = not self.has_length
        else:
            self.eof_ends_body = not chunked_is_final(codings)
            # Both framings at once is how responses are split or smuggled: read this
            # one as Transfer-Encoding says, then trust nothing after it.
            self.must_close = self.has_length

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
        assert self.transport is not None
        # A receiver may answer before reading the whole request; request bytes still
        # unsent would reach it as the start of the next request on this connection.
        self._finish(
            reusable=self.parser.should_keep_alive()
            and not self.must_close
            and not self.transport.get_write_buffer_size()
        )

    # --- settling the request -----------------------------------------------------

    def _unending(self) -> str:
        kib = self._max_bytes // 1024
        if not self.headers_done:
            return f"the response head did not end within {kib} KiB"
        return (
            f"the response did not end within {kib} KiB "
            "(head, body, chunk framing and trailers all count)"
        )

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


def chunked_is_final(codings: bytes) -> bool:
    """Whether a Transfer-Encoding value ends in chunked, read exactly as llhttp reads it
    (a unit test holds the two together), so that both agree on where a body ends."""
    final = codings.rpartition(b",")[2].lstrip(b" \t").rstrip(b" ")
    return final.lower() == b"chunked"


class _StopParsing(Exception):
    """Raised from a parser callback to stop reading a response that has been answered."""


# llhttp's reasons are fixed texts that never quote the receiver's bytes; the common ones
# are said in a person's words, the rest kept as llhttp says them.
_PARSER_REASONS: Final = {
    "Duplicate Content-Length": "the response has more than one Content-Length, so its "
    "length is ambiguous",
    "Invalid character in Content-Length": "the response's Content-Length is not a number",
    "Expected HTTP/, RTSP/ or ICE/": "the receiver did not answer in HTTP/1.x",
}


def _parser_reason(exc: Exception) -> str:
    reason = str(exc)
    worded = _PARSER_REASONS.get(reason)
    if worded is not None:
        return worded
    return f"the receiver's answer is not valid HTTP/1.1 ({reason or type(exc).__name__})"


class _Tunnel(asyncio.Protocol):
    """A connection to the egress proxy until it answers CONNECT: the answer's head."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.answer.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end >= 0:
            self.answer.set_result(bytes(self.buffer[:end]))
            del self.buffer[: end + 4]
        elif len(self.buffer) > MAX_HEAD_BYTES:
            self.answer.set_exception(InvalidResponse("endless answer to CONNECT"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(ConnectionClosed("closed before answering CONNECT"))


def _connect_status(head: bytes) -> int | None:
    """The status of a proxy's answer (`HTTP/1.1 200 Connection established`)."""
    parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return None
    return int(parts[1])


class Http1Client:
    """POSTs over pooled keep-alive connections, one request per connection at a time.

    `resolve(host, port)` returns the addresses a connection may use (the adapter's SSRF
    policy lives there); addresses are tried in order. With a `proxy`, each connection
    is a CONNECT tunnel through it to one of those addresses (TLS inside the tunnel
    still checks the destination's name). A cancelled or timed-out `post()` closes its
    connection.
    """

    def __init__(
        self,
        resolve: Resolve,
        *,
        max_body_bytes: int,
        excerpt_bytes: int,
        keepalive_s: float = 30.0,
        proxy: Proxy | None = None,
    ) -> None:
        self._resolve = resolve
        self._proxy = proxy
        self._max_body = max_body_bytes
        self._excerpt_bytes = excerpt_bytes
        self._keepalive_s = keepalive_s
        self._ssl_context: ssl.SSLContext | None = None  # made at the first https connect
        self._idle: dict[_PoolKey, list[_Connection]] = {}
        self._live: set[_Connection] = set()
        self._next_sweep = 0.0

    async def post(
        self,
        target: Target,
        request: bytes,
        timeout_s: float,
        tenant: str = "",
        tls: TlsIdentity | None = None,
    ) -> Response:
        """POST `request`; the whole exchange, connect included, ends within `timeout_s`.

        Raises TimeoutError when it does not. The exchange on a pooled connection is
        bounded by one timer on the loop rather than an `asyncio.timeout` scope: the
        same bound for a fraction of the CPU, paid on every delivery. Connections are
        pooled per `tenant` as well as per origin, so that whatever a misbehaving
        receiver leaves on a connection never reaches another tenant's attempt. `tls`
        replaces the default TLS context for an https target; its connections are kept
        apart from those made with any other context (another client certificate, or
        another set of trusted CAs, must never reuse them).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        key = (tenant, target.host, target.port, target.tls, tls[0] if tls else "")
        conn = self._idle_connection(key)
        if conn is None:
            async with asyncio.timeout_at(deadline):
                conn = await self._connect(target, tls[1] if tls else None)
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
            self._idle.setdefault(key, []).append(conn)
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

    def _idle_connection(self, key: _PoolKey) -> _Connection | None:
        idle = self._idle.get(key)
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
        for key, idle in list(self._idle.items()):
            kept = []
            for conn in idle:
                if conn.usable(oldest_usable):
                    kept.append(conn)
                else:
                    conn.abort()
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]

    async def _connect(self, target: Target, context: ssl.SSLContext | None) -> _Connection:
        addresses = await self._resolve(target.host, target.port)
        loop = asyncio.get_running_loop()
        tls = (context or self._tls_context()) if target.tls else None
        server_hostname = target.server_name if tls is not None else None
        if self._proxy is not None:
            return await self._tunnel(self._proxy, addresses, target, tls)
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

    async def _tunnel(
        self, proxy: Proxy, addresses: Sequence[str], target: Target, tls: ssl.SSLContext | None
    ) -> _Connection:
        """A connection through the proxy to the first address it opens a tunnel to."""
        if not addresses:
            raise CannotConnect(OSError("the destination resolved to no address"))
        loop = asyncio.get_running_loop()
        refusal = ""
        for address in addresses:
            try:
                transport, tunnel = await loop.create_connection(_Tunnel, proxy.host, proxy.port)
            except OSError as exc:
                raise ProxyFailed(proxy, f"cannot connect: {type(exc).__name__}: {exc}") from None
            try:
                authority = Proxy(address, target.port).name  # host:port, [v6]:port
                transport.write(
                    f"CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n\r\n".encode()
                )
                try:
                    status = _connect_status(await tunnel.answer)
                except (InvalidResponse, ConnectionClosed) as exc:
                    raise ProxyFailed(proxy, str(exc)) from None
                if status is None or not 200 <= status < 300:
                    # e.g. 403 (the proxy's policy) or 502 (it could not reach the
                    # address): the next address may fare better
                    transport.abort()
                    refusal = f"answered {status or 'an invalid status'} to CONNECT"
                    continue
                if tunnel.buffer:
                    raise ProxyFailed(proxy, "sent bytes before the tunnel was used")
                conn = _Connection(self._live, self._max_body, self._excerpt_bytes)
                if tls is None:
                    transport.set_protocol(conn)
                    conn.connection_made(transport)
                else:
                    inner = await loop.start_tls(
                        transport, conn, tls, server_hostname=target.server_name
                    )
                    if inner is None:  # pragma: no cover - only for a closing transport
                        raise ConnectionClosed("the tunnel closed during the TLS handshake")
                    conn.connection_made(inner)
                return conn
            except BaseException:
                transport.abort()
                raise
        raise ProxyFailed(proxy, refusal)

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context
