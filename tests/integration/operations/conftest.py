"""Operations tests: deliveries put into a chosen state, attempts with chosen times.

Rows are moved through the states the schema's state machine allows (pending →
delivering → terminal), and their timestamps are then set back in time, so retention,
health and recovery can be tested without waiting.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from courier.enqueue import enqueue_event

# API fixtures (client, tenant_a, tenant_b, make_tenant) come from the API tests.
from tests.integration.api.conftest import client, make_tenant, tenant_a, tenant_b

__all__ = ["client", "make_tenant", "tenant_a", "tenant_b"]

_REASON = {"failed": "http_4xx", "dead_lettered": "max_attempts_exhausted"}


def enqueue(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, event_type: str = "order.created"
) -> list[uuid.UUID]:
    """An event through the engine's own enqueue; returns its deliveries' ids."""
    result = enqueue_event(conn, tenant_id, event_type, {"n": 1})
    return [d.id for d in result.deliveries]


def finish(
    conn: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    delivery_id: uuid.UUID,
    state: str,
    *,
    ended: datetime | None = None,
    reason: str | None = None,
    http_status: int = 500,
) -> None:
    """Move a pending delivery to `state` (with one attempt, unless it is refused)."""
    params: dict[str, Any] = {
        "t": tenant_id,
        "d": delivery_id,
        "reason": reason or _REASON.get(state),
        "status": 200 if state == "delivered" else http_status,
    }
    if state in ("delivering", "delivered", "dead_lettered") or (
        state == "failed" and reason != "destination_disabled"
    ):
        conn.execute(
            "UPDATE deliveries SET state = 'delivering', locked_by = 'test',"
            " locked_until = now() + interval '1 minute',"
            " attempt_count = (SELECT coalesce(max(attempt_number), 0) + 1"
            " FROM delivery_attempts a WHERE a.tenant_id = %(t)s AND a.delivery_id = %(d)s)"
            " WHERE tenant_id = %(t)s AND id = %(d)s",
            params,
        )
        conn.execute(
            "INSERT INTO delivery_attempts (tenant_id, delivery_id, event_id, attempt_number,"
            " worker_id) SELECT tenant_id, id, event_id, attempt_count, 'test' FROM deliveries"
            " WHERE tenant_id = %(t)s AND id = %(d)s",
            params,
        )
    if state == "delivering":
        return
    if state == "retry_scheduled":
        return
    outcome = {"delivered": "succeeded", "failed": "permanent_failure"}.get(
        state, "retryable_failure"
    )
    params["outcome"] = outcome
    if state != "failed" or reason != "destination_disabled":
        conn.execute(
            "UPDATE delivery_attempts SET outcome = %(outcome)s, finished_at = now(),"
            " http_status = %(status)s WHERE tenant_id = %(t)s AND delivery_id = %(d)s"
            " AND outcome IS NULL",
            params,
        )
    conn.execute(
        "UPDATE deliveries SET state = %(state)s, locked_by = NULL, locked_until = NULL,"
        " updated_at = now(),"
        " next_attempt_at = NULL, failure_reason = CASE WHEN %(state)s = 'failed'"
        " THEN %(reason)s END, dead_letter_reason = CASE WHEN %(state)s = 'dead_lettered'"
        " THEN %(reason)s END, delivered_at = CASE WHEN %(state)s = 'delivered' THEN now() END,"
        " dead_lettered_at = CASE WHEN %(state)s = 'dead_lettered' THEN now() END"
        " WHERE tenant_id = %(t)s AND id = %(d)s",
        {**params, "state": state},
    )
    if ended is not None:
        backdate(conn, tenant_id, delivery_id, ended)


def backdate(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, delivery_id: uuid.UUID, at: datetime
) -> None:
    """Set a terminal delivery's times (and its event's and attempts') back to `at`."""
    params = {"t": tenant_id, "d": delivery_id, "at": at}
    conn.execute(
        "UPDATE deliveries SET created_at = %(at)s, updated_at = %(at)s,"
        " delivered_at = CASE WHEN delivered_at IS NOT NULL THEN %(at)s END,"
        " dead_lettered_at = CASE WHEN dead_lettered_at IS NOT NULL THEN %(at)s END"
        " WHERE tenant_id = %(t)s AND id = %(d)s",
        params,
    )
    conn.execute(
        "UPDATE events SET created_at = %(at)s WHERE tenant_id = %(t)s AND id ="
        " (SELECT event_id FROM deliveries WHERE tenant_id = %(t)s AND id = %(d)s)",
        params,
    )
    conn.execute(
        "UPDATE delivery_attempts SET started_at = %(at)s, finished_at = CASE WHEN"
        " finished_at IS NOT NULL THEN %(at)s END WHERE tenant_id = %(t)s AND delivery_id = %(d)s",
        params,
    )


def add_attempt(
    conn: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    delivery_id: uuid.UUID,
    *,
    at: datetime,
    outcome: str,
    http_status: int | None,
) -> None:
    """A finished attempt at `at` (evidence for health; the delivery's state is untouched)."""
    conn.execute(
        "INSERT INTO delivery_attempts (tenant_id, delivery_id, event_id, attempt_number,"
        " worker_id, started_at, finished_at, outcome, http_status, retryable)"
        " SELECT tenant_id, id, event_id,"
        "  (SELECT coalesce(max(attempt_number), 0) + 1 FROM delivery_attempts a"
        "    WHERE a.tenant_id = d.tenant_id AND a.delivery_id = d.id),"
        "  'test', %(at)s, %(at)s + interval '1 second', %(outcome)s, %(status)s,"
        "  %(outcome)s = 'retryable_failure'"
        " FROM deliveries d WHERE tenant_id = %(t)s AND id = %(d)s",
        {"t": tenant_id, "d": delivery_id, "at": at, "outcome": outcome, "status": http_status},
    )


def delivery(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, delivery_id: Any
) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT * FROM deliveries WHERE tenant_id = %s AND id = %s", (tenant_id, delivery_id)
        ).fetchone()
    assert row is not None
    return row


def now(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def days(n: float) -> timedelta:
    return timedelta(days=n)
