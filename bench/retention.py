"""Retention by dropping a day of history vs deleting it, and the conversion's lock.

    python -m bench.retention [--rows 10000000] [--days 10] [--migration-rows 2000000]
    python -m bench.retention --only deliveries [--deliveries 10000000] [--delivery-days 10]

`--only` picks scenarios (repeatable; default: conversion and lifecycle). In one fresh
database:

1. The conversion (migrations 023 and 024) of a `lifecycle_events` table that already
   holds `--migration-rows` rows, statement by statement, while a writer inserts a
   lifecycle event every 2 ms: how long each statement took, and the longest a write
   waited during it (what the ACCESS EXCLUSIVE step costs the delivery engine).
2. `--rows` lifecycle events spread over `--days` day partitions (generate_series, one
   million rows a statement); then one day is removed with DELETE (committed) and
   another day of the same size with DROP TABLE of its partition: the time and the WAL
   of each.

`deliveries`, in a database of its own (every migration applied): `--deliveries`
delivered deliveries evenly over `--delivery-days` day partitions, each with its event,
one attempt and its two lifecycle events, over 10 tenants of 10 destinations. Then one
day is removed all by the cleaner's batched DELETEs (what retention costs without
partitions), and the next day as courier does it: its attempts and lifecycle partitions
dropped, then its deliveries and events deleted in batches. Time, WAL and rows of each.

Uses COURIER_DATABASE_URL's server, else an embedded one; the database is dropped at
the end. Other load on the server slows both sides: the figures are one run's.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from bench import pg
from courier.store import history, retention
from courier.store.migrate import load_migrations, migrate, migrations_dir

T = TypeVar("T")
CHUNK = 1_000_000  # rows per INSERT … SELECT generate_series
PROBE_INTERVAL_S = 0.002

# Lifecycle events of one tenant's destination, `n` rows at once, evenly in time; their
# delivery ids are time-ordered, as courier's uuid7 ids are.
_FILL = """
INSERT INTO lifecycle_events (tenant_id, type, delivery_id, event_id, destination_id,
                              state, occurred_at)
SELECT %(tenant)s, 'delivery.created', id, id, %(destination)s, 'pending', at
  FROM generate_series(0, %(n)s - 1) AS g,
       LATERAL (SELECT %(start)s::timestamptz + (g + %(done)s) * %(step)s::interval AS at) AS t,
       LATERAL (SELECT (lpad(to_hex(floor(extract(epoch FROM at) * 1000)::bigint), 12, '0')
                        || '7000' || substr(md5(g::text), 1, 16))::uuid AS id) AS i
"""
_PROBE = """
INSERT INTO lifecycle_events (tenant_id, type, delivery_id, event_id, destination_id, state)
VALUES (%(tenant)s, 'delivery.created', gen_random_uuid(), gen_random_uuid(),
        %(destination)s, 'pending')
"""


class Probe(threading.Thread):
    """Writes one lifecycle event every PROBE_INTERVAL_S; records each write's latency."""

    def __init__(self, url: str, ids: dict[str, object]) -> None:
        super().__init__(daemon=True)
        self.url, self.ids = url, ids
        self.samples: list[tuple[float, float]] = []  # (started, seconds)
        self.halt = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.halt.is_set():
                started = time.monotonic()
                conn.execute(_PROBE, self.ids)
                self.samples.append((started, time.monotonic() - started))
                time.sleep(PROBE_INTERVAL_S)

    def worst(self, since: float, until: float) -> float:
        waits = [s for t, s in self.samples if t + s >= since and t <= until]
        return max(waits, default=0.0)


def _fill(
    conn: psycopg.Connection, ids: dict[str, object], start: str, rows: int, days: int
) -> None:
    """`rows` lifecycle events evenly over `days` days from `start` (UTC)."""
    step = f"{days * 86_400 / rows:.6f} seconds"
    done = 0
    while done < rows:
        n = min(CHUNK, rows - done)
        conn.execute(
            _FILL, {**ids, "start": f"{start} 00:00:00+00", "n": n, "done": done, "step": step}
        )
        done += n


