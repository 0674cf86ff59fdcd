"""History in day partitions: made ahead by the maintenance pass, dropped whole by the
cleaner's retention, never in the way of an insert; and the migration that converts a
populated installation keeps every row readable."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from courier.enqueue import enqueue_event
from courier.store.migrate import load_migrations, migrate, migrations_dir
from courier.worker.cleaner import Cleaner
from courier.worker.partitions import HistoryPartitions
from tests.conftest import DestinationFactory
from tests.integration.operations.conftest import enqueue, finish
from tests.support.database import create_database, drop_database


def _partitions(conn: psycopg.Connection[Any], parent: str) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass ORDER BY 1",
        (parent,),
    ).fetchall()
    return [r[0] for r in rows]


def _today(conn: psycopg.Connection[Any]) -> date:
    row = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def _where(conn: psycopg.Connection[Any], table: str, column: str, value: Any) -> list[str]:
    """The partitions holding the rows of `table` whose `column` is `value`."""
    rows = conn.execute(
        sql.SQL("SELECT tableoid::regclass::text FROM {} WHERE {} = %s").format(
            sql.Identifier(table), sql.Identifier(column)
        ),
        (value,),
    ).fetchall()
    return [r[0] for r in rows]


async def test_the_maintenance_pass_makes_days_ahead_once(
    conn: psycopg.Connection[Any], direct_db_url: str
) -> None:
    far = _today(conn) + timedelta(days=9)
    assert f"delivery_attempts_p{far:%Y%m%d}" not in _partitions(conn, "delivery_attempts")
    run = await HistoryPartitions(direct_db_url, days_ahead=9).run_once()
    assert run.ran
    assert f"delivery_attempts_p{far:%Y%m%d}" in run.created
    assert f"lifecycle_events_p{far:%Y%m%d}" in _partitions(conn, "lifecycle_events")
    # the new day carries the table's storage settings (half-empty pages for attempts)
    row = conn.execute(
        "SELECT reloptions FROM pg_class WHERE relname = %s", (f"delivery_attempts_p{far:%Y%m%d}",)
    ).fetchone()
    assert row is not None and "fillfactor=50" in row[0]
    again = await HistoryPartitions(direct_db_url, days_ahead=9).run_once()
    assert again.created == []


async def test_rows_far_from_any_day_are_written_and_taken_over_by_their_day_later(
    conn: psycopg.Connection[Any], tenant: uuid.UUID, make_destination: DestinationFactory
) -> None:
    make_destination("https://example.com/hook")
    (delivery,) = enqueue(conn, tenant)
    far = _today(conn) + timedelta(days=400)
    # a delivery id of a day that has no partition (as a clock far ahead would make)
    future = conn.execute(
        "INSERT INTO deliveries (tenant_id, id, event_id, destination_id)"
        " SELECT tenant_id, courier_uuid7_floor(%s::date + interval '1 hour'), event_id,"
        " destination_id FROM deliveries WHERE id = %s RETURNING id",
        (far, delivery),
    ).fetchone()
    assert future is not None
    conn.execute(
        "INSERT INTO delivery_attempts (tenant_id, delivery_id, event_id, attempt_number,"
        " worker_id) SELECT tenant_id, id, event_id, 1, 'test' FROM deliveries WHERE id = %s",
        (future[0],),
    )
    # lifecycle events of a moment with no partition, far ahead and far back
    for moment in ("%s::date", "%s::date - 800"):
        conn.execute(
            "INSERT INTO lifecycle_events (tenant_id, type, delivery_id, event_id,"
            " destination_id, state, occurred_at) SELECT tenant_id, 'delivery.created', id,"
            " event_id, destination_id, state, " + moment + " FROM deliveries WHERE id = %s",
            (far, delivery),
        )
    assert _where(conn, "delivery_attempts", "delivery_id", future[0]) == [
        "delivery_attempts_default"
    ]
    # far ahead: the default partition; far back: the first partition (from -infinity)
    assert sorted(_where(conn, "lifecycle_events", "delivery_id", delivery)) == [
        "lifecycle_events_before",
        "lifecycle_events_before",
        "lifecycle_events_default",
    ]
    # the day's partition, made later, takes its rows out of the default partition
    made = conn.execute(
        "SELECT courier_create_history_partition('delivery_attempts', %s)", (far,)
    ).fetchone()
    assert made == (True,)
    assert _where(conn, "delivery_attempts", "delivery_id", future[0]) == [
        f"delivery_attempts_p{far:%Y%m%d}"
    ]


def _day_of_history(
    conn: psycopg.Connection[Any], tenant: uuid.UUID, day: date, state: str, event: uuid.UUID
) -> uuid.UUID:
    """A delivery made on `day` (its id in that day's range), moved to `state` with one
    attempt and a lifecycle event of that day, and ended on that day."""
    ids = conn.execute(
        "SELECT overlay(courier_uuid7_floor(%s::date + interval '2 hours')::text"
        " PLACING substr(gen_random_uuid()::text, 14) FROM 14)::uuid",
        (day,),
    ).fetchone()
    assert ids is not None
    delivery_id: uuid.UUID = ids[0]
    conn.execute(
        "INSERT INTO deliveries (tenant_id, id, event_id, destination_id)"
        " SELECT tenant_id, %s, id, (SELECT id FROM destinations WHERE tenant_id = %s LIMIT 1)"
        " FROM events WHERE id = %s",
        (delivery_id, tenant, event),
    )
    if state != "pending":
        finish(conn, tenant, delivery_id, state)
        conn.execute(
            "UPDATE deliveries SET updated_at = %s::date + interval '3 hours' WHERE id = %s",
            (day, delivery_id),
        )
    conn.execute(
        "INSERT INTO lifecycle_events (tenant_id, type, delivery_id, event_id, destination_id,"
        " state, occurred_at) SELECT tenant_id, 'delivery.created', id, event_id,"
        " destination_id, 'pending', %s::date + interval '2 hours' FROM deliveries WHERE id = %s",
        (day, delivery_id),
    )
    return delivery_id


async def test_retention_drops_a_day_whole_and_keeps_what_is_still_needed(
    conn: psycopg.Connection[Any],
    direct_db_url: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    """A day of attempts 40 days old goes whole (retention 30 days), after its dead
    letter's and its still-pending delivery's attempts moved to the default partition; a
    day of lifecycle events goes once it is older than the longer retention (90 days)."""
    make_destination("https://example.com/hook")
    (recent,) = enqueue(conn, tenant)
    event = conn.execute("SELECT event_id FROM deliveries WHERE id = %s", (recent,)).fetchone()
    assert event is not None
    # This database's history starts before the conversion: make it start 100 days ago,
    # one partition per day, as an installation converted long ago has.
    conn.execute("DROP TABLE delivery_attempts_before, lifecycle_events_before")
    today = _today(conn)
    old, older = today - timedelta(days=40), today - timedelta(days=100)
    for n in range(101):
        for parent in ("delivery_attempts", "lifecycle_events"):
            conn.execute(
                "SELECT courier_create_history_partition(%s, %s)",
                (parent, today - timedelta(days=n)),
            )
    delivered = [_day_of_history(conn, tenant, old, "delivered", event[0]) for _ in range(3)]
    dead = _day_of_history(conn, tenant, old, "dead_lettered", event[0])
    waiting = _day_of_history(conn, tenant, old, "pending", event[0])
    conn.execute(
        "INSERT INTO delivery_attempts (tenant_id, delivery_id, event_id, attempt_number,"
        " worker_id) SELECT tenant_id, id, event_id, 1, 'test' FROM deliveries WHERE id = %s",
        (waiting,),
    )
    ancient = _day_of_history(conn, tenant, older, "delivered", event[0])
    assert _where(conn, "delivery_attempts", "delivery_id", dead) == [
        f"delivery_attempts_p{old:%Y%m%d}"
    ]

    run = await Cleaner(direct_db_url).run_once()

    assert run.ran
    attempts = _partitions(conn, "delivery_attempts")
    lifecycle = _partitions(conn, "lifecycle_events")
    assert f"delivery_attempts_p{old:%Y%m%d}" in run.dropped
    assert f"delivery_attempts_p{old:%Y%m%d}" not in attempts
    assert f"delivery_attempts_p{older:%Y%m%d}" not in attempts
    assert f"delivery_attempts_p{(today - timedelta(days=29)):%Y%m%d}" in attempts
    # lifecycle events: 40 days old stay (the longer retention is 90), 100 days go
    assert f"lifecycle_events_p{old:%Y%m%d}" in lifecycle
    assert f"lifecycle_events_p{older:%Y%m%d}" not in lifecycle
    assert _where(conn, "lifecycle_events", "delivery_id", ancient) == []
    assert len(_where(conn, "lifecycle_events", "delivery_id", delivered[0])) == 1
    # the delivered deliveries went (the row pass, after their day), with no attempt left
    for gone in [*delivered, ancient]:
        assert _where(conn, "deliveries", "id", gone) == []
        assert _where(conn, "delivery_attempts", "delivery_id", gone) == []
    # the dead letter (kept 90 days) and the waiting delivery keep their attempts
    assert run.kept_attempts == 2
    for kept in (dead, waiting):
        assert _where(conn, "deliveries", "id", kept) == ["deliveries"]
        assert _where(conn, "delivery_attempts", "delivery_id", kept) == [
            "delivery_attempts_default"
        ]
    assert _where(conn, "deliveries", "id", recent) == ["deliveries"]
    # nothing left to drop: a second pass finds the same partitions
    again = await Cleaner(direct_db_url).run_once()
    assert again.dropped == []
    assert _partitions(conn, "delivery_attempts") == attempts


@pytest.fixture
def pre_partition_db(pg_direct: str, tmp_path: Path) -> Any:
    """A database with every migration applied but the two of history partitions, as an
    installation that upgrades into them has (the others do not depend on them, and the
    runner applies whatever its ledger lacks)."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for path in sorted(migrations_dir().glob("*.sql")):
        if int(path.name[:3]) not in (23, 24):
            shutil.copy(path, folder / path.name)
    name = f"courier_p_{uuid.uuid4().hex[:10]}"
    url = create_database(pg_direct, name)
    migrate(url, folder)
    yield url
    drop_database(pg_direct, name)


def test_the_migration_converts_a_populated_installation(pre_partition_db: str) -> None:
    with psycopg.connect(pre_partition_db, autocommit=True) as conn:
        tenant = conn.execute("INSERT INTO tenants (name) VALUES ('t') RETURNING id").fetchone()
        assert tenant is not None
        conn.execute(
            "INSERT INTO destinations (tenant_id, name, url) VALUES (%s, 'd', 'https://e.com')",
            (tenant[0],),
        )
        before = [enqueue_event(conn, tenant[0], "order.created", {"n": n}) for n in range(20)]
        conn.execute(
            "INSERT INTO delivery_attempts (tenant_id, delivery_id, event_id, attempt_number,"
            " worker_id) SELECT tenant_id, id, event_id, 1, 'w' FROM deliveries"
        )
        conn.execute("UPDATE destinations SET enabled = false")  # a destination event
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM delivery_attempts),"
            " (SELECT count(*) FROM lifecycle_events), (SELECT max(seq) FROM lifecycle_events)"
        ).fetchone()
        assert counts is not None and counts[:2] == (20, 21)
        feed_before = _feed(pre_partition_db, tenant[0])

        applied = migrate(pre_partition_db)

        assert applied == ["023_history_partition_functions", "024_history_partitions"]
        assert conn.execute(
            "SELECT relkind FROM pg_class WHERE relname = 'delivery_attempts'"
        ).fetchone() == ("p",)
        delivery = before[0].deliveries[0].id
        assert _where(conn, "delivery_attempts", "delivery_id", delivery) == [
            "delivery_attempts_before"
        ]
        assert conn.execute(
            "SELECT count(*) FROM delivery_attempts WHERE tenant_id = %s", (tenant[0],)
        ).fetchone() == (20,)
        # the feed reads the same rows in the same order, and goes on after them
        assert _feed(pre_partition_db, tenant[0]) == feed_before
        conn.execute("UPDATE destinations SET enabled = true")
        after = enqueue_event(conn, tenant[0], "order.created", {"n": "after"})
        feed_after = _feed(pre_partition_db, tenant[0])
        assert feed_after[: len(feed_before)] == feed_before
        assert [e[4] for e in feed_after[len(feed_before) :]] == [None, after.deliveries[0].id]
        assert feed_after[-1][1] > counts[2]
        # a delivery made now has its attempts in a day of their own (or the first
        # partition, for the two days it still covers): the table takes them either way
        conn.execute(
            "INSERT INTO delivery_attempts (tenant_id, delivery_id, event_id, attempt_number,"
            " worker_id) VALUES (%s, %s, %s, 1, 'w')",
            (tenant[0], after.deliveries[0].id, after.event_id),
        )
        # running it again finds nothing to do
        assert migrate(pre_partition_db) == []


