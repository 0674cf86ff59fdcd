"""The worker's statements keep their index plans when statistics lag behind the table.

A table bulk-loaded since its last ANALYZE is what every new installation (and every
benchmark) starts with: statistics then say `locked_by` is always null, so the planner
expects the completion's fence to match one row and prefers one sequential scan of the
whole table per batch to probing the primary key row by row.

These plans are made on sessions of PostgreSQL itself (past any pooler); through a
transaction-mode pooler the same settings travel per transaction (test_pgbouncer.py).
"""

from __future__ import annotations

import itertools
import re
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import ClientCursor, sql
from psycopg.conninfo import make_conninfo

from courier.store import deliveries as store
from courier.store.database import hot_path_options
from courier.store.queries import query
from courier.worker.worker import Worker
from tests.conftest import DestinationFactory
from tests.support.engine import make_worker

WAITING = 3000
BATCH = 16  # a destination's default max_in_flight

# Enough pending deliveries for a sequential scan to matter, in one statement.
FILL = """
WITH ev AS (
    INSERT INTO events (tenant_id, type, payload)
    SELECT %(tenant_id)s, 'load.test', jsonb_build_object('i', g)
      FROM generate_series(1, %(rows)s) AS g
    RETURNING tenant_id, id
)
INSERT INTO deliveries (tenant_id, event_id, destination_id)
SELECT tenant_id, id, %(destination_id)s FROM ev
"""


def _generic_plan(
    conn: psycopg.Connection[Any], name: str, params: dict[str, tuple[str, object]]
) -> str:
    """The plan PostgreSQL caches for query `name` once it is prepared; `params` maps each
    placeholder to its SQL type and the value to explain it with, in the query's order."""
    conn.execute("SET plan_cache_mode = force_generic_plan")
    text = query(name)
    for n, placeholder in enumerate(params, start=1):
        text = text.replace(f"%({placeholder})s", f"${n}")
    types = ", ".join(sql_type for sql_type, _ in params.values())
    conn.execute(f"PREPARE generic ({types}) AS " + text)
    values = sql.SQL(", ").join(sql.Literal(value) for _, value in params.values())
    rows = conn.execute(sql.SQL("EXPLAIN EXECUTE generic ({})").format(values)).fetchall()
    return "\n".join(r[0] for r in rows)


def _generic_completion_plan(conn: psycopg.Connection[Any], batch: str, worker_id: str) -> str:
    """The plan PostgreSQL caches for the completion statement once it is prepared."""
    params = {"batch": ("text", batch), "worker_id": ("text", worker_id)}
    return _generic_plan(conn, "complete_attempts", params)


