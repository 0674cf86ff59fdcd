"""courier behind a real PgBouncer in transaction-pooling mode.

Each transaction may run on another server session there, so whatever courier keeps in a
session must go to COURIER_DATABASE_DIRECT_URL: the LISTEN connections, the maintenance
passes' advisory locks. Pooled connections must not prepare statements nor send planner
settings in the startup packet (PgBouncer refuses `options`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from courier.asgi import create_app
from courier.enqueue import enqueue_event
from courier.metrics import CourierMetrics
from courier.queue_stats import QueueStatsCollector, QueueStatsConfig
from courier.settings import Settings
from courier.store.database import HOT_PATH_SETTINGS
from courier.store.pooler import local_settings
from courier.store.queries import query
from courier.web.event_stream import FeedHub
from courier.web.state import state_of
from courier.worker.cleaner import CLEANER_LOCK_KEY, Cleaner
from courier.worker_setup import build_worker
from tests.support.database import with_dbname
from tests.support.engine import DestinationFactory, Engine, make_worker, run_workers, wait_terminal
from tests.support.pgbouncer import pgbouncer

WAKE_S = 10.0  # seconds a NOTIFY may take to wake a listener


@pytest.fixture(scope="module")
def bouncer(pg_direct: str) -> Iterator[str]:
    """PgBouncer with one server session per database: every client shares it."""
    with pgbouncer(pg_direct, pool_size=1) as url:
        yield url


@pytest.fixture
def pooled_url(bouncer: str, direct_db_url: str) -> str:
    """The test database through PgBouncer."""
    name = psycopg.conninfo.conninfo_to_dict(direct_db_url)["dbname"]
    return with_dbname(bouncer, str(name))


def _settings(pooled_url: str, direct_db_url: str, secret_key: str) -> Settings:
    return Settings(
        database_url=pooled_url, database_direct_url=direct_db_url, secret_key=secret_key
    )


async def test_workers_through_pgbouncer_deliver_every_event(
    engine: Engine, pooled_url: str, direct_db_url: str
) -> None:
    # Many claims and completion batches per worker: a statement prepared on one server
    # session would be missing on the next, and the startup packet may carry no settings.
    engine.make_destination(engine.receiver.url("/ok"))
    count = 120
    for i in range(count):
        enqueue_event(engine.conn, engine.tenant, "order.created", {"i": i})
    workers = [
        make_worker(
            pooled_url, engine.secret_key, direct_url=direct_db_url, batch_size=4, concurrency=4
        )
        for _ in range(2)
    ]
    assert all(w.config.pooled for w in workers)
    async with run_workers(workers):
        await wait_terminal(direct_db_url, count, timeout=90)
    states = dict(engine.conn.execute("SELECT state, count(*) FROM deliveries GROUP BY 1"))
    assert states == {"delivered": count}
    assert len(engine.receiver.hits("/ok")) == count
    errors = [
        w.metrics.registry.get_sample_value("courier_worker_database_errors_total") for w in workers
    ]
    assert errors == [0.0, 0.0]


async def test_a_worker_wakes_on_notify_through_its_direct_listen_connection(
    engine: Engine, pooled_url: str, direct_db_url: str
) -> None:
    # A poll interval far beyond the wait: only the NOTIFY can start the delivery.
    engine.make_destination(engine.receiver.url("/ok"))
    worker = make_worker(
        pooled_url, engine.secret_key, direct_url=direct_db_url, poll_interval_s=600
    )
    async with run_workers([worker]):
        await asyncio.sleep(1.0)  # listening and idle
        enqueue_event(engine.conn, engine.tenant, "order.created", {"n": 1})
        await engine.receiver.wait_for(1, "/ok", timeout=WAKE_S)


async def test_the_lifecycle_stream_hears_notify_through_the_direct_url(
    conn: psycopg.Connection[Any],
    pooled_url: str,
    direct_db_url: str,
    secret_key: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    make_destination("https://example.com/hook")  # the NOTIFY comes with a delivery
    app = create_app(_settings(pooled_url, direct_db_url, secret_key), pooled_url)
    state_of(app).metrics = CourierMetrics()
    async with app.router.lifespan_context(app):
        hub: FeedHub = state_of(app).feed_hub
        await asyncio.wait_for(hub.listening.wait(), timeout=WAKE_S)
        with hub.subscribe(tenant) as wake:
            await asyncio.sleep(0.2)
            wake.clear()  # the hub wakes everyone when it (re)starts listening
            enqueue_event(conn, tenant, "order.created", {"n": 1})
            await asyncio.wait_for(wake.wait(), timeout=WAKE_S)


async def test_a_maintenance_pass_through_pgbouncer_still_runs_alone(
    pooled_url: str, direct_db_url: str, secret_key: str
) -> None:
    # Another worker's cleaner, through the pooler as it would be without a direct URL,
    # holds the lock in the one server session PgBouncer has for this database. A session
    # lock is re-entrant: a second pass landing in that session would take it again.
    settings = _settings(pooled_url, direct_db_url, secret_key).model_copy(
        update={"worker_tenants": "*"}
    )
    worker = build_worker(settings, pooled_url)
    (cleaner,) = [s for s in worker._maintenance if isinstance(s, Cleaner)]
    async with await psycopg.AsyncConnection.connect(pooled_url, autocommit=True) as other:
        cur = await other.execute(query("maintenance_try_lock"), {"key": CLEANER_LOCK_KEY})
        assert await cur.fetchone() == (True,)
        try:
            assert (await cleaner.run_once()).ran is False
        finally:
            await other.execute(query("maintenance_unlock"), {"key": CLEANER_LOCK_KEY})
    run = await cleaner.run_once()
    assert run.ran is True
    with psycopg.connect(direct_db_url, autocommit=True) as check:
        left = check.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    assert left == (0,)


async def test_queue_stats_read_through_pgbouncer(pooled_url: str, tenant: uuid.UUID) -> None:
    collector = QueueStatsCollector(QueueStatsConfig(database_url=pooled_url), CourierMetrics())
    try:
        for _ in range(8):  # past psycopg's prepare threshold (5)
            stats = await collector.run_once()
        assert stats.pending == 0
    finally:
        await collector.close()


async def test_pooled_worker_transactions_carry_the_hot_path_settings_and_leak_none(
    pooled_url: str, direct_db_url: str, secret_key: str
) -> None:
    worker = make_worker(pooled_url, secret_key, direct_url=direct_db_url)
    conn = await worker._connect()
    try:
        setting = "SELECT current_setting('enable_seqscan')"
        async with local_settings(conn, HOT_PATH_SETTINGS):
            cur = await conn.execute(setting)
            assert await cur.fetchone() == ("off",)
        cur = await conn.execute(setting)
        assert await cur.fetchone() == ("on",)  # the server session is shared: nothing stays
    finally:
        await conn.close()


async def test_a_failed_pooled_block_rolls_back_and_leaves_no_transaction_open(
    pooled_url: str, direct_db_url: str, secret_key: str
) -> None:
    # With one server session per database, a transaction left open would stall every
    # other client of the pooler; and the block must not be pipelined (PgBouncer 1.18
    # loses track of pipelined Sync/Flush messages).
    worker = make_worker(pooled_url, secret_key, direct_url=direct_db_url)
    conn = await worker._connect()
    try:
        with pytest.raises(psycopg.errors.DivisionByZero):
            async with local_settings(conn, HOT_PATH_SETTINGS):
                assert conn._pipeline is None
                await conn.execute("CREATE TEMP TABLE IF NOT EXISTS t (n int)")
                await conn.execute("SELECT 1 / 0")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        cur = await conn.execute("SELECT current_setting('enable_seqscan')")
        assert await cur.fetchone() == ("on",)
    finally:
        await conn.close()
