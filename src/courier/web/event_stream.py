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

A stream outlives the request that authenticated it, so every `auth_recheck_s` it asks its
`authorized` check again (is the API key still live, has the console session expired)
and ends when the answer is no; a client that reconnects is then refused. `StreamSlots`
caps the streams a tenant holds open in one process, so one tenant cannot take every
pooled connection the streams draw on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from courier.errors import CourierError
from courier.metrics import CourierMetrics
from courier.store.feed import FeedPosition, LifecycleEvent, read_feed
from courier.store.notify import connector, listen, pause

logger = logging.getLogger("courier.api")

HEARTBEAT_S = 15.0  # seconds between comment lines on an idle stream
POLL_INTERVAL_S = 0.5  # seconds between feed reads when no NOTIFY arrives
PAGE_SIZE = 100  # events per read, and so the most a client has in flight
SEND_TIMEOUT_S = 10.0  # seconds a client may take to accept one page before it is dropped
RECONNECT_MS = 2000  # the `retry:` a client is told to wait before reconnecting
LISTEN_RETRY_S = 1.0  # seconds between attempts to reopen the LISTEN connection
POOL_TIMEOUT_S = 5.0  # seconds a stream waits for a pooled connection
AUTH_RECHECK_S = 30.0  # seconds between checks that a stream's credential still holds
SLOTS_RETRY_AFTER_S = 10  # the Retry-After (seconds) of a stream refused for its tenant's cap

# Asked on a pooled connection every `auth_recheck_s`: does the stream's credential hold?
Authorized = Callable[[psycopg.AsyncConnection[Any]], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class StreamConfig:
    heartbeat_s: float = HEARTBEAT_S
    poll_interval_s: float = POLL_INTERVAL_S
    page_size: int = PAGE_SIZE
    send_timeout_s: float = SEND_TIMEOUT_S
    auth_recheck_s: float = AUTH_RECHECK_S


class StreamSlots:
    """The streams each tenant holds open in this process, at most `per_tenant` each."""

    def __init__(self, per_tenant: int) -> None:
        self.per_tenant = per_tenant
        self._open: defaultdict[uuid.UUID, int] = defaultdict(int)

    def acquire(self, tenant_id: uuid.UUID) -> bool:
        """Take a slot for a new stream; False when the tenant already holds its cap."""
        if self._open[tenant_id] >= self.per_tenant:
            return False
        self._open[tenant_id] += 1
        return True

    def release(self, tenant_id: uuid.UUID) -> None:
        left = self._open.get(tenant_id, 0) - 1
        if left > 0:
            self._open[tenant_id] = left
        else:
            self._open.pop(tenant_id, None)

    def held(self, tenant_id: uuid.UUID) -> int:
        return self._open.get(tenant_id, 0)


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
        def listening() -> None:
            self.listening.set()
            self.wake_all()  # whatever arrived while we were not listening

        async def failed(exc: BaseException) -> None:
            logger.warning("event stream LISTEN failed (%s); polling meanwhile", type(exc).__name__)
            await pause(stop, LISTEN_RETRY_S)

        await listen(
            connector(self._conninfo, "courier-api-listen"),
            stop,
            on_notify=self.wake,
            on_listening=listening,
            on_lost=self.listening.clear,
            on_error=failed,
        )


def format_event(event: LifecycleEvent) -> bytes:
    """One SSE message: the cursor as `id`, the event JSON as `data` (one line)."""
    return b"id: %s\ndata: %s\n\n" % (event.cursor.encode("ascii"), orjson.dumps(event.to_json()))


HEARTBEAT = b": heartbeat\n\n"
REVOKED = b": the credential no longer holds; closing\n\n"


async def event_stream(
    *,
    pool: AsyncConnectionPool[Any],
    hub: FeedHub,
    tenant_id: uuid.UUID,
    after: FeedPosition,
    config: StreamConfig,
    authorized: Authorized,
    visible: Callable[[LifecycleEvent], bool] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The SSE body: pages of events as they become visible, heartbeats in between.

    It ends (after a comment saying why) once `authorized` answers False. With `visible`,
    only the events it accepts are sent (a console session limited to some destinations);
    the position still moves past the others.
    """
    position = after
    with hub.subscribe(tenant_id) as wake:  # before the first byte: no NOTIFY is missed
        yield b"retry: %d\n\n" % RECONNECT_MS
        last_sent = time.monotonic()
        next_check = last_sent + config.auth_recheck_s
        while True:
            wake.clear()
            holds = True
            async with pool.connection(timeout=POOL_TIMEOUT_S) as conn:
                if time.monotonic() >= next_check:
                    holds = await authorized(conn)
                    next_check = time.monotonic() + config.auth_recheck_s
                events = (
                    await read_feed(conn, tenant_id, position, config.page_size) if holds else []
                )
            if not holds:  # said outside the block: a write never holds a pooled connection
                logger.info("event stream closed: its credential no longer holds")
                yield REVOKED
                return
            if events:
                position = events[-1].position
                shown = events if visible is None else [e for e in events if visible(e)]
                if shown:
                    yield b"".join(format_event(e) for e in shown)
                    last_sent = time.monotonic()
                if len(events) == config.page_size:
                    continue  # there is probably more
            idle = time.monotonic() - last_sent
            if idle >= config.heartbeat_s:
                yield HEARTBEAT
                last_sent = time.monotonic()
                idle = 0.0
            timeout = min(
                config.poll_interval_s,
                config.heartbeat_s - idle,
                next_check - time.monotonic(),
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=max(0.0, timeout))


class SlowClient(CourierError):
    """The client did not accept a page within the send timeout."""


class EventStreamResponse(StreamingResponse):
    """A text/event-stream response that drops a client which stops reading.

    Every write is bounded by `send_timeout_s`; when one does not complete in time the
    stream ends and the server closes the connection, so a stalled client costs at most
    one page of memory and never holds a database connection. `on_close` runs once the
    response is over, however it ended (it gives back the tenant's stream slot).
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncGenerator[bytes, None],
        *,
        send_timeout_s: float,
        metrics: CourierMetrics,
        on_close: Callable[[], None],
    ) -> None:
        super().__init__(
            content,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            media_type=self.media_type,
        )
        self._send_timeout_s = send_timeout_s
        self._metrics = metrics
        self._content = content
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()

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
