"""The HTTP/1.1 client byte for byte: scripted receivers on 127.0.0.1 answer exactly what a
test writes, including what well-behaved servers never send (split packets, 1xx, bodies
ended by close, extra bytes, early hang-ups), through the whole WebhookAdapter.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from courier.adapters.base import DeliveryRequest
from courier.adapters.webhook import WebhookAdapter
from courier.signing import generate_secret

SECRET = generate_secret()
BODY = b'{"type":"invoice.paid","data":{"id":"inv_1"}}'

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Scripted"], Awaitable[None]]


@dataclass
class Scripted:
    """A TCP listener whose every connection runs `script`; records each request head."""

    script: Script
    port: int = 0
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def read_request(self, reader: asyncio.StreamReader) -> bool:
        """Read one request; False when the client closed the connection instead."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return False
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        self.heads.append(head)
        self.bodies.append(await reader.readexactly(length))
        return True


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Script], Awaitable[Scripted]]]:
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> Scripted:
        state = Scripted(script)

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            state.connections += 1
            try:
                await script(reader, writer, state)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        servers.append(server)
        state.port = server.sockets[0].getsockname()[1]
        return state

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def request(url: str, *, event_id: str = "msg_1", timeout_s: float = 5.0) -> DeliveryRequest:
    return DeliveryRequest(url, event_id, BODY, (SECRET,), timeout_s)


def answer_each(*responses: bytes) -> Script:
    """Answer the n-th request on a connection with responses[n], then keep reading."""

    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted
    ) -> None:
        for response in responses:
            if not await state.read_request(reader):
                return
            writer.write(response)
            await writer.drain()
        await reader.read()  # wait for the client to hang up

    return script


def answer_then_hang_up(response: bytes) -> Script:
    """Answer the first request with `response`, then close the connection."""

    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted
    ) -> None:
        await state.read_request(reader)
        writer.write(response)
        await writer.drain()

    return script


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_the_request_on_the_wire(scripted: Callable[..., Awaitable[Scripted]]) -> None:
    server = await scripted(answer_each(OK))
    a = WebhookAdapter(allow_private=True)
    try:
        url = f"http://user:p%40ss@127.0.0.1:{server.port}/in/hook?x=1%202"
        result = await a.deliver(request(url))
    finally:
        await a.close()
    assert result.outcome == "succeeded"
    [head] = server.heads
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /in/hook?x=1%202 HTTP/1.1"
    fields = dict(line.split(": ", 1) for line in lines[1:] if line)
    assert fields["host"] == f"127.0.0.1:{server.port}"
    # URL user-info goes out as Basic credentials, percent-decoded, as aiohttp sent it.
    assert fields["authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert fields["content-length"] == str(len(BODY))
    assert fields["content-type"] == "application/json"
    assert fields["webhook-id"] == "msg_1"
    assert server.bodies == [BODY]


async def test_a_response_split_into_single_bytes_is_parsed(
    scripted: Callable[..., Awaitable[Scripted]], adapter: WebhookAdapter
) -> None:
    response = b"HTTP/1.1 500 Oops\r\nRetry-After: 3\r\nContent-Length: 9\r\n\r\nwe broke!"

    async def dribble(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted
    ) -> None:
        await state.read_request(reader)
        for i in range(len(response)):
            writer.write(response[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0.001)
        await reader.read()

    server = await scripted(dribble)
    result = await adapter.deliver(request(server.url))
    assert result.http_status == 500
    assert result.error_summary == "HTTP 500: we broke!"


async def test_a_chunked_response_is_read_and_the_connection_kept(
    scripted: Callable[..., Awaitable[Scripted]], adapter: WebhookAdapter
) -> None:
    chunked = (
        b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nbad \r\n7\r\nrequest\r\n0\r\n\r\n"
    )
    server = await scripted(answer_each(chunked, OK))
    first = await adapter.deliver(request(server.url))
    second = await adapter.deliver(request(server.url))
    assert first.outcome == "permanent_failure"
    assert first.error_summary == "HTTP 400: bad request"
    assert second.outcome == "succeeded"
    assert server.connections == 1


async def test_a_body_ended_by_closing_the_connection_is_a_whole_response(
    scripted: Callable[..., Awaitable[Scripted]], adapter: WebhookAdapter
) -> None:
    close_delimited = b"HTTP/1.1 503 Busy\r\nRetry-After: 9\r\n\r\ntry later"
    server = await scripted(answer_then_hang_up(close_delimited))
    result = await adapter.deliver(request(server.url))
    assert result.outcome == "retryable_failure"
    assert result.http_status == 503
    assert result.retry_after_s == 9
    assert result.error_summary == "HTTP 503: try later"
    # The connection died with that response; the next delivery opens a new one.
    assert (await adapter.deliver(request(server.url))).http_status == 503
    assert server.connections == 2


async def test_informational_responses_before_the_real_one_are_skipped(
    scripted: Callable[..., Awaitable[Scripted]], adapter: WebhookAdapter
) -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    server = await scripted(answer_each(early + b"HTTP/1.1 100 Continue\r\n\r\n" + OK, OK))
    first = await adapter.deliver(request(server.url))
    second = await adapter.deliver(request(server.url))
    assert (first.outcome, first.http_status) == ("succeeded", 200)
    assert second.outcome == "succeeded"
    assert server.connections == 1


async def test_connection_close_is_honoured(
    scripted: Callable[..., Awaitable[Scripted]], adapter: WebhookAdapter
) -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    server = await scripted(answer_each(closing, closing))
    for _ in range(3):
        assert (await adapter.deliver(request(server.url))).outcome == "succeeded"
    assert server.connections == 3


async def test_a_receiver_closing_idle_connections_costs_no_failed_attempt(
    scripted: Callable[..., Awaitable[Scripted]], adapter: WebhookAdapter
) -> None:
    # OK is keep-alive by default, yet the server closes right after sending it.
    server = await scripted(answer_then_hang_up(OK))
    for _ in range(3):
        assert (await adapter.deliver(request(server.url))).outcome == "succeeded"
        await asyncio.sleep(0.05)  # the FIN arrives while the connection is idle
    assert server.connections == 3


async def test_bytes_after_the_response_drop_the_connection(
    scripted: Callable[..., Awaitable[Scripted]], adapter: WebhookAdapter
) -> None:
    server = await scripted(answer_each(OK + b"HTTP/1.1 500 Surprise\r\n\r\n", OK))
    first = await adapter.deliver(request(server.url))
    second = await adapter.deliver(request(server.url))
    assert first.outcome == "succeeded"
    assert second.outcome == "succeeded"
    assert server.connections == 2


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Len", "ConnectionClosed"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly", "ConnectionClosed"),
        (b"garbage\r\n\r\n", "invalid response"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 200 + b"\r\n", "invalid response"),
    ],
    ids=["mid-head", "short-body", "not-http", "too-many-headers"],
)
async def test_broken_responses_are_retryable_and_named(
    response: bytes,
    reason: str,
    scripted: Callable[..., Awaitable[Scripted]],
    adapter: WebhookAdapter,
) -> None:
    server = await scripted(answer_then_hang_up(response))
    result = await adapter.deliver(request(server.url))
    assert result.outcome == "retryable_failure"
    assert result.http_status is None
    assert result.error_summary is not None
    assert reason in result.error_summary
    assert "X-A" not in result.error_summary


