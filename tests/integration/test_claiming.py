"""Leased claiming under concurrency: many workers (tasks and real processes), SIGKILL
mid-delivery, fencing of a stale worker, and a full restart of workers and database."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import Counter
from typing import Any

import psycopg
import pytest
from aiohttp import web

from courier.enqueue import enqueue_event
from courier.store import deliveries as store
from courier.store.deliveries import Completion
from tests.conftest import DestinationFactory
from tests.support.database import direct
from tests.support.engine import (
    Engine,
    attempts,
    delivery,
    delivery_states,
    make_worker,
    run_workers,
    wait_terminal,
    worker_process,
)

pytestmark = pytest.mark.delivery_retry


def _enqueue_many(conn: psycopg.Connection[Any], tenant: uuid.UUID, n: int) -> None:
    with conn.transaction():
        for i in range(n):
            enqueue_event(conn, tenant, "load.test", {"i": i})


def _assert_no_overlapping_attempts(conn: psycopg.Connection[Any]) -> None:
    overlaps = conn.execute(
        """
        SELECT count(*) FROM delivery_attempts a
          JOIN delivery_attempts b
            ON a.tenant_id = b.tenant_id AND a.delivery_id = b.delivery_id
           AND a.attempt_number < b.attempt_number
         WHERE a.outcome <> 'abandoned'
           AND b.started_at < a.finished_at
        """
    ).fetchone()
    assert overlaps == (0,)


async def test_eight_workers_deliver_each_exactly_once(engine: Engine) -> None:
    n = 2000
    engine.make_destination(engine.receiver.url("/load"))
    _enqueue_many(engine.conn, engine.tenant, n)
    processes = [
        worker_process(engine.db_url, engine.secret_key, COURIER_WORKER_CONCURRENCY="16")
        for _ in range(3)
    ]
    try:
        # five in-process workers (own connections) + three `courier worker` processes
        workers = [
            make_worker(engine.db_url, engine.secret_key, concurrency=16, batch_size=8)
            for _ in range(5)
        ]
        async with run_workers(workers):
            await wait_terminal(engine.db_url, n, timeout=120)
    finally:
        for p in processes:
            p.send_signal(signal.SIGTERM)
        for p in processes:
            assert p.wait(timeout=30) == 0
    ids = Counter(h.headers["webhook-id"] for h in engine.receiver.hits("/load"))
    assert len(ids) == n and set(ids.values()) == {1}  # each event received exactly once
    states = engine.conn.execute(
        "SELECT state, attempt_count, count(*) FROM deliveries GROUP BY 1, 2"
    )
    assert states.fetchall() == [("delivered", 1, n)]
    per_worker = engine.conn.execute(
        "SELECT count(DISTINCT worker_id), count(*) FROM delivery_attempts"
    ).fetchone()
    assert per_worker is not None and per_worker[1] == n
    assert per_worker[0] >= 2  # the work really was shared
    _assert_no_overlapping_attempts(engine.conn)


async def test_sigkill_mid_delivery_is_reclaimed_and_abandoned(engine: Engine) -> None:
    arrived = asyncio.Event()
    calls = 0

    async def slow_first(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            arrived.set()
            await asyncio.sleep(30)  # the first worker is killed while we sit here
        return web.Response(status=200)

    engine.make_destination(engine.receiver.always("/slow", slow_first), timeout_ms=60_000)
    (d,) = enqueue_event(engine.conn, engine.tenant, "t", {"k": 1}).deliveries
    victim = worker_process(engine.db_url, engine.secret_key, COURIER_WORKER_LEASE_SECONDS="2")
    try:
        await asyncio.wait_for(arrived.wait(), timeout=30)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert delivery(engine.conn, d.id)["state"] == "delivering"
    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        await wait_terminal(engine.db_url, 1, timeout=30)
    row = delivery(engine.conn, d.id)
    assert row["state"] == "delivered" and row["attempt_count"] == 2
    first, second = attempts(engine.conn, d.id)
    assert first["outcome"] == "abandoned" and first["finished_at"] is not None
    assert second["outcome"] == "succeeded" and second["worker_id"] != first["worker_id"]
    assert second["started_at"] >= first["finished_at"]


async def test_stale_worker_cannot_overwrite_new_owner(
    conn: psycopg.Connection[Any],
    db_url: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    make_destination("http://127.0.0.1:9/")
    (d,) = enqueue_event(conn, tenant, "t", {}).deliveries
    async with await psycopg.AsyncConnection.connect(direct(db_url), autocommit=True) as aconn:
        (mine,) = await store.claim_deliveries(
            aconn, worker_id="stale", limit=10, lease_seconds=0.05, tenant_ids=None
        )
        await asyncio.sleep(0.2)  # the lease runs out
        (theirs,) = await store.claim_deliveries(
            aconn, worker_id="new-owner", limit=10, lease_seconds=60, tenant_ids=None
        )
        assert theirs.attempt_number == mine.attempt_number + 1

        def done(attempt: int, state: str) -> Completion:
            return Completion(
                tenant_id=tenant,
                delivery_id=d.id,
                attempt_number=attempt,
                state=state,
                outcome="permanent_failure" if state == "failed" else "succeeded",
                retry_delay_s=None,
                http_status=400 if state == "failed" else 200,
                error_summary=None,
                duration_ms=5,
                reason="permanent_failure" if state == "failed" else None,
            )

        written = await store.complete_attempts(
            aconn, worker_id="stale", completions=[done(mine.attempt_number, "failed")]
        )
        assert written == []  # fenced out
        assert delivery(conn, d.id)["state"] == "delivering"
        # nor can it complete the new attempt number, which is not its own
        written = await store.complete_attempts(
            aconn, worker_id="stale", completions=[done(theirs.attempt_number, "failed")]
        )
        assert written == []
        written = await store.complete_attempts(
            aconn, worker_id="new-owner", completions=[done(theirs.attempt_number, "delivered")]
        )
        assert [w.state for w in written] == ["delivered"]
    rows = attempts(conn, d.id)
    assert [a["outcome"] for a in rows] == ["abandoned", "succeeded"]
    assert delivery(conn, d.id)["state"] == "delivered"


async def test_worker_serves_only_its_tenants(engine: Engine) -> None:
    from courier.tenancy import create_tenant

    other, _ = create_tenant(engine.conn, "other-tenant")
    engine.make_destination(engine.receiver.url("/mine"))
    engine.make_destination(engine.receiver.url("/theirs"), tenant_id=other)
    enqueue_event(engine.conn, engine.tenant, "t", {})
    (theirs,) = enqueue_event(engine.conn, other, "t", {}).deliveries
    async with run_workers(
        [make_worker(engine.db_url, engine.secret_key, tenant_ids=[engine.tenant])]
    ):
        await wait_terminal(engine.db_url, 1)
        await asyncio.sleep(0.3)  # a few more polls: the other tenant's row stays put
    assert len(engine.receiver.hits("/mine")) == 1 and engine.receiver.hits("/theirs") == []
    assert delivery(engine.conn, theirs.id)["state"] == "pending"


async def test_sigterm_hands_back_unfinished_work(engine: Engine) -> None:
    arrived = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        arrived.set()
        await asyncio.sleep(30)
        return web.Response(status=200)

    engine.make_destination(engine.receiver.always("/hang", hang), timeout_ms=60_000)
    (d,) = enqueue_event(engine.conn, engine.tenant, "t", {}).deliveries
    proc = worker_process(
        engine.db_url,
        engine.secret_key,
        COURIER_WORKER_LEASE_SECONDS="600",
        COURIER_WORKER_SHUTDOWN_GRACE_SECONDS="0.5",
    )
    await asyncio.wait_for(arrived.wait(), timeout=30)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 30) == 0
    row = delivery(engine.conn, d.id)
    # handed back: still held by nobody new, but its lease is already over
    assert row["state"] == "delivering"
    expired = engine.conn.execute(
        "SELECT locked_until < now() FROM deliveries WHERE id = %s", (d.id,)
    ).fetchone()
    assert expired == (True,)


@pytest.mark.slow
async def test_full_restart_continues_scheduled_retries(
    pg_server: tuple[str, Any],
    engine: Engine,
) -> None:
    _, embedded = pg_server
    engine.make_destination(
        engine.receiver.script("/later", [500]), backoff_initial_ms=1500, backoff_max_ms=1500
    )
    (d,) = enqueue_event(engine.conn, engine.tenant, "t", {}).deliveries
    proc = worker_process(engine.db_url, engine.secret_key)
    try:
        await engine.receiver.wait_for(1, "/later")
        await asyncio.sleep(0.3)  # let the completion commit
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    assert delivery(engine.conn, d.id)["state"] == "retry_scheduled"
    engine.conn.close()
    if embedded is not None:  # restart the database too, when the tests own it
        await asyncio.to_thread(embedded.restart)
    proc = worker_process(engine.db_url, engine.secret_key)
    try:
        await wait_terminal(engine.db_url, 1, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    with psycopg.connect(direct(engine.db_url)) as fresh:
        row = delivery(fresh, d.id)
        assert row["state"] == "delivered" and row["attempt_count"] == 2
    assert len(engine.receiver.hits("/later")) == 2


def test_worker_refuses_to_start_without_tenants(db_url: str, secret_key: str) -> None:
    proc = worker_process(db_url, secret_key, capture_stderr=True, COURIER_WORKER_TENANTS="")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "COURIER_WORKER_TENANTS" in lines[0]
    assert "Traceback" not in err.decode()


async def test_ready_rows_start_as_slots_free_and_stop_hands_them_back(engine: Engine) -> None:
    """Beyond its in-flight slots a worker holds `prefetch` claimed rows, never sent yet."""
    release = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(status=200)

    engine.make_destination(engine.receiver.always("/held", held), timeout_ms=60_000)
    ids = [
        enqueue_event(engine.conn, engine.tenant, "t", {"n": n}).deliveries[0].id for n in range(10)
    ]
    worker = make_worker(engine.db_url, engine.secret_key, concurrency=2, batch_size=4, prefetch=2)
    async with run_workers([worker]):
        await engine.receiver.wait_for(2, "/held")
        await asyncio.sleep(0.3)  # the claim loop has topped up what it may hold
        states = delivery_states(engine.conn)
        assert states.get("delivering") == 4  # 2 sending + 2 ready, no more
        assert len(engine.receiver.hits("/held")) == 2  # the ready ones are not sent early
        release.set()
        await wait_terminal(engine.db_url, len(ids))
    sends = Counter(r.headers["webhook-id"] for r in engine.receiver.hits("/held"))
    assert len(sends) == 10 and set(sends.values()) == {1}
    assert {delivery(engine.conn, i)["state"] for i in ids} == {"delivered"}

    # Stopping while rows wait in memory: they are handed back unsent, at once reclaimable.
    release.clear()
    more = [
        enqueue_event(engine.conn, engine.tenant, "t", {"n": n}).deliveries[0].id for n in range(10)
    ]
    worker = make_worker(
        engine.db_url,
        engine.secret_key,
        concurrency=2,
        batch_size=4,
        prefetch=2,
        shutdown_grace_s=0.2,
        lease_seconds=600,
    )
    async with run_workers([worker]):
        await engine.receiver.wait_for(12, "/held")
        await asyncio.sleep(0.3)
    sent = {r.headers["webhook-id"] for r in engine.receiver.hits("/held")}
    held_rows = engine.conn.execute(
        "SELECT count(*) FROM deliveries WHERE id = ANY(%s) AND state = 'delivering'"
        " AND locked_until < now()",
        (more,),
    ).fetchone()
    assert held_rows == (4,)  # 2 cancelled mid-request + 2 never started, all handed back
    assert len(sent) == 12
