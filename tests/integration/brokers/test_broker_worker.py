"""How the worker treats broker destinations it must not or cannot deliver: a broker
address the SSRF policy forbids, and a secret config field no key of the worker opens."""

from __future__ import annotations

import asyncio
import uuid

from psycopg.types.json import Jsonb

from courier.adapters.router import KindRouter
from courier.adapters.webhook import WebhookAdapter
from courier.crypto import SecretBox, generate_key
from courier.enqueue import enqueue_event
from courier.worker.worker import Worker, WorkerConfig
from tests.integration.brokers.conftest import REDIS_URL, broker_destination, broker_worker
from tests.support.database import direct
from tests.support.engine import Engine, attempts, delivery, run_workers, wait_terminal


def _handed_back(worker: Worker) -> float:
    name = "courier_secret_decrypt_failures_total"
    return worker.metrics.registry.get_sample_value(name) or 0.0


async def test_a_loopback_broker_is_refused_when_connecting(engine: Engine, unique: str) -> None:
    # Stored behind the API's back (or allowed when saved, forbidden now).
    broker_destination(engine, "redis_stream", {"url": REDIS_URL, "stream": f"s-{unique}"})
    event = enqueue_event(engine.conn, engine.tenant, "tick", {"n": 1})
    config = WorkerConfig(
        database_url=engine.db_url,
        worker_id=f"strict-{unique}",
        tenant_ids=None,
        poll_interval_s=0.1,
        lease_seconds=5.0,
        shutdown_grace_s=5.0,
        direct_url=direct(engine.db_url),
    )
    strict = Worker(config, KindRouter(WebhookAdapter()), SecretBox(engine.secret_key))
    async with run_workers([strict]):
        await wait_terminal(engine.db_url, 1)
    (a,) = attempts(engine.conn, event.deliveries[0].id)
    assert a["outcome"] == "permanent_failure"
    assert a["error_summary"] == "broker address not allowed: loopback"


async def test_a_config_secret_no_key_opens_is_handed_back_without_an_attempt(
    engine: Engine, unique: str
) -> None:
    dest, _ = broker_destination(
        engine, "redis_stream", {"url": REDIS_URL, "stream": f"s-{unique}"}
    )
    foreign = SecretBox(generate_key()).encrypt(REDIS_URL)
    engine.conn.execute(
        "UPDATE destinations SET config_secrets = %s WHERE id = %s",
        (Jsonb({"url": foreign}), dest["id"]),
    )
    event = enqueue_event(engine.conn, engine.tenant, "tick", {"n": 1})
    worker = broker_worker(engine, unsignable_delay_s=60.0)
    async with run_workers([worker]):
        for _ in range(100):
            if _handed_back(worker) >= 1:
                break
            await asyncio.sleep(0.05)
    d = delivery(engine.conn, event.deliveries[0].id)
    assert d["state"] == "retry_scheduled" and d["attempt_count"] == 0
    assert attempts(engine.conn, d["id"]) == []
    assert _handed_back(worker) >= 1
    assert uuid.UUID(str(d["destination_id"])) == dest["id"]