@pytest.fixture
async def claimed_batch(
    conn: psycopg.Connection[Any],
    direct_db_url: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> tuple[str, str]:
    """A young table (analyzed while everything was pending) with one batch in flight."""
    destination, _ = make_destination("http://127.0.0.1:9/hook")
    conn.execute(FILL, {"tenant_id": tenant, "destination_id": destination["id"], "rows": WAITING})
    conn.execute("ANALYZE deliveries")
    worker_id = f"plan-{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(direct_db_url, autocommit=True) as claim:
        rows = await store.claim_deliveries(
            claim, worker_id=worker_id, limit=BATCH, lease_seconds=60, tenant_ids=None
        )
    assert len(rows) == BATCH
    completions = [
        store.Completion(
            r.tenant_id, r.id, r.attempt_number, "delivered", "succeeded", None, 200, None, 1, None
        )
        for r in rows
    ]
    return store.completion_batch(completions), worker_id


def test_a_default_connection_plans_a_sequential_scan_per_completion_batch(
    direct_db_url: str, claimed_batch: tuple[str, str]
) -> None:
    # The hazard itself: if this stops holding, the planner changed, not courier.
    with psycopg.connect(direct_db_url, autocommit=True) as conn:
        plan = _generic_completion_plan(conn, *claimed_batch)
    assert "Seq Scan on deliveries" in plan


def test_the_workers_connections_complete_through_the_primary_key(
    direct_db_url: str, claimed_batch: tuple[str, str]
) -> None:
    with psycopg.connect(
        direct_db_url, autocommit=True, options=hot_path_options(direct_db_url)
    ) as conn:
        plan = _generic_completion_plan(conn, *claimed_batch)
    assert "Seq Scan on deliveries" not in plan
    assert "Index Scan using deliveries_pkey on deliveries" in plan


async def test_worker_connections_carry_the_settings_and_keep_the_urls_own(
    direct_db_url: str, secret_key: str
) -> None:
    url = make_conninfo(direct_db_url, options="-c statement_timeout=4321")
    worker: Worker = make_worker(url, secret_key)
    conn = await worker._connect()
    try:
        cur = await conn.execute(
            "SELECT current_setting('enable_seqscan'), current_setting('statement_timeout')"
        )
        assert await cur.fetchone() == ("off", "4321ms")
    finally:
        await conn.close()


def test_the_claim_takes_due_rows_by_walking_the_waiting_index_in_due_order(
    conn: psycopg.Connection[Any], claimed_batch: tuple[str, str]
) -> None:
    # courier_due_deliveries carries its own planner settings; run its body under them.
    body, settings = conn.execute(
        "SELECT prosrc, proconfig FROM pg_proc WHERE proname = 'courier_due_deliveries'"
    ).fetchone() or ("", [])
    assert "enable_sort=off" in settings
    select = body[body.index("SELECT") : body.rindex(";")]
    text = select.replace("p_tenant", "$1").replace("p_destination", "$2")
    text = text.replace("p_limit", "$3")
    with conn.transaction():
        for setting in settings:
            name, _, value = setting.partition("=")
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        conn.execute(sql.SQL("PREPARE due (uuid, uuid, integer) AS {}").format(sql.SQL(text)))
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN EXECUTE due (gen_random_uuid(), gen_random_uuid(), 16)"
            ).fetchall()
        )
    assert "Index Scan using deliveries_waiting on deliveries" in plan
    assert "Sort" not in plan


def _generic_claim_plan(conn: psycopg.Connection[Any]) -> str:
    """The plan a worker's connection caches for the claim once it is prepared."""
    params: dict[str, tuple[str, object]] = {
        "worker_id": ("text", "w"),
        "limit": ("integer", 64),
        "lease_seconds": ("float8", 30.0),
        "after_tenant": ("uuid", None),
        "after_destination": ("uuid", None),
        "max_destinations": ("integer", 64),
        "all_tenants": ("boolean", True),
        "tenant_ids": ("uuid[]", []),
    }
    return _generic_plan(conn, "claim_deliveries", params)