async def test_an_event_id_that_would_inject_a_header_is_never_sent(
    scripted: Callable[..., Awaitable[Scripted]], adapter: WebhookAdapter
) -> None:
    server = await scripted(answer_each(OK))
    result = await adapter.deliver(request(server.url, event_id="msg_1\r\nx-evil: 1"))
    assert result.outcome == "permanent_failure"
    assert result.error_summary is not None
    assert result.error_summary.startswith("cannot build the request")
    assert server.connections == 0


async def test_a_cancelled_delivery_closes_its_connection(
    scripted: Callable[..., Awaitable[Scripted]], adapter: WebhookAdapter
) -> None:
    asked, hung_up = asyncio.Event(), asyncio.Event()

    async def never_answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted
    ) -> None:
        if await state.read_request(reader):
            asked.set()
            await reader.read()  # returns when the client closes its end
            hung_up.set()

    server = await scripted(never_answer)
    task = asyncio.create_task(adapter.deliver(request(server.url)))
    await asyncio.wait_for(asked.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(hung_up.wait(), 5)


async def test_a_timed_out_connection_is_not_reused(
    scripted: Callable[..., Awaitable[Scripted]], adapter: WebhookAdapter
) -> None:
    async def first_one_hangs(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted
    ) -> None:
        while await state.read_request(reader):
            if state.connections > 1:
                writer.write(OK)
                await writer.drain()

    server = await scripted(first_one_hangs)
    late = await adapter.deliver(request(server.url, timeout_s=0.3))
    assert late.outcome == "retryable_failure"
    assert late.error_summary == "timeout after 0.3s"
    # Its response could still arrive and would answer the next request: a new connection.
    assert (await adapter.deliver(request(server.url))).outcome == "succeeded"
    assert server.connections == 2


async def test_an_endless_trailer_is_cut_off_at_the_response_bound(
    scripted: Callable[..., Awaitable[Scripted]], adapter: WebhookAdapter
) -> None:
    # The body is complete; the trailer field after it never ends. Its bytes count
    # against the same bound as the head and body, so the client hangs up early.
    limit = 32 * 1024 * 1024
    sent = [0]

    async def endless_trailer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted
    ) -> None:
        await state.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: ")
        while sent[0] < limit:
            writer.write(b"t" * 65536)
            await writer.drain()
            sent[0] += 65536
        writer.write(b"\r\n\r\n")

    server = await scripted(endless_trailer)
    result = await adapter.deliver(request(server.url))
    assert result.outcome == "retryable_failure"
    assert result.error_summary == (
        "invalid response: the response did not end within 192 KiB "
        "(head, body, chunk framing and trailers all count)"
    )
    await asyncio.sleep(0.1)  # the receiver's next write meets the closed connection
    assert sent[0] < limit


