"""A `courier worker` process SIGKILLed while it publishes to a broker: after a restart
every event is delivered and none is lost; what the kill costs is bounded.

A one-second group commit keeps published-but-unrecorded attempts in the victim's memory
when it dies, so the kill lands between "the broker has it" and "the database knows".
Those deliveries are rescued (their attempt recorded `abandoned`) and published again:

- NATS de-duplicates the repeat by `Nats-Msg-Id`: the stream holds each event once;
- RabbitMQ and Redis Streams hold a second copy of exactly those in-flight events, with
  the same webhook-id, which consumers de-duplicate as webhook receivers do; no other
  event is repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import nats
import pytest
import redis.asyncio as aioredis

from courier.enqueue import enqueue_events
from tests.integration.brokers.conftest import (
    AMQP_URL,
    NATS_URL,
    REDIS_URL,
    broker_destination,
    broker_worker,
)
from tests.support.engine import Engine, run_workers, wait_terminal, worker_process

TOTAL = 300
KILL_AFTER = 20  # messages the broker holds when the victim is killed


@dataclass
class Broker:
    """A destination's config and a reader of what the broker holds: every message's
    webhook-id and body, repeats included, in arrival order."""

    config: dict[str, Any]
    read: Callable[[], Awaitable[list[tuple[str, bytes]]]]


@contextlib.asynccontextmanager
async def rabbitmq(unique: str) -> AsyncIterator[Broker]:
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    queue = await channel.declare_queue(f"courier-kill-{unique}", exclusive=True)
    seen: list[tuple[str, bytes]] = []

    async def read() -> list[tuple[str, bytes]]:  # a queue is read by draining it
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            seen.append((str((message.headers or {})["webhook-id"]), message.body))
        return list(seen)

    try:  # the default exchange routes by queue name
        yield Broker({"url": AMQP_URL, "exchange": "", "routing_key": queue.name}, read)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def nats_stream(unique: str) -> AsyncIterator[Broker]:
    client = await nats.connect(NATS_URL)
    js = client.jetstream()
    stream, subject = f"KILL_{unique}", f"courier.kill.{unique}"
    await js.add_stream(name=stream, subjects=[subject], duplicate_window=120.0)

    seen: list[tuple[str, bytes]] = []

    async def read() -> list[tuple[str, bytes]]:  # nothing is removed: read what is new
        info = await js.stream_info(stream)
        for seq in range(len(seen) + 1, info.state.last_seq + 1):
            message = await js.get_msg(stream, seq)
            seen.append((str((message.headers or {})["webhook-id"]), message.data or b""))
        return list(seen)

    try:
        yield Broker({"url": NATS_URL, "subject": subject}, read)
    finally:
        await js.delete_stream(stream)
        await client.close()


@contextlib.asynccontextmanager
async def redis_stream(unique: str) -> AsyncIterator[Broker]:
    client = aioredis.Redis.from_url(REDIS_URL)
    stream = f"courier:kill:{unique}"

    async def read() -> list[tuple[str, bytes]]:
        entries = await client.xrange(stream)
        return [(f[b"webhook-id"].decode(), f[b"body"]) for _, f in entries]

    try:
        yield Broker({"url": REDIS_URL, "stream": stream}, read)
    finally:
        await client.delete(stream)
        await client.aclose()


BROKERS = {"rabbitmq": rabbitmq, "nats": nats_stream, "redis_stream": redis_stream}


async def _kill_mid_publish(engine: Engine, broker: Broker) -> list[tuple[str, bytes]]:
    """Run a worker process, SIGKILL it once the broker holds KILL_AFTER messages, and
    answer what the broker held when it died."""
    victim = worker_process(
        engine.db_url,
        engine.secret_key,
        COURIER_WORKER_LEASE_SECONDS="2",
        COURIER_WORKER_COMPLETION_INTERVAL_MS="1000",
    )
    try:
        for _ in range(3000):
            if len(await broker.read()) >= KILL_AFTER:
                break
            await asyncio.sleep(0.01)
        os.kill(victim.pid, signal.SIGKILL)
        await asyncio.to_thread(victim.wait, 10)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    await asyncio.sleep(0.5)  # frames already on the wire reach the broker
    return await broker.read()


def _abandoned(engine: Engine) -> set[str]:
    """Events whose delivery had an attempt in flight when the worker died."""
    rows = engine.conn.execute(
        "SELECT DISTINCT d.event_id FROM deliveries d JOIN delivery_attempts a"
        " ON a.delivery_id = d.id WHERE a.outcome = 'abandoned'"
    ).fetchall()
    return {str(r[0]) for r in rows}


@pytest.mark.parametrize("kind", sorted(BROKERS))
async def test_a_worker_killed_mid_publish_loses_nothing_and_repeats_only_in_flight_events(
    engine: Engine, kind: str, unique: str
) -> None:
    async with BROKERS[kind](unique) as broker:
        broker_destination(engine, kind, broker.config, max_attempts=10, timeout_ms=2000)
        outcomes = enqueue_events(
            engine.conn,
            engine.tenant,
            [{"type": "tick", "payload": {"n": n}} for n in range(TOTAL)],
        )
        payloads = {str(o.event_id): f'{{"n":{n}}}'.encode() for n, o in enumerate(outcomes)}

        before = await _kill_mid_publish(engine, broker)
        held = {event_id for event_id, _ in before}
        recorded = engine.conn.execute(
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'"
        ).fetchone()
        assert recorded is not None
        assert KILL_AFTER <= len(held) < TOTAL  # killed mid-publish
        assert recorded[0] < len(held)  # some published events were never recorded

        async with run_workers([broker_worker(engine)]):
            await wait_terminal(engine.db_url, TOTAL, timeout=120)
        after = await broker.read()

    states = engine.conn.execute("SELECT state, count(*) FROM deliveries GROUP BY 1").fetchall()
    assert states == [("delivered", TOTAL)]
    copies = Counter(event_id for event_id, _ in after)
    assert set(copies) == set(payloads)  # every event arrived: nothing lost
    assert all(body == payloads[event_id] for event_id, body in after)
    in_flight = _abandoned(engine)
    republished = held & in_flight  # the broker had them, the database did not know
    assert republished, "the kill should have caught published, unrecorded attempts"
    if kind == "nats":
        assert len(after) == TOTAL  # the stream de-duplicated every repeat by Nats-Msg-Id
    else:
        # At least once: a second copy, same webhook-id, exactly for those in flight.
        assert {e for e, n in copies.items() if n > 1} == republished
        assert max(copies.values()) == 2
