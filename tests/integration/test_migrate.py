"""Migrations: ordered, recorded with checksums, refused when changed, safe to race."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from courier.store.migrate import MigrationError, load_migrations, migrate, migrations_dir, pending
from tests.support.database import create_database, drop_database


@pytest.fixture
def empty_db(pg_server: tuple[str, Any]) -> Any:
    url, _ = pg_server
    name = f"courier_m_{uuid.uuid4().hex[:10]}"
    yield create_database(url, name)
    drop_database(url, name)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "courier", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_three_concurrent_migrate_runs_end_in_one_schema(empty_db: str) -> None:
    env = {"COURIER_DATABASE_URL": empty_db}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "courier", "migrate"],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    applied_counts = sorted(out.split()[1] for out, _ in outputs)
    # exactly one run applied everything; the other two found nothing to do
    assert applied_counts == ["0", "0", str(len(load_migrations()))]
    import psycopg

    with psycopg.connect(empty_db) as conn:
        rows = conn.execute("SELECT version FROM courier_migrations ORDER BY 1").fetchall()
        assert [r[0] for r in rows] == [m.version for m in load_migrations()]
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(%s)",
            (["tenants", "deliveries", "delivery_attempts", "lifecycle_events"],),
        ).fetchone()
        assert tables == (4,)
    assert pending(empty_db) == []


def test_rerun_is_a_no_op(empty_db: str) -> None:
    assert migrate(empty_db) != []
    assert migrate(empty_db) == []


def test_changed_applied_migration_is_refused(empty_db: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), folder)
    migrate(empty_db, folder)
    first = sorted(folder.glob("001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(empty_db, folder)
    result = _cli(
        {"COURIER_DATABASE_URL": empty_db, "COURIER_MIGRATIONS_DIR": str(folder)}, "migrate"
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "changed after it was applied" in result.stderr


def test_unreachable_database_is_one_clear_line() -> None:
    result = _cli({"COURIER_DATABASE_URL": "postgresql://nobody:pw@127.0.0.1:1/none"}, "migrate")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "database" in result.stderr and "Traceback" not in result.stderr
    assert "pw" not in result.stderr  # the password never shows
