"""A database that already holds delivered events, as production would have them.

`fill` writes events through courier's own `enqueue_events` (1,000-event batches, an
idempotency key on every second event), so events, deliveries and `delivery.created`
lifecycle rows exist as the API writes them; then every delivery is claimed and completed
as a successful first attempt leaves it (the columns `complete_attempts` sets, a finished
attempt row, a `delivery.delivered` lifecycle row), COMPLETE_CHUNK deliveries per
transaction of two set-based statements; then VACUUM ANALYZE and a checkpoint.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from bench.payloads import EVENT_TYPE, payload
from courier.enqueue import NewEvent, enqueue_events
from courier.store.queries import query

BATCH = 1_000  # events per enqueue_events call
BATCHES_PER_COMMIT = 10
COMPLETE_CHUNK = 100_000  # deliveries per completion statement

# A chunk of pending deliveries (keyset by primary key) goes the way the state machine
# allows: claimed first (delivering, under a lease, its attempt counted), as
# claim_deliveries leaves it; then COMPLETE.
CLAIM = """
WITH picked AS (
    SELECT d.tenant_id, d.id
      FROM deliveries d
     WHERE d.tenant_id = %(tenant_id)s AND d.id > %(after)s AND d.state = 'pending'
     ORDER BY d.tenant_id, d.id
     LIMIT %(limit)s
), claimed AS (
    UPDATE deliveries d
       SET state = 'delivering', attempt_count = 1, locked_by = 'stored',
           locked_until = now() + interval '1 hour', updated_at = now()
      FROM picked p
     WHERE d.tenant_id = p.tenant_id AND d.id = p.id
    RETURNING d.id
)
SELECT count(*) AS n, max(id::text)::uuid AS last FROM claimed
"""
# The row as complete_attempts leaves a success, the attempt row (inserted finished: what
# claim's insert and completion's update leave) and completion's lifecycle row.
COMPLETE = """
WITH done AS (
    UPDATE deliveries d
       SET state = 'delivered', locked_by = NULL, locked_until = NULL,
           next_attempt_at = NULL, last_error = NULL, last_http_status = 200,
           delivered_at = d.created_at + interval '40 ms',
           updated_at = d.created_at + interval '40 ms'
     WHERE d.tenant_id = %(tenant_id)s AND d.locked_by = 'stored'
    RETURNING d.tenant_id, d.id, d.event_id, d.destination_id, d.created_at
), attempts AS (
    INSERT INTO delivery_attempts (tenant_id, delivery_id, event_id, destination_id,
                                   attempt_number, worker_id, started_at, finished_at,
                                   duration_ms, http_status, retryable, outcome)
    SELECT tenant_id, id, event_id, destination_id, 1, 'stored', created_at + interval '10 ms',
           created_at + interval '40 ms', 30, 200, false, 'succeeded'
      FROM done
)
INSERT INTO lifecycle_events (tenant_id, type, delivery_id, event_id, destination_id,
                              state, attempt_number, data)
SELECT tenant_id, 'delivery.delivered', id, event_id, destination_id, 'delivered', 1,
       jsonb_build_object('outcome', 'succeeded', 'http_status', 200)
  FROM done
"""


def _items(start: int, count: int) -> list[NewEvent]:
    return [
        NewEvent(EVENT_TYPE, payload(f"stored-{n}", n), f"stored-{n}" if n % 2 == 0 else None)
        for n in range(start, start + count)
    ]


def fill(url: str, tenant: uuid.UUID, events: int, say: Callable[[str], None] = print) -> float:
    """Store `events` delivered events for `tenant`; returns the seconds it took."""
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        for at in range(0, events, BATCH * BATCHES_PER_COMMIT):
            with conn.transaction():
                stop = min(events, at + BATCH * BATCHES_PER_COMMIT)
                for first in range(at, stop, BATCH):
                    enqueue_events(conn, tenant, _items(first, min(BATCH, stop - first)))
            if (stop // BATCH) % 100 == 0 or stop == events:
                say(f"  enqueued {stop:,} ({time.perf_counter() - started:.0f} s)")
        enqueued = time.perf_counter() - started
        after, done = uuid.UUID(int=0), 0
        while True:
            with conn.transaction():
                params = {"tenant_id": tenant, "after": after, "limit": COMPLETE_CHUNK}
                row = conn.execute(CLAIM, params).fetchone()
                if row is None or not row[0]:
                    break
                conn.execute(COMPLETE, {"tenant_id": tenant})
            done, after = done + int(row[0]), row[1]
        say(f"  delivered {done:,} ({time.perf_counter() - started - enqueued:.0f} s)")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
    return time.perf_counter() - started


def explain_enqueue(url: str, tenant: uuid.UUID, events: int) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the enqueue_events statement planned for `events`
    new events (rolled back), keyed like the stored ones."""
    tag = uuid.uuid4().hex[:8]
    params = {
        "tenant_id": tenant,
        "types": [EVENT_TYPE] * events,
        "payloads": [json.dumps(payload(f"x-{tag}-{n}", n)) for n in range(events)],
        "keys": [f"x-{tag}-{n}" if n % 2 == 0 else None for n in range(events)],
    }
    with psycopg.connect(url) as conn:
        try:
            rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + query("enqueue_events"), params)
            plan = rows.fetchall()
        finally:
            conn.rollback()
    return "\n".join(_clip(str(r[0])) for r in plan)


def explain_generic(url: str) -> str:
    """EXPLAIN (GENERIC_PLAN) of the enqueue_events statement: the plan a prepared
    statement may cache, costed without its parameters' values (PostgreSQL 16+)."""
    statement = query("enqueue_events")
    for n, name in enumerate(("tenant_id", "types", "payloads", "keys"), 1):
        statement = statement.replace(f"%({name})s", f"${n}")
    with psycopg.connect(url, autocommit=True) as conn:
        plan = conn.execute("EXPLAIN (GENERIC_PLAN) " + statement).fetchall()
    return "\n".join(_clip(str(r[0])) for r in plan)


ENQUEUE_PLANS = """
SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)
  FROM pg_prepared_statements WHERE statement LIKE 'WITH input AS MATERIALIZED%'
"""


def enqueue_plans(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(generic, custom) plans this session used so far for the enqueue statement."""
    row = conn.execute(ENQUEUE_PLANS).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _clip(line: str, width: int = 160) -> str:
    """A plan line cut to `width` (index conditions list every key of the batch)."""
    return line if len(line) <= width else line[: width - 1] + "…"