def _wal(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    return int(row[0])


def _timed(conn: psycopg.Connection, statement: str) -> tuple[float, int]:
    before = _wal(conn)
    started = time.monotonic()
    conn.execute(statement.encode("utf-8"))
    return time.monotonic() - started, _wal(conn) - before


SCENARIOS = ("conversion", "lifecycle", "deliveries")
TENANTS, DESTINATIONS = 10, 10  # destinations per tenant
BATCH = 1_000  # the cleaner's batch_size

# Row `i` of the deliveries scenario: when it was made, its tenant and destination
# (round robin, so every chunk spreads over all of them) and its ids, uuid7-shaped from
# its time as _FILL's, so that a day's deliveries fall in that day's attempts partition.
# It is delivered half a step later, so never past its day's end.
_SERIES = """
  FROM generate_series(%(done)s::bigint, %(done)s::bigint + %(n)s - 1) AS i,
       LATERAL (SELECT %(start)s::timestamptz + (i / %(per_day)s) * interval '1 day'
                       + (mod(i, %(per_day)s) * 86400000000 / %(per_day)s)
                         * interval '1 microsecond' AS at) AS t,
       LATERAL (SELECT lpad(to_hex(floor(extract(epoch FROM at) * 1000)::bigint), 12, '0')
                       || '7000' AS ms,
                       mod(i, %(pairs)s)::int AS k) AS h,
       LATERAL (SELECT (%(tenants)s::uuid[])[1 + k / %(per_tenant)s] AS tenant_id,
                       (%(destinations)s::uuid[])[1 + k] AS destination_id,
                       (ms || substr(md5('d' || i), 1, 16))::uuid AS delivery_id,
                       (ms || substr(md5('e' || i), 1, 16))::uuid AS event_id,
                       at + %(half)s::interval AS done_at) AS r
"""
# The rows as courier's enqueue, claim and completion leave a delivered delivery
# (src/courier/store/sql/deliveries.sql); the event's payload as bench/payloads.py's.
_FILL_DELIVERIES = (
    """
INSERT INTO events (tenant_id, id, type, payload, created_at)
SELECT tenant_id, event_id, 'order.created',
       json_build_object('id', event_id, 'type', 'order.created',
                         'data', json_build_object('order', i, 'amount', 1999 + mod(i, 1000),
                                                   'currency', 'EUR',
                                                   'customer', 'cus_' || lpad(i::text, 10, '0'),
                                                   'items', 1 + mod(i, 5))),
       at""",
    """
INSERT INTO deliveries (tenant_id, id, event_id, destination_id, state, attempt_count,
                        next_attempt_at, last_http_status, line_position, created_at,
                        updated_at, delivered_at)
SELECT tenant_id, delivery_id, event_id, destination_id, 'delivered', 1, NULL, 200, 0, at,
       done_at, done_at""",
    """
INSERT INTO delivery_attempts (tenant_id, id, delivery_id, event_id, destination_id,
                               attempt_number, worker_id, started_at, finished_at,
                               duration_ms, http_status, retryable, outcome)
SELECT tenant_id, (ms || substr(md5('a' || i), 1, 16))::uuid, delivery_id, event_id,
       destination_id, 1, 'bench-worker', at, done_at, %(half_ms)s, 200, false, 'succeeded'""",
    """
INSERT INTO lifecycle_events (tenant_id, id, type, delivery_id, event_id, destination_id,
                              state, attempt_number, occurred_at, data)
SELECT tenant_id, l.id, l.type, delivery_id, event_id, destination_id, l.state,
       l.attempt_number, l.occurred_at, l.data::jsonb""",
)
_TWO_A_DELIVERY = """,
       LATERAL (VALUES ((ms || substr(md5('c' || i), 1, 16))::uuid, 'delivery.created',
                        'pending', 0, at, '{}'),
                       ((ms || substr(md5('l' || i), 1, 16))::uuid, 'delivery.delivered',
                        'delivered', 1, done_at, '{"outcome": "succeeded", "http_status": 200}'))
               AS l(id, type, state, attempt_number, occurred_at, data)
"""
_FILL_STATEMENTS = tuple(
    (insert + _SERIES + (_TWO_A_DELIVERY if "lifecycle_events" in insert else "")).encode()
    for insert in _FILL_DELIVERIES
)
# One scan a table: its rows of the two measured days, and all of them.
_CENSUS = {
    "deliveries": "id",
    "events": "id",
    "delivery_attempts": "delivery_id",
    "lifecycle_events": "occurred_at",
}


@dataclass(frozen=True, slots=True)
class Day:
    starts: datetime
    ends: datetime
    lower_key: uuid.UUID  # its deliveries', events' and attempts' ids
    upper_key: uuid.UUID

    def bounds(self, table: str) -> tuple[object, object]:
        if _CENSUS[table] == "occurred_at":
            return self.starts, self.ends
        return self.lower_key, self.upper_key


def _day(first: date, offset: int) -> Day:
    starts = datetime.combine(first + timedelta(days=offset), datetime.min.time()).replace(
        tzinfo=UTC
    )
    ends = starts + timedelta(days=1)
    return Day(starts, ends, _key(starts), _key(ends))


def _key(at: datetime) -> uuid.UUID:
    """The lowest uuid7 of the millisecond `at`, as the partitions' bounds are."""
    return uuid.UUID(f"{int(at.timestamp() * 1000):012x}" + "0" * 20)


def _census(conn: psycopg.Connection, days: tuple[Day, Day]) -> dict[str, tuple[int, int, int]]:
    """Per table: rows of the first day, of the second, and in all."""
    counts: dict[str, tuple[int, int, int]] = {}
    for table, column in _CENSUS.items():
        cast = "timestamptz" if column == "occurred_at" else "uuid"
        within = f"{column} >= %s::{cast} AND {column} < %s::{cast}"
        row = conn.execute(
            f"SELECT count(*) FILTER (WHERE {within}), count(*) FILTER (WHERE {within}),"
            f" count(*) FROM {table}",
            (*days[0].bounds(table), *days[1].bounds(table)),
        ).fetchone()
        assert row is not None
        counts[table] = (int(row[0]), int(row[1]), int(row[2]))
    return counts


def _fill_deliveries(conn: psycopg.Connection, params: dict[str, Any], rows: int) -> None:
    # Per-row foreign-key checks (triggers) are skipped while filling: the rows are
    # consistent by construction, and the checks would only slow the fill.
    conn.execute("SET session_replication_role = replica")
    done = 0
    while done < rows:
        n = min(CHUNK, rows - done)
        for statement in _FILL_STATEMENTS:
            conn.execute(statement, {**params, "n": n, "done": done})
        done += n
    conn.execute("SET session_replication_role = DEFAULT")


async def _batched(
    url: str,
    tenants: list[uuid.UUID],
    before: datetime,
    lifecycle_before: datetime | None,
    cap: int,
    deadline: float,
) -> dict[str, int]:
    """The cleaner's row-by-row retention of delivered deliveries that ended before
    `before`, then of their events: per tenant, BATCH rows a statement, each statement
    its own transaction, until a batch comes back short (at most `cap` batches)."""
    removed = dict.fromkeys(("deliveries", "attempts", "lifecycle_events", "events"), 0)
    async with (
        await psycopg.AsyncConnection.connect(url, autocommit=True) as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        for tenant in tenants:
            for _ in range(cap):
                gone = await retention.delete_deliveries(
                    cur,
                    tenant_id=tenant,
                    states=["delivered"],
                    before=before,
                    lifecycle_before=lifecycle_before,
                    batch=BATCH,
                )
                removed["deliveries"] += gone.deliveries
                removed["attempts"] += gone.attempts
                removed["lifecycle_events"] += gone.lifecycle_events
                if gone.deliveries < BATCH or time.monotonic() > deadline:
                    break
            for _ in range(cap):
                events = await retention.delete_events(cur, tenant, before, BATCH)
                removed["events"] += events
                if events < BATCH or time.monotonic() > deadline:
                    break
    return removed


async def _drop_day(url: str, day: Day) -> tuple[int, list[tuple[str, float, int]]]:
    """Drop the day's attempts and lifecycle partitions as the cleaner does; returns the
    attempts kept (none: every delivery of the day ended before its end) and each
    partition's seconds and WAL bytes."""
    async with (
        await psycopg.AsyncConnection.connect(url, autocommit=True) as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        names = {f"{table}_p{day.starts:%Y%m%d}" for table in history.HISTORY_TABLES}
        parts = [p for p in await history.partitions(cur) if p.name in names]
        assert len(parts) == 2, parts
        kept, each = 0, []
        for part in parts:
            wal, started = await _wal_async(cur), time.monotonic()
            if part.parent == "delivery_attempts":
                kept += await history.drop_attempts_partition(cur, part, day.ends, day.ends)
            else:
                await history.drop_lifecycle_partition(cur, part)
            each.append((part.name, time.monotonic() - started, await _wal_async(cur) - wal))
        return kept, each


async def _wal_async(cur: psycopg.AsyncCursor[dict[str, Any]]) -> int:
    await cur.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn AS lsn")
    row = await cur.fetchone()
    assert row is not None
    return int(row["lsn"])


def _measured(conn: psycopg.Connection, work: Callable[[], T]) -> tuple[T, float, int]:
    """Run `work` after a checkpoint; returns its result, seconds and WAL bytes."""
    conn.execute("CHECKPOINT")
    before = _wal(conn)
    started = time.monotonic()
    result = work()
    return result, time.monotonic() - started, _wal(conn) - before


def _deliveries(url: str, args: argparse.Namespace) -> None:
    migrate(url, migrations_dir())
    rows, days = args.deliveries, args.delivery_days
    deadline = time.monotonic() + args.deadline_minutes * 60
    with psycopg.connect(url, autocommit=True) as conn:
        tenants: list[uuid.UUID] = []
        destinations: list[uuid.UUID] = []
        for t in range(TENANTS):
            row = conn.execute(
                "INSERT INTO tenants (name) VALUES (%s) RETURNING id", (f"bench-{t}",)
            ).fetchone()
            assert row is not None
            tenants.append(row[0])
            for d in range(DESTINATIONS):
                row = conn.execute(
                    "INSERT INTO destinations (tenant_id, name, url)"
                    " VALUES (%s, %s, 'https://e.invalid') RETURNING id",
                    (tenants[-1], f"d{d}"),
                ).fetchone()
                assert row is not None
                destinations.append(row[0])
        row = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date + 10").fetchone()
        assert row is not None
        first_day: date = row[0]
        for table in history.HISTORY_TABLES:
            for n in range(days):
                conn.execute(
                    "SELECT courier_create_history_partition(%s, %s::date + %s)",
                    (table, first_day, n),
                )
        per_day = rows // days
        params: dict[str, Any] = {
            "start": f"{first_day} 00:00:00+00",
            "per_day": per_day,
            "half": f"{43_200_000_000 // per_day} microseconds",
            "half_ms": 43_200_000 // per_day,
            "pairs": TENANTS * DESTINATIONS,
            "per_tenant": DESTINATIONS,
            "tenants": tenants,
            "destinations": destinations,
        }
        started = time.monotonic()
        _fill_deliveries(conn, params, rows)
        filled = time.monotonic() - started
        conn.execute("VACUUM ANALYZE")
        print(
            f"deliveries: {rows:,} delivered deliveries over {days} days ({TENANTS} tenants x "
            f"{DESTINATIONS} destinations), each with its event, one attempt and 2 lifecycle "
            f"events, stored in {filled:.1f} s (VACUUM ANALYZE "
            f"{time.monotonic() - started - filled:.1f} s)"
        )
        for table in _CENSUS:
            size = conn.execute(
                "SELECT coalesce((SELECT sum(pg_total_relation_size(relid))"
                " FROM pg_partition_tree(%s::regclass)), pg_total_relation_size(%s::regclass))",
                (table, table),
            ).fetchone()
            assert size is not None
            print(f"  {table:<18} {int(size[0]) / 1e9:6.2f} GB with its indexes")

        measured = (_day(first_day, 0), _day(first_day, 1))
        census = _census(conn, measured)
        cap = rows // days // BATCH + 2  # batches a tenant may need for a day, and then some

        # a. one day all by DELETE: lifecycle events too (lifecycle_before None)
        a = measured[0]
        removed, a_s, a_wal = _measured(
            conn,
            lambda: asyncio.run(_batched(url, tenants, a.ends, None, cap, deadline)),
        )
        after_a = _census(conn, measured)
        _check(census, after_a, 0, {**removed, "delivery_attempts": removed["attempts"]})
        print(f"  a. one day all by DELETE, batches of {BATCH:,} per tenant:")
        print(
            f"     {a_s:.1f} s, {a_wal / 1e6:,.1f} MB of WAL; rows: {_rows(removed)}"
            " (and as many dead rows for vacuum)"
        )

        # b. the next day as courier removes it: the history partitions dropped whole,
        # then the deliveries and events in batches, lifecycle events below the next
        # remaining day's partition only, as the cleaner's floor makes it
        b = measured[1]
        (kept, each), drop_s, drop_wal = _measured(conn, lambda: asyncio.run(_drop_day(url, b)))
        assert kept == 0, kept
        removed, rows_s, rows_wal = _measured(
            conn,
            lambda: asyncio.run(_batched(url, tenants, b.ends, b.ends, cap, deadline)),
        )
        after_b = _census(conn, measured)
        dropped = {t: after_a[t][1] for t in history.HISTORY_TABLES}
        _check(after_a, after_b, 1, {**removed, **dropped})
        assert removed["attempts"] == removed["lifecycle_events"] == 0, removed
        print("  b. the next day as courier removes it:")
        print(
            f"     DROP of its attempts and lifecycle partitions ({_rows(dropped)}):"
            f" {drop_s * 1000:.1f} ms, {drop_wal / 1e3:,.1f} kB of WAL"
        )
        for name, seconds, wal in each:
            # the attempts' drop first reads the day's deliveries for attempts to keep
            print(f"       {name}: {seconds * 1000:.1f} ms, {wal / 1e3:,.1f} kB of WAL")
        print(
            f"     then deliveries and events by DELETE ({_rows(removed)}): {rows_s:.1f} s,"
            f" {rows_wal / 1e6:,.1f} MB of WAL"
        )
        print(
            "  c. the floor were deliveries and events day partitions too: the DROPs of b"
            f" alone ({drop_s * 1000:.1f} ms); not measured, as deliveries and events are"
            " not partitioned and are still deleted row by row"
        )


def _check(
    before: dict[str, tuple[int, int, int]],
    after: dict[str, tuple[int, int, int]],
    day: int,
    removed: dict[str, int],
) -> None:
    """Exactly the day's rows went: none of it is left, nothing else changed."""
    for table, (first, second, total) in before.items():
        gone = (first, second)[day]
        assert after[table][day] == 0, (table, after[table])
        assert after[table][1 - day] == (first, second)[1 - day], (table, after[table])
        assert after[table][2] == total - gone, (table, after[table], total, gone)
        assert removed[table] == gone, (table, removed, gone)


def _rows(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {table}" for table, n in counts.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--migration-rows", type=int, default=2_000_000)
    parser.add_argument("--deliveries", type=int, default=10_000_000)
    parser.add_argument("--delivery-days", type=int, default=10)
    parser.add_argument("--deadline-minutes", type=float, default=90.0)
    parser.add_argument("--only", action="append", choices=SCENARIOS)
    args = parser.parse_args()
    only: list[str] = args.only or ["conversion", "lifecycle"]
    if args.deliveries % args.delivery_days:
        parser.error("--deliveries must be a multiple of --delivery-days: days of one size")
    with pg.server() as server:
        if "conversion" in only or "lifecycle" in only:
            name, url = pg.create_database(server, "retention")
            folder = Path(tempfile.mkdtemp(prefix="courier-bench-retention-"))
            try:
                _run(url, folder, args, only)
            finally:
                pg.drop_database(server, name)
                shutil.rmtree(folder, ignore_errors=True)
        if "deliveries" in only:
            name, url = pg.create_database(server, "retention")
            try:
                _deliveries(url, args)
            finally:
                pg.drop_database(server, name)


def _run(url: str, folder: Path, args: argparse.Namespace, only: list[str]) -> None:
    if "conversion" in only:
        for path in sorted(migrations_dir().glob("*.sql")):
            if int(path.name[:3]) < 23:
                shutil.copy(path, folder / path.name)
        migrate(url, folder)
    else:
        migrate(url, migrations_dir())
    with psycopg.connect(url, autocommit=True) as conn:
        tenant = conn.execute("INSERT INTO tenants (name) VALUES ('bench') RETURNING id").fetchone()
        assert tenant is not None
        destination = conn.execute(
            "INSERT INTO destinations (tenant_id, name, url) VALUES (%s, 'd', 'https://e.invalid')"
            " RETURNING id",
            (tenant[0],),
        ).fetchone()
        assert destination is not None
        ids: dict[str, object] = {"tenant": tenant[0], "destination": destination[0]}

        if "conversion" in only:
            _conversion(conn, url, ids, args)
        if "lifecycle" in only:
            _lifecycle(conn, ids, args)


def _conversion(
    conn: psycopg.Connection, url: str, ids: dict[str, object], args: argparse.Namespace
) -> None:
    # 1. the conversion of a populated table, with a writer going on
    started = time.monotonic()
    _fill(conn, ids, "2026-01-01", args.migration_rows, 30)
    conn.execute("VACUUM ANALYZE lifecycle_events")
    print(
        f"conversion: {args.migration_rows:,} lifecycle events stored "
        f"in {time.monotonic() - started:.1f} s"
    )
    probe = Probe(url, ids)
    probe.start()
    time.sleep(0.5)
    for m in load_migrations():
        if m.version < 23:
            continue
        statements = m.statements() if not m.transactional else [m.sql]
        for statement in statements:
            since = time.monotonic()
            seconds, _ = _timed(conn, statement)
            first = next(
                line
                for line in statement.splitlines()
                if line.strip() and not line.startswith("--")
            )
            worst = probe.worst(since, time.monotonic()) * 1000
            print(
                f"  {m.label} {first.strip()[:60]:<60} {seconds * 1000:9.1f} ms;"
                f" longest write meanwhile {worst:7.1f} ms"
            )
    probe.halt.set()
    probe.join()
    typical = statistics.median(s for _, s in probe.samples) * 1000
    print(f"  writes during the conversion: {len(probe.samples):,}, median {typical:.1f} ms")


def _lifecycle(conn: psycopg.Connection, ids: dict[str, object], args: argparse.Namespace) -> None:
    # 2. a day dropped vs a day deleted
    row = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date + 10").fetchone()
    assert row is not None
    first_day = row[0]
    for n in range(args.days):
        conn.execute(
            "SELECT courier_create_history_partition('lifecycle_events', %s::date + %s)",
            (first_day, n),
        )
    started = time.monotonic()
    _fill(conn, ids, str(first_day), args.rows, args.days)
    conn.execute("VACUUM ANALYZE lifecycle_events")
    print(
        f"retention: {args.rows:,} lifecycle events in {args.days} day partitions, stored "
        f"in {time.monotonic() - started:.1f} s"
    )
    conn.execute("CHECKPOINT")
    deleted_day, dropped_day = first_day, first_day.fromordinal(first_day.toordinal() + 1)
    count = conn.execute(
        "SELECT count(*) FROM lifecycle_events WHERE occurred_at >= %s::date"
        " AND occurred_at < %s::date + 1",
        (deleted_day, deleted_day),
    ).fetchone()
    dropped_count = conn.execute(
        f"SELECT count(*) FROM lifecycle_events_p{dropped_day:%Y%m%d}"
    ).fetchone()
    assert count is not None and dropped_count is not None
    delete_s, delete_wal = _timed(
        conn,
        f"DELETE FROM lifecycle_events WHERE occurred_at >= '{deleted_day}'"
        f" AND occurred_at < '{deleted_day}'::date + 1",
    )
    conn.execute("CHECKPOINT")
    drop_s, drop_wal = _timed(conn, f"DROP TABLE lifecycle_events_p{dropped_day:%Y%m%d}")
    print(
        f"  DELETE of one day ({count[0]:,} rows): {delete_s:.2f} s, "
        f"{delete_wal / 1e6:,.1f} MB of WAL (and the dead rows still to vacuum)"
    )
    print(
        f"  DROP of one day's partition ({dropped_count[0]:,} rows): {drop_s * 1000:.1f} ms, "
        f"{drop_wal / 1e3:,.1f} kB of WAL"
    )


if __name__ == "__main__":
    main()