@pytest.mark.parametrize("waiting", [0, 50, WAITING])
def test_the_claim_reaches_every_picked_row_by_its_full_key(
    waiting: int,
    direct_db_url: str,
    conn: psycopg.Connection[Any],
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    # Plans made while the table is young (never analyzed, as after install or in every
    # benchmark) once joined picked rows through an index on the tenant alone, reading
    # the tenant's whole history per claim. Every index a row lookup can use must take
    # the full key, whatever the statistics say.
    destination, _ = make_destination("http://127.0.0.1:9/hook")
    conn.execute(FILL, {"tenant_id": tenant, "destination_id": destination["id"], "rows": waiting})
    with psycopg.connect(
        direct_db_url, autocommit=True, options=hot_path_options(direct_db_url)
    ) as worker:
        plan = _generic_claim_plan(worker)
    assert "deliveries_event" not in plan
    for scan, cond in itertools.pairwise(plan.splitlines()):
        if re.search(r" on (deliveries|events|delivery_attempts|lifecycle_events) ", scan):
            assert not re.search(r"Index Cond: \(tenant_id = [^()]*\)$", cond), scan + cond


def _explained_claim(direct_db_url: str, tenant_ids: list[uuid.UUID] | None) -> list[str]:
    """EXPLAIN ANALYZE of one 64-row claim on a worker's connection, rolled back."""
    params = {
        "worker_id": "w",
        "limit": 64,
        "lease_seconds": 30.0,
        "after_tenant": store.ZERO_UUID,
        "after_destination": store.ZERO_UUID,
        "max_destinations": store.MAX_DESTINATIONS_PER_CLAIM,
        "all_tenants": tenant_ids is None,
        "tenant_ids": tenant_ids or [],
    }
    options = hot_path_options(direct_db_url)
    with (
        psycopg.connect(direct_db_url, options=options, cursor_factory=ClientCursor) as worker,
        worker.transaction(force_rollback=True),
    ):
        explain = "EXPLAIN (ANALYZE, COSTS OFF) " + query("claim_deliveries")
        return [r[0] for r in worker.execute(explain, params).fetchall()]


SPREAD = 40  # destinations with one due delivery each


def test_a_claim_over_many_destinations_counts_each_ones_in_flight_rows_once(
    direct_db_url: str,
    conn: psycopg.Connection[Any],
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    # A claim's cost must grow with the destinations it visits, not with their square.
    # Joined to a separate CTE of in-flight counts, the planner (expecting a handful of
    # due destinations) ran every count again for each destination: a claim over 128
    # destinations probed the in-flight index 16,384 times.
    for _ in range(SPREAD):
        destination, _ = make_destination("http://127.0.0.1:9/hook")
        conn.execute(FILL, {"tenant_id": tenant, "destination_id": destination["id"], "rows": 1})
    conn.execute("ANALYZE deliveries")
    plan = _explained_claim(direct_db_url, [tenant])
    probes = [line for line in plan if "using deliveries_in_flight" in line]
    assert probes
    for line in probes:
        found = re.search(r"loops=(\d+)", line)
        assert found is not None and int(found.group(1)) <= SPREAD, line


YOUNG = 3000  # deliveries of one destination, all but WAITING_YOUNG of them finished
WAITING_YOUNG = 100


def test_a_claim_on_a_young_table_looks_each_row_up_by_its_id(
    direct_db_url: str,
    conn: psycopg.Connection[Any],
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    # A busy destination whose table was never analyzed (a new install, every benchmark):
    # planned as a plain join, the claim took tenant and destination for its row lookup
    # from the destinations row and checked the id as a join filter, so each claimed row
    # stepped over every finished row of the destination (1.7 s for one 128-row claim
    # over 20,000 rows, against 11 ms).
    conn.execute("ALTER TABLE deliveries SET (autovacuum_enabled = off)")  # stays young
    destination, _ = make_destination("http://127.0.0.1:9/hook", max_in_flight=1000)
    conn.execute(FILL, {"tenant_id": tenant, "destination_id": destination["id"], "rows": YOUNG})
    conn.execute(
        "UPDATE deliveries SET state = 'delivering', attempt_count = 1, locked_by = 'w0',"
        " locked_until = now() + interval '1 minute'"
        " WHERE id IN (SELECT id FROM deliveries ORDER BY id LIMIT %s)",
        (YOUNG - WAITING_YOUNG,),
    )
    conn.execute(
        "UPDATE deliveries SET state = 'delivered', locked_by = NULL, locked_until = NULL,"
        " next_attempt_at = NULL, delivered_at = now() WHERE state = 'delivering'"
    )
    plan = _explained_claim(direct_db_url, None)
    claimed = re.search(r"rows=(\d+)", plan[0])  # the statement's own rows: what it claimed
    assert claimed is not None and int(claimed.group(1)) == 64, plan[0]
    stepped = [int(n) for line in plan for n in re.findall(r"Rows Removed by [\w ]+: (\d+)", line)]
    assert max(stepped, default=0) < YOUNG, "\n".join(plan)
