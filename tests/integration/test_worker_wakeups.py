"""What wakes a worker and what its claims find: courier_worker_claims_total and
courier_worker_notifications_total, with real PostgreSQL, a real worker and real HTTP to
a loopback receiver."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import psycopg

from courier.enqueue import enqueue_event
from courier.worker.worker import Worker
from tests.support.database import direct
from tests.support.engine import Engine, make_worker, run_workers, wait_terminal

# Long enough that no poll lands inside a test: every claim here has a known cause.
QUIET_POLL_S = 60.0


def claims(worker: Worker, trigger: str, result: str) -> float:
    value = worker.metrics.registry.get_sample_value(
        "courier_worker_claims_total", {"trigger": trigger, "result": result}
    )
    return value or 0.0


def notifications(worker: Worker) -> float:
    return worker.metrics.registry.get_sample_value("courier_worker_notifications_total") or 0.0


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def notify(db_url: str, payload: str) -> None:
    async with await psycopg.AsyncConnection.connect(direct(db_url), autocommit=True) as conn:
        await conn.execute("SELECT pg_notify('courier_deliveries', %s)", (payload,))


async def test_claims_count_empty_and_productive_wakeups(engine: Engine) -> None:
    engine.make_destination(engine.receiver.url("/ok"))
    worker = make_worker(engine.db_url, engine.secret_key, poll_interval_s=QUIET_POLL_S)
    async with run_workers([worker]):
        # The first claim, and the catch-up claim once LISTEN is in place: nothing waits.
        await until(lambda: claims(worker, "start", "empty") == 1)
        await until(lambda: claims(worker, "notify", "empty") >= 1)
        empty_before = claims(worker, "notify", "empty")
        # A NOTIFY with nothing due: the claim runs and finds nothing.
        await notify(engine.db_url, str(engine.tenant))
        await until(lambda: claims(worker, "notify", "empty") == empty_before + 1)
        assert notifications(worker) == 1
        # An event: its NOTIFY wakes the worker and the claim takes the delivery.
        enqueue_event(engine.conn, engine.tenant, "order.created", {"order": 1})
        await wait_terminal(engine.db_url, 1)
        await until(lambda: claims(worker, "notify", "rows") == 1)
        assert notifications(worker) == 2
        assert claims(worker, "notify", "empty") == empty_before + 1
    assert len(engine.receiver.hits("/ok")) == 1


async def test_a_notify_for_a_tenant_not_served_is_no_wakeup(engine: Engine) -> None:
    other = str(uuid.uuid4())  # some other tenant
    worker = make_worker(
        engine.db_url,
        engine.secret_key,
        tenant_ids=[engine.tenant],
        poll_interval_s=QUIET_POLL_S,
    )
    async with run_workers([worker]):
        await until(lambda: claims(worker, "notify", "empty") >= 1)  # caught up
        settled = claims(worker, "notify", "empty")
        await notify(engine.db_url, other)
        await notify(engine.db_url, str(engine.tenant))  # sent after: a marker
        await until(lambda: notifications(worker) == 1)
        await until(lambda: claims(worker, "notify", "empty") == settled + 1)
