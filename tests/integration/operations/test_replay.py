"""Replay of one delivery: `courier.replay.replay_delivery` and
`POST /v1/deliveries/{id}/replay`."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from courier import replay
from tests.integration.api.conftest import Tenant, create_destination, send_event
from tests.integration.operations.conftest import delivery, finish
from tests.support.database import direct


async def _terminal(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant: Tenant, state: str
) -> tuple[dict[str, Any], str]:
    dest = await create_destination(client, tenant)
    event = await send_event(client, tenant)
    (d,) = event["deliveries"]
    finish(conn, tenant.id, uuid.UUID(d["id"]), state)
    return dest, d["id"]


@pytest.mark.parametrize("state", ["dead_lettered", "failed", "delivered"])
async def test_replay_makes_a_new_pending_delivery_and_leaves_the_original(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant, state: str
) -> None:
    _, original_id = await _terminal(client, conn, tenant_a, state)
    before = delivery(conn, tenant_a.id, original_id)

    response = await client.post(f"/v1/deliveries/{original_id}/replay", headers=tenant_a.headers)

    assert response.status_code == 201, response.text
    new = response.json()
    assert new["id"] != original_id
    assert new["replay_of"] == original_id
    assert new["state"] == "pending"
    assert new["event_id"] == str(before["event_id"])
    assert new["destination_id"] == str(before["destination_id"])
    assert new["attempt_count"] == 0
    assert delivery(conn, tenant_a.id, original_id) == before  # untouched
    read = await client.get(f"/v1/deliveries/{new['id']}", headers=tenant_a.headers)
    assert read.json()["replay_of"] == original_id


async def test_replay_writes_one_lifecycle_event_and_one_audit_record(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    _, original_id = await _terminal(client, conn, tenant_a, "dead_lettered")
    response = await client.post(f"/v1/deliveries/{original_id}/replay", headers=tenant_a.headers)
    new_id = response.json()["id"]
    with conn.cursor(row_factory=dict_row) as cur:
        events = cur.execute(
            "SELECT * FROM lifecycle_events WHERE type = 'delivery.replayed'"
        ).fetchall()
        audits = cur.execute(
            "SELECT * FROM audit_records WHERE action = 'delivery.replayed'"
        ).fetchall()
    assert len(events) == 1
    assert str(events[0]["delivery_id"]) == new_id
    assert events[0]["state"] == "pending"
    assert events[0]["attempt_number"] == 0
    assert events[0]["data"] == {"replay_of": original_id}
    assert len(audits) == 1
    assert str(audits[0]["delivery_id"]) == original_id
    assert audits[0]["data"]["replay_id"] == new_id
    assert audits[0]["actor"] == f"api_key:{tenant_a.key_id}"
    feed = await client.get("/v1/delivery-events", headers=tenant_a.headers)
    assert "delivery.replayed" in [e["type"] for e in feed.json()["items"]]


@pytest.mark.parametrize("state", ["pending", "delivering", "retry_scheduled"])
async def test_a_delivery_that_is_not_finished_is_refused_with_409(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant, state: str
) -> None:
    await create_destination(client, tenant_a)
    (d,) = (await send_event(client, tenant_a))["deliveries"]
    if state == "delivering":
        finish(conn, tenant_a.id, uuid.UUID(d["id"]), "delivering")
    elif state == "retry_scheduled":
        finish(conn, tenant_a.id, uuid.UUID(d["id"]), "delivering")
        conn.execute(
            "UPDATE deliveries SET state = 'retry_scheduled', locked_by = NULL,"
            " locked_until = NULL, next_attempt_at = now() + interval '1 hour' WHERE id = %s",
            (d["id"],),
        )
    response = await client.post(f"/v1/deliveries/{d['id']}/replay", headers=tenant_a.headers)
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/not-replayable")
    count = conn.execute("SELECT count(*) FROM deliveries").fetchone()
    assert count == (1,)


async def test_an_idempotency_key_makes_a_repeat_answer_the_first_replay(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    _, original_id = await _terminal(client, conn, tenant_a, "dead_lettered")
    headers = {**tenant_a.headers, "Idempotency-Key": "replay-click-1"}
    first = await client.post(f"/v1/deliveries/{original_id}/replay", headers=headers)
    again = await client.post(f"/v1/deliveries/{original_id}/replay", headers=headers)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    replays = conn.execute(
        "SELECT count(*) FROM deliveries WHERE replay_of = %s", (original_id,)
    ).fetchone()
    assert replays == (1,)
    # without a key, each request is a new replay
    other = await client.post(f"/v1/deliveries/{original_id}/replay", headers=tenant_a.headers)
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]


async def test_an_idempotency_key_used_for_another_delivery_is_a_422(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    _, first_id = await _terminal(client, conn, tenant_a, "failed")
    (d,) = (await send_event(client, tenant_a))["deliveries"]
    finish(conn, tenant_a.id, uuid.UUID(d["id"]), "failed")
    headers = {**tenant_a.headers, "Idempotency-Key": "k"}
    assert (
        await client.post(f"/v1/deliveries/{first_id}/replay", headers=headers)
    ).status_code == 201
    response = await client.post(f"/v1/deliveries/{d['id']}/replay", headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_a_replay_to_a_disabled_destination_is_refused(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    dest, original_id = await _terminal(client, conn, tenant_a, "dead_lettered")
    await client.patch(
        f"/v1/destinations/{dest['id']}", json={"enabled": False}, headers=tenant_a.headers
    )
    response = await client.post(f"/v1/deliveries/{original_id}/replay", headers=tenant_a.headers)
    assert response.status_code == 409
    assert response.json()["type"].endswith("/destination-unavailable")


async def test_another_tenants_delivery_answers_404_like_a_missing_one(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant, tenant_b: Tenant
) -> None:
    _, original_id = await _terminal(client, conn, tenant_a, "dead_lettered")
    foreign = await client.post(f"/v1/deliveries/{original_id}/replay", headers=tenant_b.headers)
    missing = await client.post(f"/v1/deliveries/{uuid.uuid4()}/replay", headers=tenant_b.headers)
    assert foreign.status_code == 404
    assert foreign.json() == missing.json()
    count = conn.execute("SELECT count(*) FROM deliveries").fetchone()
    assert count == (1,)


async def test_the_module_runs_inside_the_callers_transaction_and_notifies_on_commit(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], db_url: str, tenant_a: Tenant
) -> None:
    _, original_id = await _terminal(client, conn, tenant_a, "dead_lettered")
    conn.execute("LISTEN courier_deliveries")
    async with await psycopg.AsyncConnection.connect(direct(db_url)) as aconn:
        async with aconn.transaction():
            result = await replay.replay_delivery(
                aconn, tenant_a.id, uuid.UUID(original_id), actor="console:test"
            )
            assert result.created
            assert result.delivery["replay_of"] == uuid.UUID(original_id)
            assert result.delivery["state"] == "pending"
        with pytest.raises(replay.NotFound):
            await replay.replay_delivery(aconn, tenant_a.id, uuid.uuid4(), actor="console:test")
        await aconn.rollback()
    notices = list(conn.notifies(timeout=5, stop_after=1))
    assert [n.payload for n in notices] == [str(tenant_a.id)]
