"""The HTTP/1.1 client held to RFC 9112, with h11 as the second opinion.

Each row is one way a receiver can answer a POST: scripted raw-socket receivers on
127.0.0.1 send exactly the row's bytes, courier's client reads them, and the same bytes
are fed to h11 (`h11.Connection(h11.CLIENT)`), a sans-I/O implementation written
straight from the RFC. Both come to a verdict: an answer (status, body bytes, whether
the connection may carry another request) or a refusal. They must agree, except where
a row says in `reason` why courier deliberately decides otherwise; there the test
checks that the documented difference is real, so a row cannot go stale silently.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import h11
import pytest
from yarl import URL

from courier.adapters.http1 import ConnectionClosed, Http1Client, InvalidResponse, Target
from tests.integration.adapter import test_http1_wire
from tests.integration.adapter.test_http1_wire import (
    Script,
    Scripted,
    answer_each,
    answer_then_hang_up,
)

scripted = test_http1_wire.scripted  # the wire tests' receivers, as a fixture here too

MAX_BODY = 64 * 1024  # the webhook adapter's cap
TIMEOUT_S = 5.0
STREAM_LIMIT = 32 * 1024 * 1024  # an endless receiver gives up after this much
H11_PREFIX = 1024 * 1024  # how much of an endless stream h11 is shown


@dataclass(frozen=True)
class Answered:
    status: int
    body: bytes
    reusable: bool

    def __repr__(self) -> str:  # bodies run to a megabyte
        body = self.body if len(self.body) <= 40 else self.body[:40] + b"..."
        return f"Answered({self.status}, {body!r} ({len(self.body)} bytes), {self.reusable})"


@dataclass(frozen=True)
class Refused:
    words: str = ""  # what courier's reason says (h11's reasons are not compared)


Verdict = Answered | Refused


@dataclass(frozen=True)
class Row:
    id: str
    response: bytes  # what the receiver sends once it has the request head
    courier: Verdict
    hang_up: bool = False  # the receiver closes after sending (else it keeps listening)
    # Where h11 decides otherwise: its verdict, and why courier's is the right one.
    h11: Verdict | None = None
    reason: str = ""
    kind: str = "plain"  # plain | dribble | endless | early
    filler: bytes = b""  # endless: repeated after `response` until the client hangs up
    request_body: int = 2  # bytes of request body


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
GZIP_OK = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\xcf\x06\x00G\xdd\xdc\x79\x02\x00\x00\x00"
ONE_BYTE_CHUNKS = b"".join(b"1\r\n%c\r\n" % (0x61 + i % 26) for i in range(48 * 1024))

ROWS = [
    Row("content-length", OK, Answered(200, b"ok", True)),
    Row(
        "split-into-single-bytes",
        b"HTTP/1.1 500 Oops\r\nRetry-After: 3\r\nContent-Length: 9\r\n\r\nwe broke!",
        Answered(500, b"we broke!", True),
        kind="dribble",
    ),
    Row(
        "chunked",
        b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nbad \r\n7\r\nrequest\r\n0\r\n\r\n",
        Answered(400, b"bad request", True),
    ),
    Row(
        "chunked-with-extensions-and-trailers",
        CHUNKED + b"2;name=value\r\nok\r\n0\r\nX-Checksum: 1\r\n\r\n",
        Answered(200, b"ok", True),
    ),
    Row(
        "close-delimited",
        b"HTTP/1.1 503 Busy\r\nRetry-After: 9\r\n\r\ntry later",
        Answered(503, b"try later", False),
        hang_up=True,
    ),
    Row(
        "transfer-coding-not-chunked-is-close-delimited",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n" + GZIP_OK,
        Answered(200, GZIP_OK, False),
        hang_up=True,
        h11=Refused(),
        reason="RFC 9112 6.3: a response whose final transfer coding is not chunked runs to "
        "the close, a legal body; h11 implements no coding but chunked and refuses it",
    ),
    Row(
        "chunked-not-last-is-close-delimited",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        Answered(200, b"2\r\nok\r\n0\r\n\r\n", False),
        hang_up=True,
        h11=Refused(),
        reason="RFC 9112 6.3: chunked not last means the close ends the body, which is read "
        "as sent (courier decodes nothing); h11 accepts only 'chunked' alone",
    ),
    Row(
        "chunked-last-of-two-fields",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
        Answered(200, b"ok", True),
        h11=Refused(),
        reason="RFC 9110 5.3 joins repeated fields into one list, whose final coding is "
        "chunked: the body is chunk-framed (its gzip layer is not courier's concern); "
        "h11 refuses any coding but chunked",
    ),
    Row(
        "transfer-encoding-and-content-length",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
        Answered(200, b"ok", False),
        h11=Answered(200, b"ok", True),
        reason="RFC 9112 6.3: Transfer-Encoding wins, but both at once is the shape of "
        "response splitting and 'ought to be handled as an error': courier reads the "
        "response and then drops the connection; h11 would reuse it",
    ),
    Row(
        "content-length-differing-fields",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        Refused("more than one Content-Length"),
    ),
    Row(
        "content-length-differing-list",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok",
        Refused("Content-Length is not a number"),
    ),
    Row(
        "content-length-repeated-equal",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        Refused("more than one Content-Length"),
        h11=Answered(200, b"ok", True),
        reason="RFC 9110 8.6 lets a recipient reject repeated Content-Length fields rather "
        "than fold them; courier's parser (llhttp) rejects, as Node.js does, leaving no "
        "length a receiver and an intermediary could read differently",
    ),
    Row(
        "content-length-signed",
        b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
        Refused("Content-Length is not a number"),
    ),
    Row(
        "content-length-negative",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
        Refused("Content-Length is not a number"),
    ),
    Row(
        "no-content-ignores-content-length",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        Answered(204, b"", True),
    ),
    Row(
        "not-modified-ignores-content-length",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        Answered(304, b"", True),
    ),
    Row(
        "informational-responses-before-the-final-one",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 100 Continue\r\n\r\n" + OK,
        Answered(200, b"ok", True),
    ),
    Row(
        "switching-protocols",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        Refused("the receiver switched protocols (101), which a webhook cannot use"),
    ),
    Row(
        "connection-close",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        Answered(200, b"ok", False),
    ),
    Row(
        "http-1.0",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        Answered(200, b"ok", False),
    ),
    Row(
        "http-1.0-keep-alive",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
        Answered(200, b"ok", True),
        h11=Answered(200, b"ok", False),
        reason="RFC 9112 9.3 lets a recipient honour HTTP/1.0 keep-alive; courier does (as "
        "browsers and aiohttp do), h11 never keeps an HTTP/1.0 connection",
    ),
    Row(
        "no-reason-phrase",
        b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok",
        Answered(200, b"ok", True),
    ),
    Row("idle-hang-up", OK, Answered(200, b"ok", False), hang_up=True),
    Row(
        "stray-bytes-after-the-response",
        OK + b"HTTP/1.1 500 Surprise\r\n\r\n",
        Answered(200, b"ok", False),
        h11=Answered(200, b"ok", True),
        reason="h11 keeps bytes that arrive after a response and would read them as the "
        "answer to the next request; courier never pipelines, so bytes nobody asked for "
        "cannot belong to any request and the connection is dropped",
    ),
    Row("not-http", b"garbage\r\n\r\n", Refused("did not answer in HTTP/1.x"), hang_up=True),
    Row(
        "bare-line-feeds",
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        Refused("not valid HTTP/1.1"),
        h11=Answered(200, b"ok", True),
        reason="RFC 9112 2.2 only allows (MAY) a bare LF as a line end; courier's parser "
        "requires CRLF, the one framing every party reads the same way",
    ),
    Row(
        "space-before-colon",
        b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
        Refused("not valid HTTP/1.1"),
    ),
    Row(
        "closed-mid-head",
        b"HTTP/1.1 200 OK\r\nContent-Len",
        Refused("closed the connection mid-response"),
        hang_up=True,
    ),
    Row(
        "closed-mid-body",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly",
        Refused("closed the connection mid-response"),
        hang_up=True,
    ),
    Row(
        "closed-mid-chunk",
        CHUNKED + b"5\r\nab",
        Refused("closed the connection mid-response"),
        hang_up=True,
    ),
    Row("chunk-size-not-hex", CHUNKED + b"zz\r\nok\r\n0\r\n\r\n", Refused("not valid HTTP/1.1")),
    Row(
        "too-many-headers",
        b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 200 + b"Content-Length: 2\r\n\r\nok",
        Refused("more than 128 response headers"),
        h11=Answered(200, b"ok", True),
        reason="courier caps a response at 128 fields (a webhook reads two of them); h11 "
        "caps only the head's size",
    ),
    Row(
        "oversize-header-field",
        b"HTTP/1.1 200 OK\r\nX-Huge: " + b"h" * 70_000 + b"\r\nContent-Length: 2\r\n\r\nok",
        Refused("response header longer than 8190 bytes"),
        h11=Answered(200, b"ok", True),
        reason="courier caps each field at 8 KiB (the size most servers allow); h11 bounds "
        "only a head still incomplete in its buffer, not one that arrives whole",
    ),
    Row(
        "endless-header-field",
        b"HTTP/1.1 200 OK\r\nX-Endless: ",
        Refused("the response head did not end within 192 KiB"),
        kind="endless",
        filler=b"h" * 65536,
    ),
    Row(
        "oversize-body",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + b"y" * 1048576,
        Answered(200, b"y" * MAX_BODY, False),
        h11=Answered(200, b"y" * 1048576, True),
        reason="courier reads at most 64 KiB of a body (a webhook needs the status and an "
        "excerpt) and drops the connection rather than drain the rest; h11 has no cap",
    ),
    Row(
        "endless-trailer-field",
        CHUNKED + b"2\r\nok\r\n0\r\nX-Trailer: ",
        Refused("the response did not end within 192 KiB"),
        kind="endless",
        filler=b"t" * 65536,
    ),
    Row(
        "endless-informational-responses",
        b"",
        Refused("the response head did not end within 192 KiB"),
        kind="endless",
        filler=b"HTTP/1.1 100 Continue\r\n\r\n" * 2048,
    ),
    Row(
        "chunk-framing-past-the-bound",
        CHUNKED + ONE_BYTE_CHUNKS + b"0\r\n\r\n",
        Refused("the response did not end within 192 KiB"),
        h11=Answered(200, bytes(0x61 + i % 26 for i in range(48 * 1024)), True),
        reason="48 KiB of body in one-byte chunks is 288 KiB on the wire: courier counts "
        "every byte a response sends against one bound, framing included, so no receiver "
        "can keep it parsing; h11 bounds each event, not the response",
    ),
    Row(
        "answered-before-the-request-was-sent",
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n",
        Answered(413, b"", False),
        kind="early",
        request_body=16 * 1024 * 1024,
    ),
]


# --- the receivers ------------------------------------------------------------------


def dribble(response: bytes) -> Script:
    """Answer one byte per packet, then keep the connection."""

    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted
    ) -> None:
        while await state.read_request(reader):
            for i in range(len(response)):
                writer.write(response[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0.001)

    return script


def endless(prefix: bytes, filler: bytes) -> Script:
    """Send `prefix`, then `filler` over and over until the client hangs up (or the limit)."""

    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted
    ) -> None:
        await state.read_request(reader)
        writer.write(prefix)
        sent = len(prefix)
        while sent < STREAM_LIMIT:
            writer.write(filler)
            await writer.drain()
            sent += len(filler)

    return script


def answer_early(response: bytes) -> Script:
    """Answer after the request head, before reading the body, and keep the connection
    without ever draining it: a receiver that neither reads nor closes."""

    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response)
        await writer.drain()
        await asyncio.sleep(0.3)  # the client has the answer while its body is unsent
        while await reader.read(65536):  # then swallow all, answering nothing more
            pass

    return script


def receiver_for(row: Row) -> Script:
    if row.kind == "dribble":
        return dribble(row.response)
    if row.kind == "endless":
        return endless(row.response, row.filler)
    if row.kind == "early":
        return answer_early(row.response)
    if row.hang_up:
        return answer_then_hang_up(row.response)
    return answer_each(row.response, OK)


# --- the two verdicts -----------------------------------------------------------------


async def _loopback(host: str, port: int) -> list[str]:
    return [host]


async def courier_verdict(row: Row, server: Scripted) -> Verdict:
    client = Http1Client(_loopback, max_body_bytes=MAX_BODY, excerpt_bytes=MAX_BODY)
    target = Target.for_post(URL(server.url), "conformance")
    message = target.request({"content-type": "application/json"}, b"x" * row.request_body)
    try:
        try:
            response = await client.post(target, message, TIMEOUT_S)
        except (InvalidResponse, ConnectionClosed) as exc:
            return Refused(str(exc))
        if row.hang_up:
            await asyncio.sleep(0.05)  # the close reaches the idle connection first
        # A second request reuses the connection iff the client kept it.
        before = server.connections
        if row.kind == "early":
            message = target.request({}, b"{}")
        # Only which connection carries it matters here, not how it ends.
        with contextlib.suppress(InvalidResponse, ConnectionClosed, TimeoutError):
            await client.post(target, message, TIMEOUT_S)
        reused = server.connections == before
        return Answered(response.status, response.excerpt, reused)
    finally:
        await client.close()


def h11_verdict(row: Row) -> Verdict:
    conn = h11.Connection(h11.CLIENT)
    length = str(row.request_body)
    headers = [("host", "127.0.0.1"), ("content-length", length)]
    conn.send(h11.Request(method="POST", target="/hook", headers=headers))
    if row.kind != "early":  # an early answer comes while the body is still unsent
        conn.send(h11.Data(data=b"x" * row.request_body))
        conn.send(h11.EndOfMessage())
    data = row.response
    if row.kind == "endless":
        data += row.filler * (H11_PREFIX // len(row.filler))
    chunks = [data[i : i + 1] for i in range(len(data))] if row.kind == "dribble" else [data]
    if row.hang_up or row.kind == "endless":
        chunks.append(b"")  # the close
    status, body, complete = 0, bytearray(), False
    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
                if isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    complete = True
                elif isinstance(event, h11.ConnectionClosed):
                    break
    except h11.ProtocolError:
        return Refused()
    if not complete:
        return Refused()  # courier would wait for the rest until its timeout
    reusable = conn.our_state is h11.DONE and conn.their_state is h11.DONE
    return Answered(status, bytes(body), reusable)


def _same(a: Verdict, b: Verdict) -> bool:
    if isinstance(a, Refused) or isinstance(b, Refused):
        return isinstance(a, Refused) and isinstance(b, Refused)
    return a == b


def _matches(actual: Verdict, expected: Verdict) -> bool:
    if isinstance(expected, Refused):
        return isinstance(actual, Refused) and expected.words in actual.words
    return actual == expected


# --- the tests ---------------------------------------------------------------------


def test_every_difference_from_h11_is_explained() -> None:
    assert len({row.id for row in ROWS}) == len(ROWS)
    for row in ROWS:
        assert (row.h11 is None) == (not row.reason), row.id


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
async def test_courier_reads_each_response_as_rfc_9112_and_h11_do(
    row: Row, scripted: Callable[[Script], Awaitable[Scripted]]
) -> None:
    server = await scripted(receiver_for(row))
    ours = await courier_verdict(row, server)
    theirs = h11_verdict(row)
    assert _matches(ours, row.courier), f"courier: {ours}"
    if row.h11 is None:
        assert _same(ours, theirs), f"h11 disagrees: {theirs}"
    else:
        # The documented difference must be real, or the row's reason is stale.
        assert _matches(theirs, row.h11), f"h11: {theirs}"
        assert not _same(ours, theirs)
