"""enqueue_events from Python: inside the caller's transaction (rolled back, nothing is
left; committed, everything is there), per-item outcomes for repeated and reused keys,
and the NOTIFYs a transaction sends: one per tenant, however many events it enqueues."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from courier.enqueue import (
    EnqueueResult,
    IdempotencyKeyReused,
    KeyReused,
    NewEvent,
    enqueue_event,
    enqueue_events,
)
from courier.tenancy import create_tenant
from tests.support.database import direct
from tests.support.engine import DestinationFactory


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # test-only
    assert row is not None
    return int(row[0])


def _notifies(listener: psycopg.Connection[Any]) -> list[str]:
    return [n.payload for n in listener.notifies(timeout=1.0)]


def test_a_rolled_back_transaction_leaves_nothing(
    db_url: str,
    conn: psycopg.Connection[Any],
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    make_destination("https://example.com/hook")
    with psycopg.connect(direct(db_url), autocommit=True) as listener:  # past any pooler
        listener.execute("LISTEN courier_deliveries")
        with (
            psycopg.connect(db_url) as caller,
            pytest.raises(RuntimeError),
            caller.transaction(),
        ):
            caller.execute("CREATE TEMP TABLE orders (id int)")
            outcomes = enqueue_events(
                caller, tenant, [NewEvent("order.created", {"n": n}) for n in range(100)]
            )
            assert len(outcomes) == 100
            raise RuntimeError("the caller's own work failed")
        assert _notifies(listener) == []
    for table in ("events", "deliveries", "lifecycle_events"):
        assert _count(conn, table) == 0, table


def test_a_committed_batch_writes_every_event_with_its_deliveries(
    db_url: str,
    conn: psycopg.Connection[Any],
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    make_destination("https://example.com/a")
    make_destination("https://example.com/b", event_types=["order.*"])
    events = [
        {"type": "order.created" if n % 2 else "user.seen", "payload": {"n": n}} for n in range(10)
    ]
    with psycopg.connect(db_url) as caller, caller.transaction():
        outcomes = enqueue_events(caller, tenant, events)
    assert all(isinstance(o, EnqueueResult) and o.created for o in outcomes)
    fan_out = [len(o.deliveries) for o in outcomes if isinstance(o, EnqueueResult)]
    assert fan_out == [1, 2] * 5
    assert _count(conn, "events") == 10
    assert _count(conn, "deliveries") == 15 == _count(conn, "lifecycle_events")


def test_repeated_and_reused_keys_have_their_own_outcomes(
    conn: psycopg.Connection[Any], tenant: uuid.UUID, make_destination: DestinationFactory
) -> None:
    make_destination("https://example.com/hook")
    first = enqueue_event(conn, tenant, "order.created", {"n": 1}, idempotency_key="k")
    outcomes = enqueue_events(
        conn,
        tenant,
        [
            NewEvent("order.created", {"n": 1}, "k"),
            NewEvent("order.created", {"n": 2}, "k"),
            NewEvent("order.created", {"n": 3}, "new"),
            NewEvent("order.created", {"n": 3}, "new"),
            NewEvent("order.created", {"n": 4}, "new"),
        ],
    )
    repeat, reused, created, repeated_in_batch, reused_in_batch = outcomes
    assert isinstance(repeat, EnqueueResult) and not repeat.created
    assert repeat.event_id == first.event_id and repeat.deliveries == first.deliveries
    assert reused == KeyReused("k", first.event_id)
    assert isinstance(created, EnqueueResult) and created.created
    assert isinstance(repeated_in_batch, EnqueueResult) and not repeated_in_batch.created
    assert repeated_in_batch.event_id == created.event_id
    assert repeated_in_batch.deliveries == created.deliveries
    assert reused_in_batch == KeyReused("new", created.event_id)
    assert _count(conn, "events") == 2


def test_enqueue_event_refuses_a_key_reused_with_another_payload(
    conn: psycopg.Connection[Any], tenant: uuid.UUID
) -> None:
    first = enqueue_event(conn, tenant, "order.created", {"n": 1}, idempotency_key="k")
    again = enqueue_event(conn, tenant, "order.created", {"n": 1}, idempotency_key="k")
    assert again.event_id == first.event_id and not again.created
    with pytest.raises(IdempotencyKeyReused) as caught:
        enqueue_event(conn, tenant, "order.created", {"n": 2}, idempotency_key="k")
    assert caught.value.reused == KeyReused("k", first.event_id)
    assert _count(conn, "events") == 1


def test_a_transaction_sends_one_notify_per_tenant(
    db_url: str,
    conn: psycopg.Connection[Any],
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    other, _ = create_tenant(conn, f"other-{uuid.uuid4().hex[:8]}")
    make_destination("https://example.com/hook")
    make_destination("https://example.com/hook", tenant_id=other)
    with psycopg.connect(direct(db_url), autocommit=True) as listener:  # past any pooler
        listener.execute("LISTEN courier_deliveries")
        # A loop of enqueue_event: PostgreSQL folds the identical NOTIFYs of one
        # transaction into one.
        with psycopg.connect(db_url) as caller, caller.transaction():
            for n in range(20):
                enqueue_event(caller, tenant, "t", {"n": n})
        assert _notifies(listener) == [str(tenant)]
        # A batch: one NOTIFY from the statement; and one per tenant in a transaction.
        with psycopg.connect(db_url) as caller, caller.transaction():
            enqueue_events(caller, tenant, [NewEvent("t", {"n": n}) for n in range(20)])
            enqueue_events(caller, other, [NewEvent("t", {"n": n}) for n in range(20)])
            enqueue_events(caller, tenant, [NewEvent("t", {"n": n}) for n in range(20)])
        assert sorted(_notifies(listener)) == sorted([str(tenant), str(other)])
        # Nothing to deliver wakes nobody.
        with psycopg.connect(db_url) as caller, caller.transaction():
            enqueue_events(
                caller, uuid.UUID(str(create_tenant(conn, "idle")[0])), [NewEvent("t", 1)]
            )
        assert _notifies(listener) == []


STORED_KEYED = 3_000  # events with idempotency keys already stored


def test_a_single_event_keeps_its_cached_plan_beside_stored_keys(
    db_url: str,
    conn: psycopg.Connection[Any],
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    # Planned for arrays of unknown length, the statement assumed ten items and so ten
    # idempotency-key probes; with keyed events stored, that cached plan looked dearer
    # than planning each call, and every single-event enqueue was planned afresh.
    make_destination("https://example.com/hook")
    for start in range(0, STORED_KEYED, 1_000):
        items = [
            NewEvent("order.created", {"n": n}, f"key-{n}") for n in range(start, start + 1_000)
        ]
        enqueue_events(conn, tenant, items)
    conn.execute("ANALYZE")
    with psycopg.connect(direct(db_url), autocommit=True) as caller:  # its own prepared plans
        for n in range(20):
            key = f"new-{n}" if n % 2 else None
            enqueue_event(caller, tenant, "order.created", {"n": n}, idempotency_key=key)
        plans = caller.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE 'WITH input AS%%'"
        ).fetchall()
    assert len(plans) == 1, plans
    generic, custom = plans[0]
    assert generic >= 5 and custom <= 5, plans
