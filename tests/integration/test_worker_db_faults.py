"""Database faults under a running worker: its backend connections are killed
(`pg_terminate_backend`), every statement times out for a while (a tiny
`statement_timeout`), statements fail with serialization errors, and commits fail (a
deferred constraint trigger raising at commit). The workers, in-process and a real
`courier worker` process, must neither crash nor lose a delivery: they back off,
reconnect and carry on, and duplicates are bounded by attempts that were lost.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp import web

from courier.enqueue import enqueue_event
from tests.support.chaos import WorkerPool
from tests.support.database import direct
from tests.support.engine import Engine, make_worker, run_workers, wait_terminal

pytestmark = pytest.mark.delivery_retry

WAVES = 6
EVENTS_PER_WAVE = 50  # two destinations: 600 deliveries
ANSWER_DELAY_S = 0.05  # the receiver takes a moment, so faults land mid-flight
FAULT_WINDOW_S = 1.5  # each fault lasts at least this long...
OBSERVE_TIMEOUT_S = 15.0  # ...and until a worker has met it, within this bound
APP_FILTER = "courier-worker%"

# Fault injection inside the test's own database. `chaos_switch` says how often each
# fault fires while a window is open; the workers' statements hit the triggers.
FAULT_SQL = """
CREATE TABLE chaos_switch (fault text PRIMARY KEY, rate float8 NOT NULL);
INSERT INTO chaos_switch VALUES ('serialization', 0), ('commit', 0);

CREATE FUNCTION chaos_fault() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('application_name') LIKE 'courier-worker%'
       AND random() < (SELECT rate FROM chaos_switch WHERE fault = TG_ARGV[0]) THEN
        RAISE EXCEPTION 'injected % failure', TG_ARGV[0] USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NULL;
END
$$;
-- every claim, completion and lease upkeep updates deliveries: fail the statement
CREATE TRIGGER chaos_serialization BEFORE UPDATE ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION chaos_fault('serialization');
-- completions (and reclaims) update attempts: fail at commit, after the work is done
CREATE CONSTRAINT TRIGGER chaos_commit AFTER UPDATE ON delivery_attempts
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION chaos_fault('commit');
"""


def _terminate(conn: psycopg.Connection[Any]) -> int:
    """Kill the workers' backends in this database only (other tests share the server)."""
    rows = conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name LIKE %s AND datname = current_database()"
        " AND pid <> pg_backend_pid()",
        (APP_FILTER,),
    ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def _worker_backends(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name LIKE %s AND datname = current_database()",
        (APP_FILTER,),
    ).fetchone()
    return int(row[0]) if row else 0


