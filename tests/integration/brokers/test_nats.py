"""The nats kind: a real worker publishes to the real NATS JetStream; a real consumer
verifies each message's signature; the stream de-duplicates a repeated event."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import psycopg
import pytest
from nats.js import JetStreamContext
from standardwebhooks.webhooks import Webhook

from courier.enqueue import enqueue_event
from courier.replay import replay_delivery
from tests.integration.brokers.conftest import (
    NATS_URL,
    broker_destination,
    broker_worker,
    free_port,
)
from tests.support.engine import Engine, attempts, delivery, run_workers, wait_terminal


@pytest.fixture
async def js(unique: str) -> AsyncIterator[tuple[JetStreamContext, str, str]]:
    """A stream of our own (two-minute duplicate window) and its subject."""
    client = await nats.connect(NATS_URL)
    stream, subject = f"COURIER_{unique}", f"courier.{unique}.events"
    context = client.jetstream()
    await context.add_stream(name=stream, subjects=[subject], duplicate_window=120.0)
    try:
        yield context, stream, subject
    finally:
        await context.delete_stream(stream)
        await client.close()


async def test_each_event_is_one_signed_stream_message(
    engine: Engine, js: tuple[JetStreamContext, str, str]
) -> None:
    context, stream, subject = js
    _, secret = broker_destination(engine, "nats", {"url": NATS_URL, "subject": subject})
    events = [
        enqueue_event(engine.conn, engine.tenant, "invoice.paid", {"invoice": n}) for n in range(3)
    ]
    async with run_workers([broker_worker(engine)]):
        await wait_terminal(engine.db_url, 3)
    consumer = await context.pull_subscribe(subject, durable=f"c{stream}", stream=stream)
    messages = await consumer.fetch(3, timeout=5)
    seen = {}
    for message in messages:
        headers = dict(message.headers or {})
        Webhook(secret).verify(message.data, headers)  # raises on a wrong signature
        assert headers["Nats-Msg-Id"] == headers["webhook-id"]
        assert headers["courier-event-type"] == "invoice.paid"
        seen[headers["webhook-id"]] = message.data
        await message.ack()
    assert seen == {str(e.event_id): f'{{"invoice":{n}}}'.encode() for n, e in enumerate(events)}
    for event in events:
        (a,) = attempts(engine.conn, event.deliveries[0].id)
        assert a["outcome"] == "succeeded"


async def test_the_same_event_sent_twice_is_one_stream_message(
    engine: Engine, js: tuple[JetStreamContext, str, str]
) -> None:
    context, stream, subject = js
    broker_destination(engine, "nats", {"url": NATS_URL, "subject": subject})
    event = enqueue_event(engine.conn, engine.tenant, "invoice.paid", {"invoice": 1})
    first = event.deliveries[0].id
    async with run_workers([broker_worker(engine)]):
        await wait_terminal(engine.db_url, 1)
        # The same event again (what a retry after a lost ack also sends): same msg id.
        async with await psycopg.AsyncConnection.connect(engine.db_url, autocommit=True) as c:
            replayed = await replay_delivery(c, engine.tenant, first, actor="test")
        await wait_terminal(engine.db_url, 2)
    second = replayed.delivery["id"]
    states = engine.conn.execute("SELECT state, count(*) FROM deliveries GROUP BY 1").fetchall()
    assert states == [("delivered", 2)]
    assert delivery(engine.conn, first)["attempt_count"] == 1
    assert delivery(engine.conn, second)["event_id"] == event.event_id
    info = await context.stream_info(stream)
    assert info.state.messages == 1  # the stream kept one: de-duplicated by Nats-Msg-Id


async def test_a_subject_no_stream_listens_on_is_permanent(engine: Engine, unique: str) -> None:
    config = {"url": NATS_URL, "subject": f"courier.nowhere.{unique}"}
    broker_destination(engine, "nats", config, max_attempts=5)
    event = enqueue_event(engine.conn, engine.tenant, "invoice.paid", {"invoice": 1})
    async with run_workers([broker_worker(engine)]):
        await wait_terminal(engine.db_url, 1)
    d = delivery(engine.conn, event.deliveries[0].id)
    assert d["state"] == "failed" and d["attempt_count"] == 1
    (a,) = attempts(engine.conn, d["id"])
    assert a["outcome"] == "permanent_failure" and "no stream" in a["error_summary"]


async def test_a_nats_server_killed_and_restarted_mid_run_loses_no_event(
    engine: Engine, tmp_path: Path, unique: str
) -> None:
    binary = shutil.which("nats-server")
    assert binary is not None, "nats-server is not installed"
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    args = [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp_path)]

    async def start() -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            try:
                client = await nats.connect(url, allow_reconnect=False, connect_timeout=1)
            except Exception:
                await asyncio.sleep(0.05)
                continue
            await client.close()
            return proc
        raise AssertionError("nats-server did not start")

    proc = await start()
    subject = f"courier.{unique}"
    try:
        admin = await nats.connect(url)
        await admin.jetstream().add_stream(name=f"S{unique}", subjects=[subject])  # file storage
        await admin.close()
        broker_destination(
            engine,
            "nats",
            {"url": url, "subject": subject},
            max_attempts=50,
            backoff_initial_ms=100,
            backoff_max_ms=300,
            timeout_ms=1000,
        )
        total = 40
        events = [enqueue_event(engine.conn, engine.tenant, "tick", {"n": n}) for n in range(20)]
        async with run_workers([broker_worker(engine)]):
            await wait_terminal(engine.db_url, 20)
            proc.kill()
            await proc.wait()
            events += [
                enqueue_event(engine.conn, engine.tenant, "tick", {"n": n})
                for n in range(20, total)
            ]
            await asyncio.sleep(1.5)
            proc = await start()
            await wait_terminal(engine.db_url, total, timeout=90)
        reader = await nats.connect(url)
        try:
            js = reader.jetstream()
            info = await js.stream_info(f"S{unique}")
            consumer = await js.pull_subscribe(subject, durable="check", stream=f"S{unique}")
            messages = await consumer.fetch(info.state.messages, timeout=5)
            ids = {(m.headers or {})["webhook-id"] for m in messages}
        finally:
            await reader.close()
    finally:
        proc.kill()
        await proc.wait()
    assert ids == {str(e.event_id) for e in events}  # each at least once
    states = engine.conn.execute("SELECT state, count(*) FROM deliveries GROUP BY 1").fetchall()
    assert states == [("delivered", total)]
    retried = engine.conn.execute(
        "SELECT count(*) FROM delivery_attempts WHERE outcome = 'retryable_failure'"
    ).fetchone()
    assert retried is not None and retried[0] > 0
