"""Destination health: `GET /v1/destinations/{id}/health` and the service that disables
destinations that stopped working (`HealthService.run_once`).

The service connects to the database directly (`direct_db_url`), as workers and the CLI
run it: its advisory lock belongs to a session, which a transaction pooler would share.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from courier.settings import Settings
from courier.worker.health import (
    HEALTH_LOCK_KEY,
    REASON_FAILING,
    REASON_GONE,
    HealthConfig,
    HealthService,
)
from tests.conftest import DestinationFactory
from tests.integration.api.conftest import Tenant, create_destination, send_event
from tests.integration.operations.conftest import add_attempt, backdate, days, enqueue, finish, now


async def test_health_counts_failures_since_the_last_success_and_the_hours_ratio(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    dest = await create_destination(client, tenant_a)
    (d,) = (await send_event(client, tenant_a))["deliveries"]
    t0 = now(conn)
    add_attempt(conn, tenant_a.id, d["id"], at=t0 - days(1), outcome="succeeded", http_status=200)
    for minutes in (50, 40, 30):
        at = t0 - days(minutes / 1440)
        add_attempt(conn, tenant_a.id, d["id"], at=at, outcome="retryable_failure", http_status=503)
    path = f"/v1/destinations/{dest['id']}/health"

    health = (await client.get(path, headers=tenant_a.headers)).json()
    assert health["consecutive_failures"] == 3
    assert health["attempts_last_hour"] == 3
    assert health["success_ratio_last_hour"] == 0.0
    assert health["last_success_at"] is not None
    assert health["enabled"] is True and health["disabled_reason"] is None

    add_attempt(conn, tenant_a.id, d["id"], at=t0, outcome="succeeded", http_status=200)
    health = (await client.get(path, headers=tenant_a.headers)).json()
    assert health["consecutive_failures"] == 0
    assert health["success_ratio_last_hour"] == 0.25
    assert health["failing_since"] is None


async def test_health_of_a_destination_without_attempts_and_of_another_tenants(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    dest = await create_destination(client, tenant_a)
    path = f"/v1/destinations/{dest['id']}/health"
    health = (await client.get(path, headers=tenant_a.headers)).json()
    assert health["consecutive_failures"] == 0
    assert health["success_ratio_last_hour"] is None
    assert health["last_attempt_at"] is None
    foreign = await client.get(path, headers=tenant_b.headers)
    missing = await client.get(f"/v1/destinations/{uuid.uuid4()}/health", headers=tenant_b.headers)
    assert foreign.status_code == 404
    assert foreign.json() == missing.json()


def _dest(
    conn: psycopg.Connection[Any], make_destination: DestinationFactory, tenant: uuid.UUID
) -> uuid.UUID:
    """A destination of its own event type, enabled ten days ago, with one delivery."""
    event_type = f"t{uuid.uuid4().hex[:8]}.x"
    row, _ = make_destination("https://example.com/hook", event_types=[event_type])
    conn.execute(
        "UPDATE destinations SET enabled_at = now() - interval '10 days' WHERE id = %s",
        (row["id"],),
    )
    enqueue(conn, tenant, event_type)
    dest_id: uuid.UUID = row["id"]
    return dest_id


def _delivery_of(conn: psycopg.Connection[Any], dest_id: uuid.UUID) -> uuid.UUID:
    row = conn.execute(
        "SELECT id FROM deliveries WHERE destination_id = %s ORDER BY id LIMIT 1", (dest_id,)
    ).fetchone()
    assert row is not None
    delivery_id: uuid.UUID = row[0]
    return delivery_id


def _state(conn: psycopg.Connection[Any], dest_id: uuid.UUID) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM destinations WHERE id = %s", (dest_id,)).fetchone()
    assert row is not None
    return row


async def test_the_health_service_disables_only_destinations_that_stopped_working(
    conn: psycopg.Connection[Any],
    direct_db_url: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    t0 = now(conn)
    fail = {"outcome": "retryable_failure", "http_status": 500}

    # failing for six days, with a dead letter: disabled
    failing = _dest(conn, make_destination, tenant)
    d = _delivery_of(conn, failing)
    finish(conn, tenant, d, "dead_lettered")
    backdate(conn, tenant, d, t0 - days(5.5))
    add_attempt(conn, tenant, d, at=t0 - days(6), **fail)
    add_attempt(conn, tenant, d, at=t0 - days(1 / 24), **fail)

    # failing for six days without a dead letter: kept
    no_dead_letter = _dest(conn, make_destination, tenant)
    d = _delivery_of(conn, no_dead_letter)
    add_attempt(conn, tenant, d, at=t0 - days(6), **fail)
    add_attempt(conn, tenant, d, at=t0 - days(1), **fail)

    # one bad hour after a success, with a dead letter in it: kept
    bad_hour = _dest(conn, make_destination, tenant)
    d = _delivery_of(conn, bad_hour)
    add_attempt(conn, tenant, d, at=t0 - days(7), **fail)
    add_attempt(conn, tenant, d, at=t0 - days(2 / 24), outcome="succeeded", http_status=200)
    for minutes in (55, 40, 20, 5):
        add_attempt(conn, tenant, d, at=t0 - days(minutes / 1440), **fail)
    finish(conn, tenant, d, "dead_lettered")

    # only 410 Gone for two days: disabled
    gone = _dest(conn, make_destination, tenant)
    d = _delivery_of(conn, gone)
    add_attempt(conn, tenant, d, at=t0 - days(3), outcome="succeeded", http_status=200)
    for age in (2, 1, 0.1):
        gone_at = t0 - days(age)
        add_attempt(conn, tenant, d, at=gone_at, outcome="permanent_failure", http_status=410)

    # 410 Gone for two hours only: kept
    gone_briefly = _dest(conn, make_destination, tenant)
    d = _delivery_of(conn, gone_briefly)
    add_attempt(conn, tenant, d, at=t0 - days(1), outcome="succeeded", http_status=200)
    add_attempt(conn, tenant, d, at=t0 - days(2 / 24), outcome="permanent_failure", http_status=410)

    run = await HealthService(direct_db_url).run_once()

    assert run.ran
    assert {(x.destination_id, x.reason) for x in run.disabled} == {
        (failing, REASON_FAILING),
        (gone, REASON_GONE),
    }
    for dest_id in (no_dead_letter, bad_hour, gone_briefly):
        assert _state(conn, dest_id)["enabled"] is True
    off = _state(conn, failing)
    assert off["enabled"] is False
    assert off["disabled_reason"] == REASON_FAILING
    assert off["disabled_at"] is not None
    with conn.cursor(row_factory=dict_row) as cur:
        audits = cur.execute(
            "SELECT * FROM audit_records WHERE action = 'destination.auto_disabled'"
            " ORDER BY destination_id"
        ).fetchall()
    assert {(a["destination_id"], a["reason"], a["actor"]) for a in audits} == {
        (failing, REASON_FAILING, "system:health"),
        (gone, REASON_GONE, "system:health"),
    }
    # each one turned off is a destination.disabled lifecycle event saying why
    switched = conn.execute(
        "SELECT destination_id, data->>'reason' FROM lifecycle_events"
        " WHERE type = 'destination.disabled'"
    ).fetchall()
    assert sorted(switched) == sorted([(failing, REASON_FAILING), (gone, REASON_GONE)])

    # a second run changes nothing; re-enabling starts a new judgement
    assert (await HealthService(direct_db_url).run_once()).disabled == []
    conn.execute(
        "UPDATE destinations SET enabled = true, enabled_at = now(), disabled_at = NULL"
        " WHERE id = %s",
        (failing,),
    )
    assert (await HealthService(direct_db_url).run_once()).disabled == []
    assert _state(conn, failing)["enabled"] is True


async def test_shorter_thresholds_come_from_the_config(
    conn: psycopg.Connection[Any],
    direct_db_url: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    dest = _dest(conn, make_destination, tenant)
    d = _delivery_of(conn, dest)
    t0 = now(conn)
    add_attempt(conn, tenant, d, at=t0 - days(3 / 24), outcome="permanent_failure", http_status=410)
    assert (await HealthService(direct_db_url).run_once()).disabled == []
    config = HealthConfig(gone_confirm_seconds=3600)
    run = await HealthService(direct_db_url, config).run_once()
    assert [x.destination_id for x in run.disabled] == [dest]


async def test_only_one_health_run_at_a_time(
    conn: psycopg.Connection[Any], direct_db_url: str
) -> None:
    with psycopg.connect(direct_db_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (HEALTH_LOCK_KEY,))
        assert (await HealthService(direct_db_url).run_once()).ran is False
        other.execute("SELECT pg_advisory_unlock(%s)", (HEALTH_LOCK_KEY,))
    assert (await HealthService(direct_db_url).run_once()).ran is True


def test_health_config_reads_settings() -> None:
    settings = Settings(auto_disable_after_seconds=60, gone_confirm_seconds=30)
    assert HealthConfig.from_settings(settings) == HealthConfig(60, 30)
    assert HealthConfig() == HealthConfig(5 * 86_400, 86_400)
