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


async def listening(db_url: str) -> None:
    """Until some session LISTENs on the wake-up channel (the worker's listener)."""
    async with await psycopg.AsyncConnection.connect(direct(db_url), autocommit=True) as conn:
        deadline = time.monotonic() + 10
        while True:
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND query LIKE '%%LISTEN courier_deliveries%%'"
            )
            row = await cur.fetchone()
            if row and row[0]:
                return
            assert time.monotonic() < deadline, "the worker never listened"
            await asyncio.sleep(0.02)


def deferred(worker: Worker, result: str) -> float:
    value = worker.metrics.registry.get_sample_value(
        "courier_worker_deferred_wakeups_total", {"result": result}
    )
    return value or 0.0


async def ready(db_url: str, worker: Worker) -> None:
    """Until the worker's first claim ran and its LISTEN is in place."""
    await until(lambda: claims(worker, "start", "empty") == 1)
    await listening(db_url)


async def deliver_one(engine: Engine, worker: Worker, done: int) -> None:
    """Enqueue an event and wait until the worker's NOTIFY-started claim delivered it."""
    enqueue_event(engine.conn, engine.tenant, "order.created", {"order": done})
    await wait_terminal(engine.db_url, done)
    await until(lambda: claims(worker, "notify", "rows") == done)


async def test_claims_count_empty_and_productive_wakeups(engine: Engine) -> None:
    engine.make_destination(engine.receiver.url("/ok"))
    worker = make_worker(engine.db_url, engine.secret_key, poll_interval_s=QUIET_POLL_S)
    async with run_workers([worker]):
        await ready(engine.db_url, worker)
        # An event: its NOTIFY wakes the worker and the claim takes the delivery.
        await deliver_one(engine, worker, 1)
        assert notifications(worker) == 1
        empty = claims(worker, "notify", "empty")  # the catch-up claim, if it came after
        # A NOTIFY with nothing due: the claim runs and finds nothing.
        await notify(engine.db_url, str(engine.tenant))
        await until(lambda: claims(worker, "notify", "empty") == empty + 1)
        assert notifications(worker) == 2
        assert claims(worker, "notify", "rows") == 1
    assert len(engine.receiver.hits("/ok")) == 1


async def test_a_worker_whose_claim_found_nothing_looks_before_it_claims(
    engine: Engine,
) -> None:
    engine.make_destination(engine.receiver.url("/ok"))
    worker = make_worker(engine.db_url, engine.secret_key, poll_interval_s=QUIET_POLL_S)
    async with run_workers([worker]):
        await ready(engine.db_url, worker)
        await deliver_one(engine, worker, 1)  # a claim with rows: the next one is eager
        empty, skipped = claims(worker, "notify", "empty"), deferred(worker, "skipped")
        heard = notifications(worker)
        await notify(engine.db_url, str(engine.tenant))
        await until(lambda: claims(worker, "notify", "empty") == empty + 1)
        assert deferred(worker, "skipped") == skipped
        # It found nothing (another worker's rows, in production): a burst of NOTIFYs
        # with nothing due now costs looks, not claims.
        for _ in range(5):
            await notify(engine.db_url, str(engine.tenant))
        await until(lambda: notifications(worker) == heard + 6)
        await until(lambda: deferred(worker, "skipped") >= skipped + 1)
        await asyncio.sleep(0.2)  # any claim those NOTIFYs would start has run by now
        assert claims(worker, "notify", "empty") == empty + 1
        # Work that is due is claimed all the same, after the look.
        claimed = deferred(worker, "claimed")
        await deliver_one(engine, worker, 2)
        assert deferred(worker, "claimed") == claimed + 1
        # And the claim that got rows makes the worker claim at once again.
        await notify(engine.db_url, str(engine.tenant))
        await until(lambda: claims(worker, "notify", "empty") == empty + 2)
    assert len(engine.receiver.hits("/ok")) == 2


async def test_a_notify_for_a_tenant_not_served_is_no_wakeup(engine: Engine) -> None:
    engine.make_destination(engine.receiver.url("/ok"))
    other = str(uuid.uuid4())  # some other tenant
    worker = make_worker(
        engine.db_url,
        engine.secret_key,
        tenant_ids=[engine.tenant],
        poll_interval_s=QUIET_POLL_S,
    )
    async with run_workers([worker]):
        await ready(engine.db_url, worker)
        await deliver_one(engine, worker, 1)  # a claim with rows: the next one is eager
        empty = claims(worker, "notify", "empty")
        await notify(engine.db_url, other)
        await notify(engine.db_url, str(engine.tenant))  # sent after: a marker
        await until(lambda: claims(worker, "notify", "empty") == empty + 1)
        await asyncio.sleep(0.2)  # a claim the other tenant's NOTIFY started has run by now
        assert notifications(worker) == 2  # the event's and the marker
        assert claims(worker, "notify", "empty") == empty + 1