async def test_a_connection_with_unsent_request_bytes_is_never_reused(
    scripted: Callable[..., Awaitable[Scripted]], adapter: WebhookAdapter
) -> None:
    # The receiver answers after the head, keeps the connection and never drains the
    # body: had the client pooled it, the next request would follow the rest of this
    # body, and the receiver would read that body's bytes as the next request's start.
    payload = b'{"card":"' + b"4" * (16 * 1024 * 1024) + b'"}'

    async def answer_early_then_read_on(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted
    ) -> None:
        if state.connections > 1:
            await answer_each(OK)(reader, writer, state)
            return
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.3)  # the client has the answer while its body is unsent
        seen = bytearray()
        while not seen.endswith(b"\r\n\r\n") and b"\r\n\r\n" not in seen[-65536:]:
            chunk = await reader.read(65536)
            if not chunk:
                return
            seen += chunk
        echo = b"cannot parse: " + bytes(seen[:40])
        writer.write(b"HTTP/1.1 400 Bad\r\nContent-Length: %d\r\n\r\n" % len(echo) + echo)
        await writer.drain()
        await reader.read()

    server = await scripted(answer_early_then_read_on)
    first = await adapter.deliver(DeliveryRequest(server.url, "msg_1", payload, (SECRET,), 10.0))
    assert first.http_status == 413
    second = await adapter.deliver(request(server.url, event_id="msg_2", timeout_s=10.0))
    assert (second.outcome, second.error_summary) == ("succeeded", None)
    assert server.connections == 2


async def test_connections_are_pooled_per_tenant(
    scripted: Callable[..., Awaitable[Scripted]], adapter: WebhookAdapter
) -> None:
    server = await scripted(answer_each(OK, OK, OK))
    for tenant in ("tenant_a", "tenant_b", "tenant_a", "tenant_b"):
        delivery = DeliveryRequest(server.url, "msg_1", BODY, (SECRET,), 5.0, tenant)
        assert (await adapter.deliver(delivery)).outcome == "succeeded"
    # Each tenant reuses its own connection, never the other's.
    assert server.connections == 2


async def test_a_body_the_receiver_left_unread_never_reaches_another_tenant(
    scripted: Callable[..., Awaitable[Scripted]], adapter: WebhookAdapter
) -> None:
    # The first connection's receiver answers after the head and keeps the connection
    # without reading the (small, wholly sent) body: the client cannot see that, so only
    # a pool kept per tenant stops those bytes from prefixing another tenant's request,
    # which this receiver would quote back in an error.
    payload = b'{"tenant_a_card":"4111111111111111"}'

    async def ignore_the_body(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted
    ) -> None:
        if state.connections > 1:
            await answer_each(OK)(reader, writer, state)
            return
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        seen = await reader.readuntil(b"\r\n\r\n")  # the leftover body, then the next head
        echo = b"cannot parse: " + seen[:40]
        writer.write(b"HTTP/1.1 400 Bad\r\nContent-Length: %d\r\n\r\n" % len(echo) + echo)
        await writer.drain()
        await reader.read()

    server = await scripted(ignore_the_body)
    mine = DeliveryRequest(server.url, "msg_1", payload, (SECRET,), 5.0, "tenant_a")
    assert (await adapter.deliver(mine)).outcome == "succeeded"
    theirs = DeliveryRequest(server.url, "msg_2", BODY, (SECRET,), 5.0, "tenant_b")
    result = await adapter.deliver(theirs)
    assert (result.outcome, result.error_summary) == ("succeeded", None)
    assert server.connections == 2
