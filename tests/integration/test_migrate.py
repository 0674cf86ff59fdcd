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
def empty_db(pg_direct: str) -> Any:
    """An empty database, reached past any pooler, as migrations always are."""
    name = f"courier_m_{uuid.uuid4().hex[:10]}"
    yield create_database(pg_direct, name)
    drop_database(pg_direct, name)


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
    applied_counts = sorted(out.splitlines()[-1].split()[1] for out, _ in outputs)
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


def _embedded_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COURIER_DATABASE_URL"}
    return {**env, "COURIER_DATA_DIR": str(data_dir)}


@pytest.mark.parametrize("round_", [1, 2])  # the race was lost one time in three or so
def test_three_concurrent_migrate_runs_share_one_new_embedded_server(
    tmp_path: Path, round_: int
) -> None:
    """Commands started together on an empty data dir take turns starting the server."""
    env = _embedded_env(tmp_path / f"data{round_}")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "courier", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    applied_counts = sorted(out.strip().splitlines()[-1].split()[1] for out, _ in outputs)
    assert applied_counts == ["0", "0", str(len(load_migrations()))]
    # the last one out stopped the server: a fourth run starts it again and finds no work
    again = subprocess.run(
        [sys.executable, "-m", "courier", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again
    assert again.stdout.strip().splitlines()[-1].startswith("applied 0"), again


def test_migrate_reports_each_file_as_it_applies(empty_db: str) -> None:
    result = _cli({"COURIER_DATABASE_URL": empty_db}, "migrate")
    assert result.returncode == 0, result.stderr
    labels = [f"{m.version:03d}_{m.name}" for m in load_migrations()]
    *progress, summary = result.stdout.strip().splitlines()
    assert [line.split()[1] for line in progress] == [x for label in labels for x in (label,) * 2]
    assert all(
        line == f"applying {label} ..." for line, label in zip(progress[::2], labels, strict=True)
    )
    assert all(line.startswith("applied ") and line.endswith(" s") for line in progress[1::2])
    assert summary.startswith(f"applied {len(labels)} migration(s): ")
    assert result.stderr == ""


NO_TX_INDEX = """-- courier: no-transaction
-- CREATE INDEX CONCURRENTLY cannot run inside a transaction block.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS probe_v_key ON probe (v);
"""


def _index_valid(url: str, name: str) -> bool | None:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = %s",
            (name,),
        ).fetchone()
    return None if row is None else bool(row[0])


def test_a_no_transaction_migration_builds_an_index_concurrently(
    empty_db: str, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), folder)
    (folder / "900_probe.sql").write_text("CREATE TABLE probe (v int);\n")
    (folder / "901_probe_index.sql").write_text(NO_TX_INDEX)
    applied = migrate(empty_db, folder)
    assert applied[-2:] == ["900_probe", "901_probe_index"]
    assert _index_valid(empty_db, "probe_v_key") is True
    assert migrate(empty_db, folder) == []


def test_a_failed_concurrent_build_is_one_line_and_a_rerun_rebuilds_the_invalid_index(
    empty_db: str, tmp_path: Path
) -> None:
    import psycopg

    folder = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), folder)
    (folder / "900_probe.sql").write_text("CREATE TABLE probe (v int);\n")
    migrate(empty_db, folder)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("INSERT INTO probe VALUES (1), (1)")  # the unique build will fail
    (folder / "901_probe_index.sql").write_text(NO_TX_INDEX)
    env = {"COURIER_DATABASE_URL": empty_db, "COURIER_MIGRATIONS_DIR": str(folder)}

    failed = _cli(env, "migrate")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.count("\n") == 1
    assert failed.stderr.startswith(
        "courier: migration 901_probe_index.sql failed: could not create unique index"
    )
    assert _index_valid(empty_db, "probe_v_key") is False  # what PostgreSQL leaves behind
    assert "901_probe_index" in pending(empty_db, folder)

    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("DELETE FROM probe")
    rerun = _cli(env, "migrate")
    assert rerun.returncode == 0, rerun.stderr
    assert _index_valid(empty_db, "probe_v_key") is True  # dropped and built again
    assert pending(empty_db, folder) == []
