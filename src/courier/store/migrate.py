"""Forward-only migrations from `db/postgres/NNN_name.sql`.

Applied in order under a session-level advisory lock, each in its own transaction,
and recorded in `courier_migrations` with a SHA-256 checksum. An applied file whose
content changed is refused. Concurrent runs serialise on the lock: the first applies,
the others find nothing left to do.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg

from courier.store.queries import query

MIGRATION_LOCK_KEY = 7_240_314_159  # pg_advisory_xact_lock key owned by courier migrations
_FILE_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


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


def migrate(url: str, folder: Path | None = None) -> list[str]:
    """Apply pending migrations; returns the names applied by this call."""
    migrations = load_migrations(folder)
    done: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        # A session lock for the whole run: concurrent runs wait, then find nothing to do.
        # It ends with the connection, so a crashed run cannot leave it held.
        conn.execute(query("migration_lock"), {"key": MIGRATION_LOCK_KEY})
        conn.execute(query("migration_ledger"))
        applied = _applied(conn)
        _check_unchanged(applied, migrations)
        for m in migrations:
            if m.version in applied:
                continue
            with conn.transaction():
                conn.execute(m.sql.encode("utf-8"))  # a file may hold many statements
                conn.execute(
                    query("migration_record"),
                    {"version": m.version, "name": m.name, "checksum": m.checksum},
                )
            done.append(f"{m.version:03d}_{m.name}")
        conn.execute(query("migration_unlock"), {"key": MIGRATION_LOCK_KEY})
    return done


def pending(url: str, folder: Path | None = None) -> list[str]:
    """Migrations not yet applied (readiness checks use this)."""
    migrations = load_migrations(folder)
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute(query("migration_ledger_exists")).fetchone()
        applied = _applied(conn) if exists and exists[0] else {}
    _check_unchanged(applied, migrations)
    return [f"{m.version:03d}_{m.name}" for m in migrations if m.version not in applied]
