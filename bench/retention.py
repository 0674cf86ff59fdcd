"""Retention by dropping a day of history vs deleting it, and the conversion's lock.

    python -m bench.retention [--rows 10000000] [--days 10] [--migration-rows 2000000]

In one fresh database:

1. The conversion (migrations 023 and 024) of a `lifecycle_events` table that already
   holds `--migration-rows` rows, statement by statement, while a writer inserts a
   lifecycle event every 2 ms: how long each statement took, and the longest a write
   waited during it (what the ACCESS EXCLUSIVE step costs the delivery engine).
2. `--rows` lifecycle events spread over `--days` day partitions (generate_series, one
   million rows a statement); then one day is removed with DELETE (committed) and
   another day of the same size with DROP TABLE of its partition: the time and the WAL
   of each.

Uses COURIER_DATABASE_URL's server, else an embedded one; the database is dropped at
the end. Other load on the server slows both sides: the figures are one run's.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from bench import pg
from courier.store.migrate import load_migrations, migrate, migrations_dir

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--migration-rows", type=int, default=2_000_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="courier-bench-retention-"))
    for path in sorted(migrations_dir().glob("*.sql")):
        if int(path.name[:3]) < 23:
            shutil.copy(path, folder / path.name)
    with pg.server() as server:
        name, url = pg.create_database(server, "retention")
        try:
            _run(url, folder, args)
        finally:
            pg.drop_database(server, name)
            shutil.rmtree(folder, ignore_errors=True)


def _run(url: str, folder: Path, args: argparse.Namespace) -> None:
    migrate(url, folder)
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
