"""Retention: `Cleaner.run_once` deletes old terminal deliveries with their attempts and
lifecycle events, then events with no delivery left; audit records stay.

The service connects to the database directly (`direct_db_url`), as workers and the CLI
run it: its advisory lock belongs to a session, which a transaction pooler would share.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from courier.crypto import SecretBox
from courier.destinations import create_destination
from courier.settings import Settings
from courier.store import retention
from courier.tenancy import create_tenant
from courier.worker.cleaner import CLEANER_LOCK_KEY, Cleaner, CleanerConfig
from courier.worker_setup import cleaner_config
from tests.conftest import DestinationFactory
from tests.integration.operations.conftest import backdate, days, enqueue, finish, now


def _exists(conn: psycopg.Connection[Any], table: str, column: str, value: Any) -> bool:
    sql = {
        ("deliveries", "id"): "SELECT count(*) FROM deliveries WHERE id = %s",
        ("events", "id"): "SELECT count(*) FROM events WHERE id = %s",
        ("delivery_attempts", "delivery_id"): (
            "SELECT count(*) FROM delivery_attempts WHERE delivery_id = %s"
        ),
        ("lifecycle_events", "delivery_id"): (
            "SELECT count(*) FROM lifecycle_events WHERE delivery_id = %s"
        ),
        ("audit_records", "delivery_id"): (
            "SELECT count(*) FROM audit_records WHERE delivery_id = %s"
        ),
    }[(table, column)]
    row = conn.execute(sql, (value,)).fetchone()
    return row is not None and row[0] > 0


def _ended(
    conn: psycopg.Connection[Any], tenant: uuid.UUID, state: str, age_days: float
) -> tuple[uuid.UUID, uuid.UUID]:
    (d,) = enqueue(conn, tenant)
    finish(conn, tenant, d, state)
    backdate(conn, tenant, d, now(conn) - days(age_days))
    row = conn.execute("SELECT event_id FROM deliveries WHERE id = %s", (d,)).fetchone()
    assert row is not None
    return d, row[0]


async def test_the_cleaner_keeps_each_kind_for_its_retention(
    conn: psycopg.Connection[Any],
    direct_db_url: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    make_destination("https://example.com/hook")
    old_delivered, old_event = _ended(conn, tenant, "delivered", 31)
    recent_delivered, _ = _ended(conn, tenant, "delivered", 29)
    dead_60, dead_60_event = _ended(conn, tenant, "dead_lettered", 60)
    dead_91, _ = _ended(conn, tenant, "dead_lettered", 91)
    failed_91, _ = _ended(conn, tenant, "failed", 91)
    conn.execute(
        "INSERT INTO audit_records (tenant_id, actor, action, delivery_id)"
        " VALUES (%s, 'test', 'delivery.dead_lettered', %s)",
        (tenant, dead_91),
    )
    pending = enqueue(conn, tenant)[0]
    assert _exists(conn, "delivery_attempts", "delivery_id", old_delivered)
    assert _exists(conn, "lifecycle_events", "delivery_id", old_delivered)

    run = await Cleaner(direct_db_url).run_once()

    assert run.ran
    assert run.deleted["deliveries"] == 3
    assert run.deleted["attempts"] == 3
    assert run.deleted["lifecycle_events"] == 3  # their delivery.created events
    for gone in (old_delivered, dead_91, failed_91):
        assert not _exists(conn, "deliveries", "id", gone)
        assert not _exists(conn, "delivery_attempts", "delivery_id", gone)
        assert not _exists(conn, "lifecycle_events", "delivery_id", gone)
    assert not _exists(conn, "events", "id", old_event)
    for kept in (recent_delivered, dead_60, pending):
        assert _exists(conn, "deliveries", "id", kept)
    # an old event whose (dead-lettered) delivery is still kept stays too
    assert _exists(conn, "events", "id", dead_60_event)
    assert _exists(conn, "audit_records", "delivery_id", dead_91)
    again = await Cleaner(direct_db_url).run_once()
    assert again.deleted["deliveries"] == 0


async def test_a_replayed_delivery_waits_for_its_replay_to_go_first(
    conn: psycopg.Connection[Any],
    direct_db_url: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    make_destination("https://example.com/hook")
    original, event_id = _ended(conn, tenant, "dead_lettered", 100)
    row = conn.execute(
        "INSERT INTO deliveries (tenant_id, event_id, destination_id, replay_of)"
        " SELECT tenant_id, event_id, destination_id, id FROM deliveries WHERE id = %s"
        " RETURNING id",
        (original,),
    ).fetchone()
    assert row is not None
    replay_id = row[0]
    finish(conn, tenant, replay_id, "delivered")
    backdate(conn, tenant, replay_id, now(conn) - days(10))
    await Cleaner(direct_db_url).run_once()
    assert _exists(conn, "deliveries", "id", original)
    backdate(conn, tenant, replay_id, now(conn) - days(40))
    run = await Cleaner(direct_db_url).run_once()
    assert run.deleted["deliveries"] == 2  # delivered ones go first: the replay, then it
    assert not _exists(conn, "deliveries", "id", original)
    assert not _exists(conn, "events", "id", event_id)


async def test_the_cleaner_works_in_small_batches_and_drops_events_nobody_took(
    conn: psycopg.Connection[Any],
    direct_db_url: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    make_destination("https://example.com/hook", event_types=["order.*"])
    old = [_ended(conn, tenant, "delivered", 45)[0] for _ in range(5)]
    unsent = conn.execute(
        "INSERT INTO events (tenant_id, type, payload, created_at)"
        " VALUES (%s, 'invoice.created', '{}', now() - interval '40 days'),"
        "        (%s, 'invoice.created', '{}', now() - interval '1 day') RETURNING id",
        (tenant, tenant),
    ).fetchall()
    run = await Cleaner(direct_db_url, CleanerConfig(batch_size=2)).run_once()
    assert run.deleted["deliveries"] == 5
    assert run.deleted["events"] == 6
    assert not any(_exists(conn, "deliveries", "id", d) for d in old)
    assert not _exists(conn, "events", "id", unsent[0][0])
    assert _exists(conn, "events", "id", unsent[1][0])


async def test_only_one_cleaner_runs_at_a_time(direct_db_url: str) -> None:
    with psycopg.connect(direct_db_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (CLEANER_LOCK_KEY,))
        assert (await Cleaner(direct_db_url).run_once()).ran is False
        other.execute("SELECT pg_advisory_unlock(%s)", (CLEANER_LOCK_KEY,))
    assert (await Cleaner(direct_db_url).run_once()).ran is True


def test_retention_comes_from_settings() -> None:
    config = cleaner_config(Settings(retention_days=7, dead_letter_retention_days=14))
    assert (config.retention_days, config.dead_letter_retention_days) == (7, 14)
    assert (CleanerConfig().retention_days, CleanerConfig().dead_letter_retention_days) == (30, 90)


async def test_destination_events_are_kept_as_long_as_dead_letters(
    conn: psycopg.Connection[Any],
    direct_db_url: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    row, _ = make_destination("https://example.com/hook")
    for enabled in (False, True, False):
        conn.execute("UPDATE destinations SET enabled = %s WHERE id = %s", (enabled, row["id"]))
    events = conn.execute(
        "SELECT id FROM lifecycle_events WHERE destination_id = %s ORDER BY seq", (row["id"],)
    ).fetchall()
    assert len(events) == 3
    for (event_id,), age in zip(events, (91, 89, 0), strict=True):
        conn.execute(
            "UPDATE lifecycle_events SET occurred_at = now() - make_interval(days => %s)"
            " WHERE id = %s",
            (age, event_id),
        )
    run = await Cleaner(direct_db_url, CleanerConfig(batch_size=1)).run_once()
    assert run.deleted["lifecycle_events"] == 1
    left = conn.execute(
        "SELECT id FROM lifecycle_events WHERE destination_id = %s ORDER BY seq", (row["id"],)
    ).fetchall()
    assert left == events[1:]


async def test_a_pass_visits_only_the_tenants_with_something_to_remove(
    conn: psycopg.Connection[Any],
    direct_db_url: str,
    secret_box: SecretBox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cleaner finds its tenants in one statement (a pass over thousands of tenants
    with nothing to remove must not cost a round trip per tenant per kind of row); the
    statement must still find every kind of row the batched deletes remove."""

    def tenant_with_destination() -> uuid.UUID:
        tenant_id, _ = create_tenant(conn, f"tenant-{uuid.uuid4().hex[:8]}")
        create_destination(conn, secret_box, tenant_id, name="d", url="https://example.com/h")
        return tenant_id

    delivered, dead, unsent, switched, fresh, kept_dead = (
        tenant_with_destination() for _ in range(6)
    )
    _ended(conn, delivered, "delivered", 31)
    _ended(conn, dead, "failed", 91)
    _ended(conn, fresh, "delivered", 29)
    _ended(conn, kept_dead, "dead_lettered", 60)  # dead letters are kept 90 days
    conn.execute(
        "INSERT INTO events (tenant_id, type, payload, created_at)"
        " VALUES (%s, 'invoice.created', '{}', now() - interval '40 days')",
        (unsent,),
    )
    conn.execute("UPDATE destinations SET enabled = false WHERE tenant_id = %s", (switched,))
    conn.execute(
        "UPDATE lifecycle_events SET occurred_at = now() - interval '91 days'"
        " WHERE tenant_id = %s AND delivery_id IS NULL",
        (switched,),
    )
    delivered_before, dead_before = now(conn) - days(30), now(conn) - days(90)
    due = await _tenants_due(direct_db_url, delivered_before, dead_before)
    assert {delivered, dead, unsent, switched} <= due
    assert not {fresh, kept_dead} & due

    visited: set[uuid.UUID] = set()
    delete = retention.delete_deliveries

    async def recorded(cur: Any, *, tenant_id: uuid.UUID, **kw: Any) -> Any:
        visited.add(tenant_id)  # the real statement still runs
        return await delete(cur, tenant_id=tenant_id, **kw)

    monkeypatch.setattr(retention, "delete_deliveries", recorded)
    await Cleaner(direct_db_url).run_once()
    assert {delivered, dead, unsent, switched} <= visited
    assert not {fresh, kept_dead} & visited
    after = await _tenants_due(direct_db_url, delivered_before, dead_before)
    assert not {delivered, dead, unsent, switched} & after  # the pass removed it all


async def _tenants_due(
    url: str, delivered_before: datetime, dead_before: datetime
) -> set[uuid.UUID]:
    async with (
        await psycopg.AsyncConnection.connect(url) as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        return set(
            await retention.tenants_due(
                cur,
                delivered_before=delivered_before,
                dead_before=dead_before,
                events_before=delivered_before,
                destination_events_before=dead_before,
            )
        )
