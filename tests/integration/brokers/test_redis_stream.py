"""The redis_stream kind: a real worker XADDs to a real Redis; a reader verifies each
entry's signature; a Redis killed and restarted mid-run loses no event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis.asyncio as aioredis
from standardwebhooks.webhooks import Webhook

from courier.enqueue import enqueue_event
from courier.recovery import recover_destination
from tests.integration.brokers.conftest import (
    REDIS_URL,
    RedisServer,
    broker_destination,
    broker_worker,
)
from tests.support.engine import Engine, attempts, delivery, run_workers, wait_terminal


@pytest.fixture
async def shared_redis(unique: str) -> AsyncIterator[tuple[aioredis.Redis, str]]:
    client = aioredis.Redis.from_url(REDIS_URL)
    stream = f"courier:{unique}"
    try:
        yield client, stream
    finally:
        await client.delete(stream)
        await client.aclose()


def _entry(fields: dict[bytes, bytes]) -> tuple[bytes, dict[str, str]]:
    headers = {k.decode(): v.decode() for k, v in fields.items() if k != b"body"}
    return fields[b"body"], headers


async def test_each_event_is_one_signed_stream_entry(
    engine: Engine, shared_redis: tuple[aioredis.Redis, str]
) -> None:
    client, stream = shared_redis
    _, secret = broker_destination(engine, "redis_stream", {"url": REDIS_URL, "stream": stream})
    events = [
        enqueue_event(engine.conn, engine.tenant, "user.signed_up", {"user": n}) for n in range(3)
    ]
    async with run_workers([broker_worker(engine)]):
        await wait_terminal(engine.db_url, 3)
    seen = {}
    for _, fields in await client.xrange(stream):
        body, headers = _entry(fields)
        Webhook(secret).verify(body, headers)  # raises on a wrong signature
        assert headers["courier-event-type"] == "user.signed_up"
        seen[headers["webhook-id"]] = body
    assert seen == {str(e.event_id): f'{{"user":{n}}}'.encode() for n, e in enumerate(events)}
    for event in events:
        (a,) = attempts(engine.conn, event.deliveries[0].id)
        assert a["outcome"] == "succeeded"


async def test_extra_headers_and_the_envelope_reach_the_entry(
    engine: Engine, shared_redis: tuple[aioredis.Redis, str]
) -> None:
    client, stream = shared_redis
    _, secret = broker_destination(
        engine,
        "redis_stream",
        {"url": REDIS_URL, "stream": stream},
        options={"headers": {"X-Api-Key": "entry-key-4410"}},
        payload_format="envelope",
    )
    enqueue_event(engine.conn, engine.tenant, "user.signed_up", {"user": 7})
    async with run_workers([broker_worker(engine)]):
        await wait_terminal(engine.db_url, 1)
    [(_, fields)] = await client.xrange(stream)
    body, headers = _entry(fields)
    assert headers["X-Api-Key"] == "entry-key-4410"
    assert Webhook(secret).verify(body, headers)["data"] == {"user": 7}


async def test_maxlen_trims_the_stream_approximately(
    engine: Engine, shared_redis: tuple[aioredis.Redis, str]
) -> None:
    client, stream = shared_redis
    config: dict[str, Any] = {"url": REDIS_URL, "stream": stream, "maxlen": 5}
    broker_destination(engine, "redis_stream", config)
    # Approximate trimming drops whole macro-nodes (100 entries by default), so it takes
    # more than a node's worth of entries to see any trimmed.
    for n in range(250):
        enqueue_event(engine.conn, engine.tenant, "tick", {"n": n})
    async with run_workers([broker_worker(engine)]):
        await wait_terminal(engine.db_url, 250, timeout=120)
    length = await client.xlen(stream)
    assert 5 <= length < 250


async def test_wrong_password_is_permanent_and_never_written_down(
    engine: Engine, tmp_path: Path, unique: str
) -> None:
    server = RedisServer(tmp_path, password=f"right-{unique}")
    await server.start()
    try:
        wrong = f"wrong-{unique}"
        url = f"redis://default:{wrong}@127.0.0.1:{server.port}/0"
        broker_destination(engine, "redis_stream", {"url": url, "stream": "s"}, max_attempts=5)
        event = enqueue_event(engine.conn, engine.tenant, "tick", {"n": 1})
        async with run_workers([broker_worker(engine)]):
            await wait_terminal(engine.db_url, 1)
    finally:
        await server.kill()
    d = delivery(engine.conn, event.deliveries[0].id)
    assert d["state"] == "failed" and d["attempt_count"] == 1
    (a,) = attempts(engine.conn, d["id"])
    assert a["outcome"] == "permanent_failure" and "access refused" in a["error_summary"]
    assert wrong not in str(a) and wrong not in str(d)


async def test_a_redis_killed_and_restarted_mid_run_loses_no_event(
    engine: Engine, own_redis: RedisServer, unique: str
) -> None:
    stream = f"courier:{unique}"
    broker_destination(
        engine,
        "redis_stream",
        {"url": own_redis.url, "stream": stream},
        max_attempts=50,
        backoff_initial_ms=100,
        backoff_max_ms=300,
        timeout_ms=1000,
    )
    total = 60
    events = [
        enqueue_event(engine.conn, engine.tenant, "tick", {"n": n}) for n in range(total // 2)
    ]
    async with run_workers([broker_worker(engine)]):
        await wait_terminal(engine.db_url, total // 2)
        await own_redis.kill()
        # Events that arrive while the broker is down wait in retries.
        events += [
            enqueue_event(engine.conn, engine.tenant, "tick", {"n": n})
            for n in range(total // 2, total)
        ]
        await asyncio.sleep(1.5)
        await own_redis.start()
        await wait_terminal(engine.db_url, total, timeout=90)
    client = aioredis.Redis.from_url(own_redis.url)
    try:
        entries = await client.xrange(stream)
    finally:
        await client.aclose()
    ids = {fields[b"webhook-id"].decode() for _, fields in entries}
    assert ids == {str(e.event_id) for e in events}  # each at least once
    states = engine.conn.execute("SELECT state, count(*) FROM deliveries GROUP BY 1").fetchall()
    assert states == [("delivered", total)]
    outcomes = engine.conn.execute(
        "SELECT count(*) FILTER (WHERE outcome = 'retryable_failure') FROM delivery_attempts"
    ).fetchone()
    assert outcomes is not None and outcomes[0] > 0  # the outage was seen and retried


async def test_connections_are_pooled_bounded_by_max_in_flight_and_closed_on_stop(
    engine: Engine, own_redis: RedisServer, unique: str
) -> None:
    stream = f"courier:{unique}"
    broker_destination(
        engine, "redis_stream", {"url": own_redis.url, "stream": stream}, max_in_flight=2
    )
    for n in range(200):
        enqueue_event(engine.conn, engine.tenant, "tick", {"n": n})
    observer = aioredis.Redis.from_url(own_redis.url)
    most = 0
    try:
        async with run_workers([broker_worker(engine, concurrency=32)]):
            while True:
                clients = int((await observer.info("clients"))["connected_clients"])
                most = max(most, clients - 1)  # minus the observer itself
                states = engine.conn.execute(
                    "SELECT count(*) FROM deliveries WHERE state = 'delivered'"
                ).fetchone()
                if states is not None and states[0] == 200:
                    break
                await asyncio.sleep(0.02)
        after = int((await observer.info("clients"))["connected_clients"]) - 1
        assert await observer.xlen(stream) == 200
    finally:
        await observer.aclose()
    assert 1 <= most <= 2  # one pool per (tenant, URL), at most max_in_flight connections
    assert after == 0  # the worker closed its connections when it stopped


async def test_recover_delivers_to_a_broker_what_it_missed_while_disabled(
    engine: Engine, shared_redis: tuple[aioredis.Redis, str]
) -> None:
    client, stream = shared_redis
    dest, _ = broker_destination(engine, "redis_stream", {"url": REDIS_URL, "stream": stream})
    engine.conn.execute(
        "UPDATE destinations SET enabled = false, disabled_at = now() WHERE id = %s",
        (dest["id"],),
    )
    (since,) = engine.conn.execute("SELECT now() - interval '1 second'").fetchone() or (None,)
    missed = [enqueue_event(engine.conn, engine.tenant, "tick", {"n": n}) for n in range(3)]
    assert all(e.deliveries == [] for e in missed)  # nothing made for a disabled one
    engine.conn.execute(
        "UPDATE destinations SET enabled = true, enabled_at = now() WHERE id = %s", (dest["id"],)
    )
    async with await psycopg.AsyncConnection.connect(engine.db_url, autocommit=True) as conn:
        result = await recover_destination(
            conn, engine.tenant, dest["id"], actor="test", since=since
        )
        assert result.missed_events == 3
        async with run_workers([broker_worker(engine)]):
            await wait_terminal(engine.db_url, 3)
        again = await recover_destination(
            conn, engine.tenant, dest["id"], actor="test", since=since
        )
    assert again.count == 0  # never a second delivery of the same event
    ids = [_entry(fields)[1]["webhook-id"] for _, fields in await client.xrange(stream)]
    assert sorted(ids) == sorted(str(e.event_id) for e in missed)
