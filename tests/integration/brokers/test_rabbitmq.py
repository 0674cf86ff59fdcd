"""The rabbitmq kind: a real worker publishes to the real RabbitMQ; a real consumer reads
the message and verifies its signature with the standardwebhooks package."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel
from standardwebhooks.webhooks import Webhook

from courier.enqueue import enqueue_event
from tests.integration.brokers.conftest import (
    AMQP_URL,
    RabbitMQNode,
    broker_destination,
    broker_worker,
)
from tests.support.engine import Engine, attempts, delivery, run_workers, wait_terminal


@pytest.fixture
async def channel() -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def test_a_confirmed_persistent_message_carries_a_verifiable_signature(
    engine: Engine, channel: AbstractChannel, unique: str
) -> None:
    exchange = await channel.declare_exchange(f"courier-{unique}", "direct", auto_delete=True)
    queue = await channel.declare_queue(f"courier-{unique}", auto_delete=True)
    await queue.bind(exchange, "orders")
    config = {"url": AMQP_URL, "exchange": exchange.name, "routing_key": "orders"}
    _, secret = broker_destination(engine, "rabbitmq", config)
    events = [
        enqueue_event(engine.conn, engine.tenant, "order.created", {"order": n}) for n in range(3)
    ]
    async with run_workers([broker_worker(engine)]):
        await wait_terminal(engine.db_url, 3)
    received = {}
    for _ in range(3):
        message = await queue.get(timeout=5)
        await message.ack()
        headers = {k: str(v) for k, v in message.headers.items()}
        Webhook(secret).verify(message.body, headers)  # raises on a wrong signature
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert headers["courier-event-type"] == "order.created"
        received[headers["webhook-id"]] = message.body
    assert received == {str(e.event_id): f'{{"order":{n}}}'.encode() for n, e in enumerate(events)}
    for event in events:
        d = delivery(engine.conn, event.deliveries[0].id)
        assert d["state"] == "delivered"
        (a,) = attempts(engine.conn, d["id"])
        assert a["outcome"] == "succeeded" and a["error_summary"] is None
        assert a["duration_ms"] is not None and a["http_status"] is None


async def test_an_unroutable_message_is_a_retryable_failure(
    engine: Engine, channel: AbstractChannel, unique: str
) -> None:
    # An exchange with no queue bound: the mandatory publish comes back as returned.
    exchange = await channel.declare_exchange(f"courier-{unique}", "direct", auto_delete=True)
    config = {"url": AMQP_URL, "exchange": exchange.name, "routing_key": "nowhere"}
    broker_destination(engine, "rabbitmq", config, max_attempts=2, backoff_initial_ms=100)
    event = enqueue_event(engine.conn, engine.tenant, "order.created", {"order": 1})
    async with run_workers([broker_worker(engine)]):
        await wait_terminal(engine.db_url, 1)
    d = delivery(engine.conn, event.deliveries[0].id)
    assert d["state"] == "dead_lettered" and d["attempt_count"] == 2
    for a in attempts(engine.conn, d["id"]):
        assert a["outcome"] == "retryable_failure" and a["retryable"] is True
        assert "unroutable" in a["error_summary"] and "NO_ROUTE" in a["error_summary"]


async def test_wrong_credentials_are_permanent_and_never_written_down(
    engine: Engine, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    password = f"wrong-{unique}"
    url = f"amqp://guest:{password}@127.0.0.1:5672/"
    config = {"url": url, "exchange": "amq.direct", "routing_key": "x"}
    broker_destination(engine, "rabbitmq", config, max_attempts=5)
    event = enqueue_event(engine.conn, engine.tenant, "order.created", {"order": 1})
    caplog.set_level(logging.DEBUG)
    async with run_workers([broker_worker(engine)]):
        await wait_terminal(engine.db_url, 1)
    d = delivery(engine.conn, event.deliveries[0].id)
    assert d["state"] == "failed" and d["attempt_count"] == 1
    (a,) = attempts(engine.conn, d["id"])
    assert a["outcome"] == "permanent_failure" and a["retryable"] is False
    assert "ACCESS_REFUSED" in a["error_summary"]
    everything = "\n".join(
        [
            str(a),
            str(d),
            caplog.text,
            str(engine.conn.execute("SELECT * FROM destinations").fetchall()),
        ]
    )
    assert password not in everything


async def test_a_missing_exchange_is_permanent_and_spoils_no_other_publish(
    engine: Engine, channel: AbstractChannel, unique: str
) -> None:
    # The broker closes the channel of a publish to a missing exchange; deliveries to a
    # good exchange over the same pooled connection must still go through.
    missing = {"url": AMQP_URL, "exchange": f"missing-{unique}", "routing_key": "x"}
    broker_destination(engine, "rabbitmq", missing, max_attempts=5, event_types=["bad"])
    exchange = await channel.declare_exchange(f"courier-{unique}", "direct", auto_delete=True)
    queue = await channel.declare_queue(f"courier-{unique}", auto_delete=True)
    await queue.bind(exchange, "ok")
    good = {"url": AMQP_URL, "exchange": exchange.name, "routing_key": "ok"}
    broker_destination(engine, "rabbitmq", good, event_types=["good"])
    bad = [enqueue_event(engine.conn, engine.tenant, "bad", {"n": n}) for n in range(5)]
    for n in range(5):
        enqueue_event(engine.conn, engine.tenant, "good", {"n": n})
    async with run_workers([broker_worker(engine)]):
        await wait_terminal(engine.db_url, 10)
    for event in bad:
        (a,) = attempts(engine.conn, event.deliveries[0].id)
        assert a["outcome"] == "permanent_failure" and "NOT_FOUND" in a["error_summary"]
    states = engine.conn.execute("SELECT state, count(*) FROM deliveries GROUP BY 1 ORDER BY 1")
    assert states.fetchall() == [("delivered", 5), ("failed", 5)]
    declared = await channel.declare_queue(queue.name, passive=True)
    assert declared.declaration_result.message_count == 5


async def test_a_nacked_publish_is_a_retryable_failure(
    engine: Engine, channel: AbstractChannel, unique: str
) -> None:
    # A queue that holds one message and rejects publishes beyond it: the broker nacks.
    exchange = await channel.declare_exchange(f"courier-{unique}", "direct", auto_delete=True)
    arguments = {"x-max-length": 1, "x-overflow": "reject-publish"}
    queue = await channel.declare_queue(f"courier-{unique}", auto_delete=True, arguments=arguments)
    await queue.bind(exchange, "orders")
    config = {"url": AMQP_URL, "exchange": exchange.name, "routing_key": "orders"}
    broker_destination(engine, "rabbitmq", config, max_attempts=2, ordering="fifo")
    for n in range(2):
        enqueue_event(engine.conn, engine.tenant, "order.created", {"order": n})
    async with run_workers([broker_worker(engine)]):
        await wait_terminal(engine.db_url, 2)
    states = engine.conn.execute("SELECT state, count(*) FROM deliveries GROUP BY 1 ORDER BY 1")
    assert states.fetchall() == [("dead_lettered", 1), ("delivered", 1)]
    failed = engine.conn.execute(
        "SELECT outcome, error_summary FROM delivery_attempts WHERE outcome <> 'succeeded'"
    ).fetchall()
    assert len(failed) == 2
    for outcome, summary in failed:
        assert outcome == "retryable_failure" and "Nack" in summary


async def test_a_rabbitmq_node_killed_and_restarted_mid_run_loses_no_event(
    engine: Engine, own_rabbitmq: RabbitMQNode, unique: str
) -> None:
    async def durable_queue() -> None:
        connection = await aio_pika.connect(own_rabbitmq.url)
        channel = await connection.channel()
        await channel.declare_queue(f"q-{unique}", durable=True)
        await connection.close()

    await durable_queue()  # the default exchange routes to it by name
    config = {"url": own_rabbitmq.url, "exchange": "", "routing_key": f"q-{unique}"}
    broker_destination(
        engine,
        "rabbitmq",
        config,
        max_attempts=50,
        backoff_initial_ms=100,
        backoff_max_ms=1000,  # ~45 s of outage before a dead letter: a loaded node boots slowly
        timeout_ms=1000,
    )
    total = 40
    events = [enqueue_event(engine.conn, engine.tenant, "tick", {"n": n}) for n in range(20)]
    async with run_workers([broker_worker(engine)]):
        await wait_terminal(engine.db_url, 20)
        await own_rabbitmq.kill()  # the worker's pooled connection dies with it
        events += [
            enqueue_event(engine.conn, engine.tenant, "tick", {"n": n}) for n in range(20, total)
        ]
        await asyncio.sleep(1.5)
        await own_rabbitmq.start()
        await wait_terminal(engine.db_url, total, timeout=120)
    connection = await aio_pika.connect(own_rabbitmq.url)
    try:
        queue = await (await connection.channel()).declare_queue(f"q-{unique}", passive=True)
        ids = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            ids.append(str((message.headers or {})["webhook-id"]))
    finally:
        await connection.close()

    assert set(ids) == {str(e.event_id) for e in events}  # each at least once, none lost
    states = engine.conn.execute("SELECT state, count(*) FROM deliveries GROUP BY 1").fetchall()
    assert states == [("delivered", total)]
    summaries = [
        row[0]
        for row in engine.conn.execute(
            "SELECT error_summary FROM delivery_attempts WHERE outcome = 'retryable_failure'"
        ).fetchall()
    ]
    # The outage was seen (refused connects while down) and retried; the delivered
    # attempts after the restart went over a new connection: the dead one was replaced.
    assert summaries and any("cannot connect" in s for s in summaries), summaries
    after_restart = engine.conn.execute(
        "SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id"
        " WHERE a.outcome = 'succeeded' AND d.event_id = ANY(%s)",
        ([e.event_id for e in events[20:]],),
    ).fetchone()
    assert after_restart is not None and after_restart[0] == total - 20
