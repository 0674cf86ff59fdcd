"""The lifecycle stream (SSE) on a real uvicorn server: events with their cursor as id,
resumption with Last-Event-ID, NOTIFY wake-ups, heartbeats, and dropping slow clients."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from courier.api.app import create_app
from courier.api.event_stream import StreamConfig
from courier.enqueue import enqueue_event
from courier.metrics import CourierMetrics
from courier.settings import Settings
from tests.conftest import DestinationFactory
from tests.integration.observability.conftest import ApiTenant, uvicorn_serving

DROPPED = "courier_stream_clients_dropped_total"
WAIT_S = 20.0  # generous upper bound for anything the stream should do "soon"


def _app(db_url: str, secret_key: str, **config: Any) -> Any:
    app = create_app(Settings(secret_key=secret_key), db_url)
    app.state.event_stream_config = StreamConfig(**config)
    app.state.metrics = CourierMetrics()
    return app


async def _messages(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """SSE messages as dicts of their fields; comments come as {"comment": text}."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if fields:
                yield fields
            fields = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value


async def _take_events(
    source: httpx.Response | AsyncIterator[dict[str, str]], count: int
) -> list[dict[str, str]]:
    messages = _messages(source) if isinstance(source, httpx.Response) else source
    got: list[dict[str, str]] = []

    async def take() -> None:
        async for message in messages:
            if "data" in message:
                got.append(message)
                if len(got) == count:
                    return

    await asyncio.wait_for(take(), timeout=WAIT_S)
    return got


async def test_stream_sends_events_with_cursor_ids_and_resumes_after_last_event_id(
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    make_api_tenant: Callable[[], ApiTenant],
    make_destination: DestinationFactory,
) -> None:
    t = make_api_tenant()
    make_destination("https://example.com/hook", tenant_id=t.id)
    for n in range(3):
        enqueue_event(conn, t.id, "order.created", {"n": n})
    async with uvicorn_serving(_app(db_url, secret_key)) as base, httpx.AsyncClient() as client:
        url = f"{base}/v1/delivery-events/stream"
        async with client.stream("GET", url, headers=t.headers) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            first = await _take_events(r, 3)
        events = [orjson.loads(m["data"]) for m in first]
        assert [e["type"] for e in events] == ["delivery.created"] * 3
        assert len({m["id"] for m in first}) == 3

        for n in range(3, 5):
            enqueue_event(conn, t.id, "order.created", {"n": n})
        headers = {**t.headers, "Last-Event-ID": first[1]["id"]}
        async with client.stream("GET", url, headers=headers) as r:
            resumed = await _take_events(r, 3)
        assert resumed[0] == first[2]  # right after the event it named, nothing repeated
        assert len({m["id"] for m in first + resumed}) == 5

        # the JSON feed and the stream agree on positions
        feed = await client.get(
            f"{base}/v1/delivery-events", params={"after": first[1]["id"]}, headers=t.headers
        )
        assert [e["id"] for e in feed.json()["items"]] == [
            orjson.loads(m["data"])["id"] for m in resumed
        ]


async def test_stream_is_woken_by_notify_without_waiting_for_the_poll(
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    make_api_tenant: Callable[[], ApiTenant],
    make_destination: DestinationFactory,
) -> None:
    t = make_api_tenant()
    make_destination("https://example.com/hook", tenant_id=t.id)
    # The poll and the heartbeat are far beyond the wait below: only a NOTIFY can wake it.
    app = _app(db_url, secret_key, poll_interval_s=600, heartbeat_s=600)
    async with uvicorn_serving(app) as base, httpx.AsyncClient() as client:
        await asyncio.wait_for(app.state.feed_hub.listening.wait(), timeout=WAIT_S)
        url = f"{base}/v1/delivery-events/stream"
        async with client.stream("GET", url, headers=t.headers) as r:
            messages = _messages(r)
            assert "retry" in await anext(messages)  # subscribed from here on
            await asyncio.sleep(0.2)  # let it make its first (empty) read and wait
            result = enqueue_event(conn, t.id, "order.created", {"n": 1})
            (message,) = await _take_events(messages, 1)
        assert orjson.loads(message["data"])["delivery_id"] == str(result.deliveries[0].id)


async def test_idle_stream_sends_heartbeats(
    db_url: str, secret_key: str, make_api_tenant: Callable[[], ApiTenant]
) -> None:
    t = make_api_tenant()
    app = _app(db_url, secret_key, heartbeat_s=0.2, poll_interval_s=0.05)
    async with uvicorn_serving(app) as base, httpx.AsyncClient() as client:
        url = f"{base}/v1/delivery-events/stream"
        async with client.stream("GET", url, headers=t.headers) as r:
            beats = 0

            async def count() -> None:
                nonlocal beats
                async for message in _messages(r):
                    if message.get("comment") == "heartbeat":
                        beats += 1
                        if beats == 2:
                            return

            await asyncio.wait_for(count(), timeout=WAIT_S)
    assert beats == 2


async def test_stream_refuses_bad_keys_and_bad_last_event_ids(
    db_url: str, secret_key: str, make_api_tenant: Callable[[], ApiTenant]
) -> None:
    t = make_api_tenant()
    async with (
        uvicorn_serving(_app(db_url, secret_key)) as base,
        httpx.AsyncClient() as client,
    ):
        url = f"{base}/v1/delivery-events/stream"
        assert (await client.get(url)).status_code == 401
        bad = await client.get(url, headers={**t.headers, "Last-Event-ID": "bogus"})
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "Last-Event-ID"


def _fill_feed(conn: psycopg.Connection[Any], tenant: uuid.UUID, count: int, pad: int) -> None:
    conn.execute(
        """INSERT INTO lifecycle_events
               (tenant_id, type, delivery_id, event_id, destination_id, state, data)
           SELECT %s, 'delivery.created', gen_random_uuid(), gen_random_uuid(),
                  gen_random_uuid(), 'pending', jsonb_build_object('pad', repeat('x', %s))
             FROM generate_series(1, %s)""",
        (tenant, pad, count),
    )


@pytest.mark.slow
async def test_a_client_that_stops_reading_is_dropped_not_buffered(
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    make_api_tenant: Callable[[], ApiTenant],
) -> None:
    t = make_api_tenant()
    # ~40 MB of events: far more than the socket buffers on both ends can hold.
    _fill_feed(conn, t.id, count=20_000, pad=2_000)
    app = _app(db_url, secret_key, send_timeout_s=0.5, page_size=200)
    metrics: CourierMetrics = app.state.metrics
    async with uvicorn_serving(app) as base:
        port = int(base.rsplit(":", 1)[1])
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", port))
        request = (
            "GET /v1/delivery-events/stream HTTP/1.1\r\nHost: courier.test\r\n"
            f"Authorization: Bearer {t.key}\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())

        async def dropped() -> None:
            while True:
                if metrics.registry.get_sample_value(DROPPED) == 1:
                    return
                await asyncio.sleep(0.05)

        await asyncio.wait_for(dropped(), timeout=WAIT_S)  # we have not read a byte

        received = 0

        async def drain() -> None:
            nonlocal received
            while chunk := await loop.sock_recv(sock, 65536):
                received += len(chunk)

        await asyncio.wait_for(drain(), timeout=WAIT_S)  # the server closed the connection
        sock.close()
    assert received < 20_000 * 2_000  # it never got everything: it was cut off
    assert metrics.registry.get_sample_value("courier_stream_clients") == 0