def _feed(url: str, tenant: uuid.UUID) -> list[tuple[Any, ...]]:
    """The tenant's lifecycle events in feed order (txid, seq), as the feed reads them
    (without its wait for older transactions, which other tests' sessions would make
    this test depend on: tests/integration/observability/test_feed.py holds that)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT txid::text, seq, id, type, delivery_id FROM lifecycle_events"
            " WHERE tenant_id = %s ORDER BY txid, seq",
            (tenant,),
        ).fetchall()


def test_a_day_of_uuid7_ids_is_the_range_its_partition_bounds_name(
    conn: psycopg.Connection[Any],
) -> None:
    """courier_uuid7_floor(t) sorts at or below every id made from t on and above every id
    made before it, and courier_uuid7_time reads the moment back: over 5,000 random
    moments from 1971 to 2200, and for the ids courier_uuid7() makes now."""
    row = conn.execute(
        "WITH t AS (SELECT date_trunc('milliseconds', timestamptz '1971-01-01' + random()"
        "                  * (timestamptz '2200-01-01' - timestamptz '1971-01-01')) AS at"
        "             FROM generate_series(1, 5000))"
        " SELECT count(*) FILTER (WHERE courier_uuid7_time(courier_uuid7_floor(at)) <> at),"
        "        count(*) FILTER (WHERE courier_uuid7_floor(at)"
        "                                >= courier_uuid7_floor(at + interval '1 millisecond')),"
        "        count(*) FILTER (WHERE courier_uuid7_floor(at - interval '1 microsecond')"
        "                                > courier_uuid7_floor(at))"
        "   FROM t"
    ).fetchone()
    assert row == (0, 0, 0)
    bounds = conn.execute(
        "SELECT b.lower_bound::uuid <= id AND id < b.upper_bound::uuid,"
        "       abs(extract(epoch FROM courier_uuid7_time(id) - clock_timestamp())) < 5"
        "  FROM (SELECT courier_uuid7() AS id) AS i,"
        "       courier_history_day_bounds('delivery_attempts',"
        "                                  (clock_timestamp() AT TIME ZONE 'UTC')::date) AS b"
    ).fetchone()
    assert bounds == (True, True)


def test_the_conversion_runs_again_after_stopping_half_way(pre_partition_db: str) -> None:
    """024 runs outside a transaction: a run that stopped after its checks and index (a
    lock not had in time, a lost connection) leaves them, and the next run finishes."""
    (conversion,) = [m for m in load_migrations() if m.version == 24]
    with psycopg.connect(pre_partition_db, autocommit=True) as conn:
        conn.execute(next(m for m in load_migrations() if m.version == 23).sql.encode("utf-8"))
        for statement in conversion.statements()[:3]:
            conn.execute(statement.encode("utf-8"))
        assert conn.execute(
            "SELECT relkind FROM pg_class WHERE relname = 'lifecycle_events'"
        ).fetchone() == ("r",)
        # 023 is not recorded: the runner's own ledger decides what runs next
        conn.execute(
            "DROP FUNCTION courier_create_history_partition, courier_history_day_bounds,"
            " courier_uuid7_floor, courier_uuid7_time"
        )
    assert migrate(pre_partition_db) == [
        "023_history_partition_functions",
        "024_history_partitions",
    ]
    with psycopg.connect(pre_partition_db, autocommit=True) as conn:
        assert conn.execute(
            "SELECT relkind FROM pg_class WHERE relname = 'lifecycle_events'"
        ).fetchone() == ("p",)


LOCKED_DAY = 12  # days ahead: past the days the migration makes


async def test_making_a_day_gives_way_to_the_engine_instead_of_closing_a_lock_cycle(
    conn: psycopg.Connection[Any],
    direct_db_url: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    # A new day of attempts locks delivery_attempts, then `deliveries` (its foreign key);
    # a completion locks them the other way round. Waiting without a limit, the pass
    # closed a cycle that PostgreSQL broke only after deadlock_timeout (1 s), by aborting
    # either side: the engine stalled for a second and could lose a statement.
    make_destination("https://example.com/hook")
    (delivery,) = enqueue(conn, tenant)
    day = _today(conn) + timedelta(days=LOCKED_DAY)
    await HistoryPartitions(direct_db_url, days_ahead=LOCKED_DAY - 1).run_once()
    for parent in ("delivery_attempts", "lifecycle_events"):  # should the day exist (empty)
        conn.execute(
            sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(f"{parent}_p{day:%Y%m%d}"))
        )
    async with await psycopg.AsyncConnection.connect(direct_db_url) as engine:
        # the completion's order: its delivery first ...
        await engine.execute(
            "UPDATE deliveries SET updated_at = updated_at WHERE tenant_id = %s AND id = %s",
            (tenant, delivery),
        )
        making = asyncio.create_task(
            HistoryPartitions(direct_db_url, days_ahead=LOCKED_DAY).run_once()
        )
        for _ in range(1000):  # 10 s at most
            if _waiting_for_deliveries(conn):
                break
            await asyncio.sleep(0.01)
        assert _waiting_for_deliveries(conn), "the pass never waited for the engine"
        started = time.monotonic()
        # ... then its attempts, while the pass holds delivery_attempts
        await engine.execute(
            "UPDATE delivery_attempts SET outcome = outcome"
            " WHERE tenant_id = %s AND delivery_id = %s",
            (tenant, delivery),
        )
        waited = time.monotonic() - started
        await engine.commit()
    run = await making
    assert waited < 0.9, f"the engine waited {waited:.2f} s behind the pass"
    assert f"delivery_attempts_p{day:%Y%m%d}" in run.created  # on a later try


def _waiting_for_deliveries(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'deliveries'::regclass"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()
    return row is not None and row[0] > 0
