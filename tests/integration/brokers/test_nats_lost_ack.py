"""A JetStream publish whose acknowledgement is lost: the stream has the message, the
worker never hears so. The attempt is a retryable failure ("no acknowledgement"), the
retry publishes the same event again with the same Nats-Msg-Id, and the stream keeps one
message. The acknowledgement is dropped by a relay on loopback in front of the real NATS
server, which reads the protocol's frames and forwards everything else."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js import JetStreamContext

from courier.enqueue import enqueue_event
from tests.integration.brokers.conftest import broker_destination, broker_worker
from tests.support.engine import Engine, attempts, delivery, run_workers, wait_terminal

NATS_HOST, NATS_PORT = "127.0.0.1", 4222


class AckDropper:
    """A TCP relay to NATS that swallows the server's first message frame (MSG or HMSG:
    the reply to a request, here a JetStream PubAck) after the client's first publish
    (HPUB), and counts the publishes it forwarded."""

    def __init__(self) -> None:
        self.publishes = 0
        self.dropped = 0
        self._armed = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"nats://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _client_to_server(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while line := await src.readline():
            if line.startswith(b"HPUB ") or line.startswith(b"PUB "):
                size = int(line.split()[-1])
                line += await src.readexactly(size + 2)
                self.publishes += 1
                if self.publishes == 1:
                    self._armed = True  # before forwarding: the ack cannot overtake us
            dst.write(line)
            await dst.drain()

    async def _server_to_client(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while line := await src.readline():
            if line.startswith(b"MSG ") or line.startswith(b"HMSG "):
                size = int(line.split()[-1])
                line += await src.readexactly(size + 2)
                if self._armed:
                    self._armed = False
                    self.dropped += 1
                    continue
            dst.write(line)
            await dst.drain()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(NATS_HOST, NATS_PORT)
        pumps = [
            asyncio.ensure_future(self._client_to_server(reader, up_writer)),
            asyncio.ensure_future(self._server_to_client(up_reader, writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for w in (writer, up_writer):
                w.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._pipe(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a hang-up, or the relay closing: the task ends quietly either way
        finally:
            self._tasks.discard(task)

    async def __aenter__(self) -> AckDropper:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def js(unique: str) -> AsyncIterator[tuple[JetStreamContext, str, str]]:
    client = await nats.connect(f"nats://{NATS_HOST}:{NATS_PORT}")
    stream, subject = f"COURIER_ACK_{unique}", f"courier.ack.{unique}"
    context = client.jetstream()
    await context.add_stream(name=stream, subjects=[subject], duplicate_window=120.0)
    try:
        yield context, stream, subject
    finally:
        await context.delete_stream(stream)
        await client.close()


async def test_a_lost_ack_is_retried_and_the_stream_keeps_one_message(
    engine: Engine, js: tuple[JetStreamContext, str, str]
) -> None:
    context, stream, subject = js
    async with AckDropper() as relay:
        broker_destination(
            engine,
            "nats",
            {"url": relay.url, "subject": subject},
            max_attempts=5,
            timeout_ms=1000,
            backoff_initial_ms=100,
            backoff_max_ms=200,
        )
        event = enqueue_event(engine.conn, engine.tenant, "invoice.paid", {"invoice": 7})
        async with run_workers([broker_worker(engine)]):
            await wait_terminal(engine.db_url, 1)
        assert relay.dropped == 1
        assert relay.publishes == 2  # the publish whose ack was lost, and the retry
    d = delivery(engine.conn, event.deliveries[0].id)
    assert d["state"] == "delivered"
    first, second = attempts(engine.conn, d["id"])
    # The publish's own timer or the attempt's (both 1 s) ends the wait; either way it is
    # a retryable failure, not a delivery.
    assert first["outcome"] == "retryable_failure"
    assert first["error_summary"] in ("no acknowledgement within 1s", "timeout after 1s")
    assert (second["outcome"], second["error_summary"]) == ("succeeded", None)
    info = await context.stream_info(stream)
    assert info.state.messages == 1  # the retry was de-duplicated by Nats-Msg-Id
    consumer = await context.pull_subscribe(subject, durable=f"c{stream}", stream=stream)
    (message,) = await consumer.fetch(1, timeout=5)
    assert dict(message.headers or {})["Nats-Msg-Id"] == str(event.event_id)