async def test_workers_survive_database_faults(
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine.conn.execute(FAULT_SQL)
    dbname = engine.conn.info.dbname
    seen: Counter[str] = Counter()

    async def slow_ok(request: web.Request) -> web.Response:
        await asyncio.sleep(ANSWER_DELAY_S)
        return web.Response(status=200)

    async def fail_first(request: web.Request) -> web.Response:
        await asyncio.sleep(ANSWER_DELAY_S)
        webhook_id = request.headers["webhook-id"]
        seen[webhook_id] += 1
        return web.Response(status=500 if seen[webhook_id] == 1 else 200)

    ok_dest, _ = engine.make_destination(engine.receiver.always("/ok", slow_ok))
    engine.make_destination(engine.receiver.always("/flaky", fail_first))

    def enqueue(wave: int) -> None:
        with engine.conn.transaction():
            for i in range(wave * EVENTS_PER_WAVE, (wave + 1) * EVENTS_PER_WAVE):
                enqueue_event(engine.conn, engine.tenant, "db.fault", {"i": i})

    def messages() -> list[str]:
        process = [
            line for p in log.glob("*.log") for line in p.read_text(errors="replace").splitlines()
        ]
        return process + [r.getMessage() for r in caplog.records]

    # Through a transaction-mode pooler a killed server session that sat idle in the pool
    # never reaches a worker (the pooler opens another): nothing to wait for there.
    pooled = direct(engine.db_url) != engine.db_url

    async def observed(*needles: str, hidden_by_pooler: bool = False) -> None:
        """Keep a fault window open until some worker has met the fault (bounded)."""
        await asyncio.sleep(FAULT_WINDOW_S)
        deadline = time.monotonic() + OBSERVE_TIMEOUT_S
        while not any(n in m for m in messages() for n in needles):
            if pooled and hidden_by_pooler:
                break
            assert time.monotonic() < deadline, f"no worker met {needles}"
            await asyncio.sleep(0.1)
        met[needles[0]] = sum(1 for m in messages() for n in needles if n in m)

    met: dict[str, int] = {}
    log = Path(tempfile.mkdtemp(prefix="courier-dbfault-"))
    pool = WorkerPool(
        engine.db_url, engine.secret_key, log, env={"COURIER_WORKER_LEASE_SECONDS": "5"}
    )
    workers = [
        make_worker(engine.db_url, engine.secret_key, concurrency=16, batch_size=8)
        for _ in range(2)
    ]
    terminated: list[int] = []
    figures: dict[str, Any] = {}
    try:
        pool.start()
        async with run_workers(workers) as stop:
            await asyncio.to_thread(enqueue, 0)
            # 1. kill every worker connection, three times in a row
            for _ in range(3):
                await asyncio.sleep(0.3)
                terminated.append(_terminate(engine.conn))
            await observed("terminating connection", "closed the connection", hidden_by_pooler=True)
            # 2. every statement times out for a moment
            await asyncio.to_thread(enqueue, 1)
            engine.conn.execute(f"ALTER DATABASE \"{dbname}\" SET statement_timeout = '1ms'")
            terminated.append(_terminate(engine.conn))  # reconnecting picks the setting up
            await observed("statement timeout")
            engine.conn.execute(f'ALTER DATABASE "{dbname}" RESET statement_timeout')
            terminated.append(_terminate(engine.conn))
            # 3. serialization failures on every kind of statement that moves a delivery
            await asyncio.to_thread(enqueue, 2)
            engine.conn.execute("UPDATE chaos_switch SET rate = 0.5 WHERE fault = 'serialization'")
            await observed("injected serialization failure")
            engine.conn.execute("UPDATE chaos_switch SET rate = 0 WHERE fault = 'serialization'")
            # 4. commits fail after the statement did its work
            await asyncio.to_thread(enqueue, 3)
            engine.conn.execute("UPDATE chaos_switch SET rate = 0.2 WHERE fault = 'commit'")
            await observed("injected commit failure")
            engine.conn.execute("UPDATE chaos_switch SET rate = 0 WHERE fault = 'commit'")
            # 5. everything at once, then the connections killed again
            await asyncio.to_thread(enqueue, 4)
            engine.conn.execute("UPDATE chaos_switch SET rate = 0.3")
            for _ in range(3):
                await asyncio.sleep(0.4)
                terminated.append(_terminate(engine.conn))
            engine.conn.execute("UPDATE chaos_switch SET rate = 0")
            await asyncio.to_thread(enqueue, 5)
            await wait_terminal(engine.db_url, WAVES * EVENTS_PER_WAVE * 2, timeout=90)
            # still alive: the process and every in-process worker task, reconnected
            pool.check()
            assert pool.crashed == [] and len(pool.live) == 1, pool.tail()
            assert not stop.is_set()
            alive = Counter(t.get_name() for t in asyncio.all_tasks() if not t.done())
            for side_task in ("courier-listen", "courier-heartbeat", "completer"):
                assert alive[side_task] == len(workers), alive
            await asyncio.sleep(0.5)
            figures["worker backends after the faults"] = _worker_backends(engine.conn)
        exits = pool.stop_all()
    finally:
        pool.stop_all(timeout=5)
        process_log = pool.tail()
        shutil.rmtree(log, ignore_errors=True)
    assert list(exits.values()) == [0], process_log
    assert figures["worker backends after the faults"] > 0

    # nothing lost, nothing stuck: every delivery delivered, attempts contiguous
    states = engine.conn.execute("SELECT state, count(*) FROM deliveries GROUP BY 1").fetchall()
    assert states == [("delivered", WAVES * EVENTS_PER_WAVE * 2)]
    gaps = engine.conn.execute(
        """
        SELECT d.id FROM deliveries d
          LEFT JOIN delivery_attempts a ON a.tenant_id = d.tenant_id AND a.delivery_id = d.id
         GROUP BY d.id, d.attempt_count
        HAVING count(a.*) <> d.attempt_count OR min(a.attempt_number) <> 1
            OR max(a.attempt_number) <> d.attempt_count
            OR count(*) FILTER (WHERE a.outcome IS NULL) > 0
        """
    ).fetchall()
    assert gaps == []
    overlaps = engine.conn.execute(
        """
        SELECT count(*) FROM delivery_attempts a
          JOIN delivery_attempts b
            ON a.tenant_id = b.tenant_id AND a.delivery_id = b.delivery_id
           AND a.attempt_number < b.attempt_number
         WHERE a.outcome <> 'abandoned' AND b.started_at < a.finished_at
        """
    ).fetchone()
    assert overlaps == (0,)

    # every event reached both paths; a repeated 200 needs a lost (abandoned) attempt
    abandoned: dict[tuple[str, str], int] = defaultdict(int)
    for event_id, dest, n in engine.conn.execute(
        "SELECT d.event_id, d.destination_id, count(*) FROM delivery_attempts a"
        " JOIN deliveries d ON d.tenant_id = a.tenant_id AND d.id = a.delivery_id"
        " WHERE a.outcome = 'abandoned' GROUP BY 1, 2"
    ).fetchall():
        abandoned[("/ok" if dest == ok_dest["id"] else "/flaky", str(event_id))] = int(n)
    events = [str(e) for (e,) in engine.conn.execute("SELECT id FROM events").fetchall()]
    ok_hits = Counter(h.headers["webhook-id"] for h in engine.receiver.hits("/ok"))
    flaky_hits = Counter(h.headers["webhook-id"] for h in engine.receiver.hits("/flaky"))
    assert set(ok_hits) == set(flaky_hits) == set(events)
    unexplained = [
        (path, e)
        for e in events
        for path, extra in (("/ok", ok_hits[e] - 1), ("/flaky", flaky_hits[e] - 2))
        if extra > abandoned[(path, e)]
    ]
    assert unexplained == []

    errors = [
        w.metrics.registry.get_sample_value("courier_worker_database_errors_total") or 0.0
        for w in workers
    ]
    assert all(e > 0 for e in errors)  # the faults really reached every in-process worker
    duplicates = sum(n - 1 for n in ok_hits.values()) + sum(n - 2 for n in flaky_hits.values())
    print(
        f"\ndb faults: {len(events) * 2} deliveries delivered; backends terminated per round "
        f"{terminated}; in-process worker db errors {errors}; "
        f"abandoned attempts {sum(abandoned.values())}; "
        f"duplicate 2xx {duplicates}; fault log lines seen {met}"
    )
