"""The lifecycle stream (SSE) on a real uvicorn server: events with their cursor as id,
resumption with Last-Event-ID, NOTIFY wake-ups, heartbeats, dropping slow clients, ending
streams whose credential no longer holds, and the per-tenant cap on open streams."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from courier.asgi import create_app
from courier.console.session import SESSION_COOKIE, SESSION_MAX_AGE, Session, Signer
from courier.enqueue import enqueue_event
from courier.metrics import CourierMetrics
from courier.settings import Settings
from courier.tenancy import IssuedKey, create_tenant, revoke_api_key
from courier.web.event_stream import REVOKED, StreamConfig
from courier.web.state import state_of
from tests.conftest import DestinationFactory
from tests.integration.observability.conftest import ApiTenant, uvicorn_serving

DROPPED = "courier_stream_clients_dropped_total"
WAIT_S = 20.0  # generous upper bound for anything the stream should do "soon"


def _app(
    db_url: str, secret_key: str, settings: dict[str, Any] | None = None, **config: Any
) -> Any:
    app = create_app(Settings(secret_key=secret_key, **(settings or {})), db_url)
    state_of(app).event_stream_config = StreamConfig(**config)
    state_of(app).metrics = CourierMetrics()
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
        await asyncio.wait_for(state_of(app).feed_hub.listening.wait(), timeout=WAIT_S)
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
        # Last-Event-ID wins over `after`, but a bad `after` beside it is still refused
        ignored = await client.get(
            url, params={"after": "zz"}, headers={**t.headers, "Last-Event-ID": "1.2"}
        )
        assert ignored.status_code == 422
        assert ignored.json()["errors"][0]["field"] == "after"


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
    metrics: CourierMetrics = state_of(app).metrics
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


def _issued(conn: psycopg.Connection[Any]) -> IssuedKey:
    _, issued = create_tenant(conn, f"obs-{uuid.uuid4().hex[:8]}")
    return issued


def _bearer(issued: IssuedKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {issued.key}"}


def _session_cookie(secret_key: str, issued: IssuedKey, issued_at: int) -> dict[str, str]:
    cookie = Signer(secret_key).session_cookie(Session(issued.tenant_id, issued.id, issued_at))
    return {"Cookie": f"{SESSION_COOKIE}={cookie}"}


async def _ends(response: httpx.Response) -> list[dict[str, str]]:
    """Every message until the server ends the stream (fails if it does not, in time)."""
    seen: list[dict[str, str]] = []

    async def read() -> None:
        async for message in _messages(response):
            seen.append(message)

    await asyncio.wait_for(read(), timeout=WAIT_S)
    return seen


CLOSING = {"comment": REVOKED.decode().strip(": \n")}


async def test_revoking_the_key_ends_its_open_stream(
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    make_destination: DestinationFactory,
) -> None:
    revoked, kept = _issued(conn), _issued(conn)
    make_destination("https://example.com/hook", tenant_id=kept.tenant_id)
    app = _app(db_url, secret_key, auth_recheck_s=0.2, poll_interval_s=0.05)
    async with uvicorn_serving(app) as base, httpx.AsyncClient() as client:
        url = f"{base}/v1/delivery-events/stream"
        async with (
            client.stream("GET", url, headers=_bearer(revoked)) as r,
            client.stream("GET", url, headers=_bearer(kept)) as other,
        ):
            assert r.status_code == 200 and other.status_code == 200
            kept_messages = _messages(other)
            assert "retry" in await anext(kept_messages)
            await asyncio.sleep(0.5)  # a few re-checks pass while the key is live
            assert revoke_api_key(conn, revoked.id)
            closed_at = time.monotonic()
            seen = await _ends(r)
            assert time.monotonic() - closed_at < 5  # within a few re-check intervals
            assert seen[-1] == CLOSING
            # the other tenant's stream goes on: it still gets new events
            enqueue_event(conn, kept.tenant_id, "order.created", {"n": 1})
            (event,) = await _take_events(kept_messages, 1)
            assert orjson.loads(event["data"])["tenant_id"] == str(kept.tenant_id)
        again = await client.get(url, headers=_bearer(revoked))
        assert again.status_code == 401


async def test_the_console_stream_ends_when_its_session_expires_or_its_key_is_revoked(
    conn: psycopg.Connection[Any], db_url: str, secret_key: str
) -> None:
    expiring, revoked = _issued(conn), _issued(conn)
    app = _app(db_url, secret_key, auth_recheck_s=0.2, poll_interval_s=0.05)
    # a session signed in almost SESSION_MAX_AGE ago: it expires two seconds from now
    almost_old = int(time.time()) - SESSION_MAX_AGE + 2
    async with uvicorn_serving(app) as base, httpx.AsyncClient() as client:
        url = f"{base}/console/events"
        expiring_cookie = _session_cookie(secret_key, expiring, almost_old)
        fresh_cookie = _session_cookie(secret_key, revoked, int(time.time()))
        async with (
            client.stream("GET", url, headers=expiring_cookie) as r1,
            client.stream("GET", url, headers=fresh_cookie) as r2,
        ):
            assert r1.status_code == 200 and r2.status_code == 200
            assert revoke_api_key(conn, revoked.id)
            assert (await _ends(r2))[-1] == CLOSING
            assert (await _ends(r1))[-1] == CLOSING
        assert (await client.get(url, headers=expiring_cookie)).status_code == 401
        assert (await client.get(url, headers=fresh_cookie)).status_code == 401


async def test_a_tenant_holds_at_most_its_cap_of_open_streams(
    conn: psycopg.Connection[Any], db_url: str, secret_key: str
) -> None:
    busy, other = _issued(conn), _issued(conn)
    app = _app(
        db_url,
        secret_key,
        settings={"max_streams_per_tenant": 2},
        heartbeat_s=0.1,  # a closed client is noticed at the next write
        poll_interval_s=0.05,
    )
    async with uvicorn_serving(app) as base, httpx.AsyncClient() as client:
        url = f"{base}/v1/delivery-events/stream"
        async with (
            client.stream("GET", url, headers=_bearer(busy)) as first,
            client.stream("GET", url, headers=_bearer(busy)) as second,
        ):
            assert first.status_code == 200 and second.status_code == 200
            async with client.stream("GET", url, headers=_bearer(busy)) as refused:
                assert refused.status_code == 429
                await refused.aread()
            assert refused.headers["content-type"] == "application/problem+json"
            assert int(refused.headers["retry-after"]) > 0
            assert refused.json()["status"] == 429
            assert "2 open event streams" in refused.json()["detail"]
            # the console's live updates count against the same cap
            cookie = _session_cookie(secret_key, busy, int(time.time()))
            async with client.stream("GET", f"{base}/console/events", headers=cookie) as console:
                assert console.status_code == 429 and "retry-after" in console.headers
            # another tenant is not affected
            async with client.stream("GET", url, headers=_bearer(other)) as theirs:
                assert theirs.status_code == 200
        # both closed: the slots come back once the server notices
        deadline = time.monotonic() + WAIT_S
        while True:
            async with client.stream("GET", url, headers=_bearer(busy)) as r:
                if r.status_code == 200:
                    break
            assert time.monotonic() < deadline, "the closed streams' slots never came back"
            await asyncio.sleep(0.1)
        assert state_of(app).stream_slots.held(busy.tenant_id) <= 1
