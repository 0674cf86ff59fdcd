"""`courier maintenance run-once`: one pass of the health service, the history
partitions and the cleaner."""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

import psycopg
from click.testing import CliRunner

from courier.cli import main
from tests.conftest import DestinationFactory
from tests.integration.operations.conftest import backdate, days, enqueue, finish, now


def test_maintenance_run_once_runs_both_services(
    conn: psycopg.Connection[Any],
    db_url: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    make_destination("https://example.com/hook")
    (d,) = enqueue(conn, tenant)
    finish(conn, tenant, d, "delivered")
    backdate(conn, tenant, d, now(conn) - days(31))
    before = _history_partitions(conn)

    result = CliRunner().invoke(
        main, ["maintenance", "run-once"], env={"COURIER_DATABASE_URL": db_url}
    )

    assert result.exit_code == 0, result.output
    assert "health: checked 1 destination(s), disabled 0" in result.output
    # the days of history a week ahead that the migration did not make: 3 a table when
    # the suite runs on the migration's UTC day, one more a table for each day since
    made = _history_partitions(conn) - before
    assert len(made) >= 6
    assert f"partitions: created {len(made)}: delivery_attempts_p" in result.output
    week = [now(conn).astimezone(UTC).date() + days(n) for n in range(2, 8)]
    for table in ("delivery_attempts", "lifecycle_events"):
        assert {f"{table}_p{day:%Y%m%d}" for day in week} <= _history_partitions(conn)
    assert "cleaner: deleted 1 deliveries" in result.output
    assert conn.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)


def _history_partitions(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent IN ('delivery_attempts'::regclass, 'lifecycle_events'::regclass)"
    ).fetchall()
    return {r[0] for r in rows}
