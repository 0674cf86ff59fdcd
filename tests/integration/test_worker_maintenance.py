"""The worker runs the maintenance services (retention cleaner, destination health) on
its own ticker: an old delivered delivery disappears while a worker runs."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg

from courier.adapters.webhook import WebhookAdapter
from courier.crypto import SecretBox
from courier.worker.cleaner import Cleaner, CleanerConfig
from courier.worker.worker import Worker, WorkerConfig
from tests.conftest import DestinationFactory
from tests.integration.operations.conftest import backdate, days, enqueue, finish, now
from tests.support.database import direct


async def test_worker_ticker_runs_the_cleaner(
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    make_destination("https://example.com/hook")
    (old,) = enqueue(conn, tenant)
    finish(conn, tenant, old, "delivered")
    backdate(conn, tenant, old, now(conn) - days(31))
    (recent,) = enqueue(conn, tenant)
    finish(conn, tenant, recent, "delivered")

    worker = Worker(
        WorkerConfig(
            database_url=db_url, worker_id="w-maint", tenant_ids=None, direct_url=direct(db_url)
        ),
        WebhookAdapter(allow_private=True),
        SecretBox(secret_key),
        maintenance=[Cleaner(direct(db_url), CleanerConfig())],
        maintenance_interval_s=0.2,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    def exists(delivery_id: uuid.UUID) -> bool:
        row = conn.execute("SELECT count(*) FROM deliveries WHERE id = %s", (delivery_id,))
        return row.fetchone() == (1,)

    try:
        for _ in range(300):  # bounded: 30 s
            if not exists(old):
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    assert not exists(old)
    assert exists(recent)
