"""Forward-only migrations from `db/postgres/NNN_name.sql`.

Applied in order under a session-level advisory lock (tried until taken), each in its
own transaction, and recorded in `courier_migrations` with a SHA-256 checksum. An
applied file whose content changed is refused. Concurrent runs serialise on the lock:
the first applies, the others find nothing left to do.

A file whose first line is `-- courier: no-transaction` runs outside a transaction,
one statement at a time (still under the lock): `CREATE INDEX CONCURRENTLY` cannot run
in one. Such a file must be safe to run again after failing part-way, since what ran
before the failure stays: write `CREATE INDEX CONCURRENTLY IF NOT EXISTS`, and put each
index in its own file. A concurrent build that fails leaves an INVALID index behind,
which `IF NOT EXISTS` would then keep; before building, the file's indexes that
PostgreSQL marks invalid are dropped, so a rerun builds them again (docs/operations.md).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import sql

from courier.errors import CourierError
from courier.store.queries import query

MIGRATION_LOCK_KEY = 7_240_314_159  # pg_advisory_xact_lock key owned by courier migrations
_FILE_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
LOCK_POLL_S = 0.2  # between tries of the migration lock
NO_TRANSACTION = "-- courier: no-transaction"  # a file's first line, to run outside one


class MigrationError(CourierError, RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:03d}_{self.name}"

    @property
    def transactional(self) -> bool:
        first = self.sql.lstrip("\ufeff").split("\n", 1)[0].strip()
        return first.lower() != NO_TRANSACTION

    def statements(self) -> list[str]:
        """The file's statements, one by one (for a file run outside a transaction)."""
        import sqlparse

        return [
            s for s in sqlparse.split(self.sql) if sqlparse.format(s, strip_comments=True).strip()
        ]


def migrations_dir() -> Path:
    """The migrations folder: COURIER_MIGRATIONS_DIR, the installed wheel's copy, or the repo's."""
    override = os.environ.get("COURIER_MIGRATIONS_DIR")
    if override:
        return Path(override)
    packaged = Path(str(resources.files("courier"))) / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "db" / "postgres"


def load_migrations(folder: Path | None = None) -> list[Migration]:
    folder = folder or migrations_dir()
    if not folder.is_dir():
        raise MigrationError(f"migrations folder not found: {folder}")
    found: list[Migration] = []
    for path in sorted(folder.iterdir()):
        match = _FILE_NAME.match(path.name)
        if not match:
            continue
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text("utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a number in {folder}")
    return found


def _applied(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    rows = conn.execute(query("migrations_applied")).fetchall()
    return {int(v): (str(n), str(c)) for v, n, c in rows}


def _check_unchanged(applied: dict[int, tuple[str, str]], migrations: list[Migration]) -> None:
    for m in migrations:
        if m.version in applied and applied[m.version][1] != m.checksum:
            raise MigrationError(
                f"migration {m.version:03d}_{m.name}.sql was changed after it was applied "
                "(checksum mismatch); migrations are forward-only: add a new file instead"
            )


def migrate(
    url: str,
    folder: Path | None = None,
    on_start: Callable[[str], None] | None = None,
    on_applied: Callable[[str, float], None] | None = None,
) -> list[str]:
    """Apply pending migrations; returns the names applied by this call.

    `on_start(name)` and `on_applied(name, seconds)` are called around each file, for
    progress lines.
    """
    migrations = load_migrations(folder)
    done: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        # A session lock for the whole run: concurrent runs wait, then find nothing to do.
        # It ends with the connection, so a crashed run cannot leave it held.
        _lock(conn)
        conn.execute(query("migration_ledger"))
        applied = _applied(conn)
        _check_unchanged(applied, migrations)
        for m in migrations:
            if m.version in applied:
                continue
            if on_start is not None:
                on_start(m.label)
            started = time.monotonic()
            try:
                if m.transactional:
                    with conn.transaction():
                        conn.execute(m.sql.encode("utf-8"))  # a file may hold many statements
                        _record(conn, m)
                else:
                    _apply_outside_transaction(conn, m)
            except psycopg.OperationalError:
                raise  # the connection, not the file: the caller names the database
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise MigrationError(f"migration {m.label}.sql failed: {first}") from exc
            done.append(m.label)
            if on_applied is not None:
                on_applied(m.label, time.monotonic() - started)
        conn.execute(query("migration_unlock"), {"key": MIGRATION_LOCK_KEY})
    return done


def _lock(conn: psycopg.Connection) -> None:
    """Take the migration lock, polling: waiting inside pg_advisory_lock would hold a
    snapshot that the holder's CREATE INDEX CONCURRENTLY waits for (a deadlock)."""
    while True:
        row = conn.execute(query("migration_lock"), {"key": MIGRATION_LOCK_KEY}).fetchone()
        if row is not None and row[0]:
            return
        time.sleep(LOCK_POLL_S)


def _record(conn: psycopg.Connection, m: Migration) -> None:
    conn.execute(
        query("migration_record"),
        {"version": m.version, "name": m.name, "checksum": m.checksum},
    )


_INDEX_NAME = re.compile(
    r"\bINDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?(\"[^\"]+\"|[A-Za-z_][\w$]*)", re.I
)


def concurrent_indexes(sql: str) -> list[str]:
    """Names of the indexes a file builds CONCURRENTLY (to drop if a build left them invalid)."""
    return [name.strip('"') for name in _INDEX_NAME.findall(sql)]


def _apply_outside_transaction(conn: psycopg.Connection, m: Migration) -> None:
    # An earlier failed CONCURRENTLY build leaves an INVALID index that IF NOT EXISTS
    # would keep; drop it so this run builds it again.
    for name in concurrent_indexes(m.sql):
        row = conn.execute(query("migration_invalid_index"), {"name": name}).fetchone()
        if row is not None:
            drop = sql.SQL(query("migration_drop_invalid_index"))
            conn.execute(drop.format(index=sql.Identifier(*row)))
    for statement in m.statements():
        conn.execute(statement.encode("utf-8"))
    _record(conn, m)


def pending(url: str, folder: Path | None = None) -> list[str]:
    """Migrations not yet applied (readiness checks use this)."""
    migrations = load_migrations(folder)
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute(query("migration_ledger_exists")).fetchone()
        applied = _applied(conn) if exists and exists[0] else {}
    _check_unchanged(applied, migrations)
    return [m.label for m in migrations if m.version not in applied]
