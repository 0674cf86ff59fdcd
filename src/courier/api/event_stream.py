"""The lifecycle-event stream (Server-Sent Events) behind `/v1/delivery-events/stream`.

Each client pulls its own tenant's feed from its own position, one page at a time, so
what the server holds per client is bounded by construction: one page of at most
`page_size` events. A client waits between pages until its tenant's NOTIFY arrives
(one LISTEN connection per app: `FeedHub`) or `poll_interval_s` passes, whichever is
first; NOTIFY only covers new events (enqueue), completions are found by the poll.

Writing a page to a client that does not read blocks once the socket buffers are full;
a page not taken within `send_timeout_s` drops the client (it reconnects with
`Last-Event-ID` and resumes where it was). A comment line every `heartbeat_s` keeps idle
connections (and the proxies between) open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.responses import StreamingResponse
from starlette.types import Message, Send

from courier.enqueue import NOTIFY_CHANNEL
from courier.metrics import CourierMetrics
from courier.store.feed import FeedPosition, LifecycleEvent, read_feed

logger = logging.getLogger("courier.api")

HEARTBEAT_S = 15.0  # seconds between comment lines on an idle stream
POLL_INTERVAL_S = 0.5  # seconds between feed reads when no NOTIFY arrives
PAGE_SIZE = 100  # events per read, and so the most a client has in flight
SEND_TIMEOUT_S = 10.0  # seconds a client may take to accept one page before it is dropped
RECONNECT_MS = 2000  # the `retry:` a client is told to wait before reconnecting
LISTEN_RETRY_S = 1.0  # seconds between attempts to reopen the LISTEN connection
POOL_TIMEOUT_S = 5.0  # seconds a stream waits for a pooled connection


@dataclass(frozen=True, slots=True)
class StreamConfig:
    heartbeat_s: float = HEARTBEAT_S
    poll_interval_s: float = POLL_INTERVAL_S
    page_size: int = PAGE_SIZE
    send_timeout_s: float = SEND_TIMEOUT_S


class FeedHub:
    """One LISTEN connection per app; a NOTIFY for a tenant wakes that tenant's streams."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def subscribe(self, tenant_id: uuid.UUID) -> Iterator[asyncio.Event]:
        key = str(tenant_id)
        event = asyncio.Event()
        self._waiters[key].add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[key]

    def wake(self, tenant: str) -> None:
        for event in self._waiters.get(tenant, ()):
            event.set()

    def wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, application_name="courier-api-listen"
                )
                try:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.listening.set()
                    self.wake_all()  # whatever arrived while we were not listening
                    while not stop.is_set():
                        async for note in conn.notifies(timeout=1.0):
                            self.wake(note.payload)
                finally:
                    self.listening.clear()
                    with contextlib.suppress(Exception):
                        await conn.close()
            except (psycopg.Error, OSError) as exc:
                if stop.is_set():
                    return
                logger.warning(
                    "event stream LISTEN failed (%s); polling meanwhile", type(exc).__name__
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=LISTEN_RETRY_S)


def format_event(event: LifecycleEvent) -> bytes:
    """One SSE message: the cursor as `id`, the event JSON as `data` (one line)."""
    return b"id: %s\ndata: %s\n\n" % (event.cursor.encode("ascii"), orjson.dumps(event.to_json()))


HEARTBEAT = b": heartbeat\n\n"


async def event_stream(
    *,
    pool: AsyncConnectionPool[Any],
    hub: FeedHub,
    tenant_id: uuid.UUID,
    after: FeedPosition,
    config: StreamConfig,
) -> AsyncGenerator[bytes, None]:
    """The SSE body: pages of events as they become visible, heartbeats in between."""
    position = after
    with hub.subscribe(tenant_id) as wake:  # before the first byte: no NOTIFY is missed
        yield b"retry: %d\n\n" % RECONNECT_MS
        last_sent = time.monotonic()
        while True:
            wake.clear()
            async with pool.connection(timeout=POOL_TIMEOUT_S) as conn:
                events = await read_feed(conn, tenant_id, position, config.page_size)
            if events:
                position = events[-1].position
                yield b"".join(format_event(e) for e in events)
                last_sent = time.monotonic()
                if len(events) == config.page_size:
                    continue  # there is probably more
            idle = time.monotonic() - last_sent
            if idle >= config.heartbeat_s:
                yield HEARTBEAT
                last_sent = time.monotonic()
                idle = 0.0
            timeout = min(config.poll_interval_s, config.heartbeat_s - idle)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=max(0.0, timeout))


class SlowClient(Exception):
    """The client did not accept a page within the send timeout."""


class EventStreamResponse(StreamingResponse):
    """A text/event-stream response that drops a client which stops reading.

    Every write is bounded by `send_timeout_s`; when one does not complete in time the
    stream ends and the server closes the connection, so a stalled client costs at most
    one page of memory and never holds a database connection.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncGenerator[bytes, None],
        *,
        send_timeout_s: float,
        metrics: CourierMetrics,
    ) -> None:
        super().__init__(
            content,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            media_type=self.media_type,
        )
        self._send_timeout_s = send_timeout_s
        self._metrics = metrics
        self._content = content

    async def stream_response(self, send: Send) -> None:
        async def timed_send(message: Message) -> None:
            try:
                await asyncio.wait_for(send(message), timeout=self._send_timeout_s)
            except TimeoutError:
                raise SlowClient from None

        self._metrics.stream_clients.inc()
        try:
            await super().stream_response(timed_send)
        except SlowClient:
            self._metrics.stream_clients_dropped_total.inc()
            logger.warning(
                "event stream client dropped: it did not read a page within %.1fs",
                self._send_timeout_s,
            )
        finally:
            self._metrics.stream_clients.dec()
            with contextlib.suppress(Exception):
                await self._content.aclose()
