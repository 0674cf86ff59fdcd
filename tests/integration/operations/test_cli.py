"""`courier maintenance run-once`: one pass of the health service, the history
partitions and the cleaner."""

from __future__ import annotations

import uuid
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

    result = CliRunner().invoke(
        main, ["maintenance", "run-once"], env={"COURIER_DATABASE_URL": db_url}
    )

    assert result.exit_code == 0, result.output
    assert "health: checked 1 destination(s), disabled 0" in result.output
    # the days of history a week ahead that the migration did not make
    assert "partitions: created 6: delivery_attempts_p" in result.output
    assert "cleaner: deleted 1 deliveries" in result.output
    assert conn.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)
