"""Every hot statement can be routed to one tenant's shard.

The sharded design (docs/scaling.md) distributes every tenant-keyed table by tenant_id,
as Citus does. A statement is routable there only when each scan of a distributed table is
bounded by tenant_id: a constant (or a list of them, for a worker serving a tenant group),
or an equality with a row of another tenant-keyed table that is itself bounded (a
co-located join). This test records what the engine really sends for one delivery's life
(enqueue, claim by a worker serving a tenant group, lease upkeep, completion, release, the
next-due probe, the hand-back) and checks the plan of each on plain PostgreSQL: every scan
of a tenant-keyed table carries a tenant_id condition.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from courier.enqueue import enqueue_event
from courier.store import deliveries as store
from courier.store.database import HOT_PATH_SETTINGS
from courier.tenancy import create_tenant
from tests.support.engine import DestinationFactory

RECORDED: list[tuple[str, Any]] = []

SCANS = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Bitmap Index Scan"}
PASS_THROUGH = {"Hash", "Sort", "Materialize", "Memoize", "Incremental Sort"}
CONDITIONS = ("Index Cond", "Filter", "Recheck Cond", "Join Filter", "Hash Cond", "Merge Cond")


class _Recording(psycopg.AsyncCursor[Any]):
    async def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
        RECORDED.append((str(query), params))
        return await super().execute(query, params, **kw)


class _RecordingSync(psycopg.Cursor[Any]):
    def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
        RECORDED.append((str(query), params))
        return super().execute(query, params, **kw)


@pytest.fixture
def recorded() -> Iterator[list[tuple[str, Any]]]:
    RECORDED.clear()
    yield RECORDED
    RECORDED.clear()


def _tenant_tables(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND column_name = 'tenant_id'"
    ).fetchall()
    return {r[0] for r in rows}


def _unbounded_scans(plan: dict[str, Any], tables: set[str]) -> list[str]:
    """Scans of tenant-keyed tables with no tenant_id condition on them or their join."""
    found: list[str] = []

    def walk(node: dict[str, Any], inherited: str) -> None:
        own = " ".join(str(node.get(k, "")) for k in CONDITIONS)
        children = node.get("Plans", [])
        if node.get("Node Type") in SCANS and node.get("Relation Name") in tables:
            bitmap = " ".join(
                str(c.get("Index Cond", "")) for c in children if "Bitmap" in c["Node Type"]
            )
            if "tenant_id" not in f"{own} {bitmap} {inherited}":
                found.append(f"{node['Node Type']} on {node['Relation Name']}")
        kind = node.get("Node Type", "")
        joins = kind.endswith("Join") or kind == "Nested Loop"
        # A join's condition bounds both of its sides; Hash, Sort or Materialize pass it on.
        passed = f"{inherited} {own}" if joins else inherited if kind in PASS_THROUGH else ""
        for child in children:
            walk(child, passed)

    walk(plan, "")
    return found


def _explain(conn: psycopg.Connection[Any], text: str, params: Any) -> dict[str, Any]:
    with conn.transaction():
        for name, value in HOT_PATH_SETTINGS:
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        row = conn.execute("EXPLAIN (FORMAT JSON) " + text, params).fetchone()
    assert row is not None
    document = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    return dict(document[0]["Plan"])


async def test_every_hot_statement_is_bounded_by_tenant(
    recorded: list[tuple[str, Any]],
    conn: psycopg.Connection[Any],
    direct_db_url: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    other, _ = create_tenant(conn, f"other-{uuid.uuid4().hex[:8]}")
    make_destination("https://example.com/hook")
    make_destination("https://example.com/hook", tenant_id=other)
    with (
        psycopg.connect(direct_db_url, cursor_factory=_RecordingSync) as writer,
        writer.transaction(),
    ):
        enqueue_event(writer, tenant, "order.created", {"n": 1})
        enqueue_event(writer, other, "order.created", {"n": 2})
    aconn = await psycopg.AsyncConnection.connect(
        direct_db_url, autocommit=True, cursor_factory=_Recording
    )
    async with aconn:
        group = [tenant]
        await store.next_due_at(aconn, tenant_ids=group)
        claimed = await store.claim_deliveries(
            aconn, worker_id="w", limit=10, lease_seconds=30, tenant_ids=group
        )
        assert [c.tenant_id for c in claimed] == [tenant]  # the group only
        keys = [c.key for c in claimed]
        await store.extend_leases(aconn, worker_id="w", keys=keys, lease_seconds=30)
        done = store.Completion(
            tenant_id=claimed[0].tenant_id,
            delivery_id=claimed[0].id,
            attempt_number=claimed[0].attempt_number,
            state="delivered",
            outcome="succeeded",
            retry_delay_s=None,
            http_status=200,
            error_summary=None,
            duration_ms=3,
            reason=None,
        )
        assert len(await store.complete_attempts(aconn, worker_id="w", completions=[done])) == 1
        await store.release_leases(aconn, worker_id="w", keys=keys)
        await store.hand_back_unsignable(aconn, worker_id="w", claimed=claimed, delay_s=1)

    statements = [(q, p) for q, p in recorded if not q.lstrip().upper().startswith("SELECT SET")]
    assert len(statements) >= 7, [q[:60] for q, _ in statements]
    tables = _tenant_tables(conn)
    assert {"deliveries", "delivery_attempts", "events", "destinations"} <= tables
    unbounded = {
        text.strip().splitlines()[0][:80]: scans
        for text, params in statements
        if (scans := _unbounded_scans(_explain(conn, text, params), tables))
    }
    assert unbounded == {}


def test_the_check_finds_a_scan_that_reads_across_tenants(conn: psycopg.Connection[Any]) -> None:
    # The check itself: a statement that reads every tenant's deliveries is caught.
    tables = _tenant_tables(conn)
    plan = _explain(conn, "SELECT count(*) FROM deliveries WHERE state = 'pending'", None)
    assert [s for s in _unbounded_scans(plan, tables) if s.endswith("on deliveries")]
    bounded = _explain(
        conn, "SELECT count(*) FROM deliveries WHERE tenant_id = %s", (uuid.uuid4(),)
    )
    assert _unbounded_scans(bounded, tables) == []
