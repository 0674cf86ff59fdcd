"""Outage recovery: the PATCH that re-enables a destination tells what it missed, and
`POST /v1/destinations/{id}/recover` delivers it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from tests.integration.api.conftest import Tenant, create_destination, send_event
from tests.integration.operations.conftest import finish


async def _outage(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant: Tenant
) -> dict[str, Any]:
    """A destination for order.*, disabled; one matching event and one other event while
    off, and one earlier delivery that failed as destination_disabled."""
    dest = await create_destination(client, tenant, event_types=["order.*"])
    (before,) = (await send_event(client, tenant, "order.created"))["deliveries"]
    delivered = (await send_event(client, tenant, "order.paid"))["deliveries"][0]
    finish(conn, tenant.id, uuid.UUID(delivered["id"]), "delivered")
    off = await client.patch(
        f"/v1/destinations/{dest['id']}", json={"enabled": False}, headers=tenant.headers
    )
    assert off.status_code == 200 and off.json()["recovery"] is None
    finish(conn, tenant.id, uuid.UUID(before["id"]), "failed", reason="destination_disabled")
    missed = await send_event(client, tenant, "order.updated")
    assert missed["deliveries"] == []
    unrelated = await send_event(client, tenant, "invoice.created")
    return {
        "dest": dest,
        "refused": before["id"],
        "missed_event": missed["id"],
        "unrelated_event": unrelated["id"],
    }


async def test_enabling_a_destination_again_tells_what_it_missed(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    o = await _outage(client, conn, tenant_a)
    disabled_at = conn.execute(
        "SELECT disabled_at FROM destinations WHERE id = %s", (o["dest"]["id"],)
    ).fetchone()
    assert disabled_at is not None and disabled_at[0] is not None
    on = await client.patch(
        f"/v1/destinations/{o['dest']['id']}", json={"enabled": True}, headers=tenant_a.headers
    )
    assert on.status_code == 200
    recovery = on.json()["recovery"]
    assert recovery["missed_events"] == 1
    assert recovery["disabled_failures"] == 1
    assert recovery["since"] is not None
    # a change that does not enable it again has no recovery
    renamed = await client.patch(
        f"/v1/destinations/{o['dest']['id']}", json={"name": "x"}, headers=tenant_a.headers
    )
    assert renamed.json()["recovery"] is None
    after = conn.execute(
        "SELECT disabled_at FROM destinations WHERE id = %s", (o["dest"]["id"],)
    ).fetchone()
    assert after == (None,)


async def test_recover_delivers_missed_events_and_replays_refused_deliveries_once(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    o = await _outage(client, conn, tenant_a)
    on = await client.patch(
        f"/v1/destinations/{o['dest']['id']}", json={"enabled": True}, headers=tenant_a.headers
    )
    since = on.json()["recovery"]["since"]
    path = f"/v1/destinations/{o['dest']['id']}/recover"
    total_before = conn.execute("SELECT count(*) FROM deliveries").fetchone()

    dry = await client.post(path, json={"since": since, "dry_run": True}, headers=tenant_a.headers)
    assert dry.status_code == 200, dry.text
    assert dry.json()["count"] == 2
    assert dry.json()["event_ids"] == [o["missed_event"]]
    assert dry.json()["replayed_ids"] == [o["refused"]]
    assert dry.json()["delivery_ids"] == []
    assert conn.execute("SELECT count(*) FROM deliveries").fetchone() == total_before

    real = await client.post(path, json={"since": since}, headers=tenant_a.headers)
    body = real.json()
    assert body["count"] == 2 and len(body["delivery_ids"]) == 2
    assert body["more"] is False
    with conn.cursor(row_factory=dict_row) as cur:
        made = cur.execute(
            "SELECT * FROM deliveries WHERE id = ANY (%s::uuid[]) ORDER BY id",
            (body["delivery_ids"],),
        ).fetchall()
        audits = cur.execute(
            "SELECT * FROM audit_records WHERE action = 'destination.recovered'"
        ).fetchall()
    assert {str(d["event_id"]) for d in made if d["replay_of"] is None} == {o["missed_event"]}
    assert [str(d["replay_of"]) for d in made if d["replay_of"]] == [o["refused"]]
    assert all(d["state"] == "pending" for d in made)
    assert all(str(d["destination_id"]) == o["dest"]["id"] for d in made)
    assert len(audits) == 1 and audits[0]["data"]["count"] == 2

    again = await client.post(path, json={"since": since}, headers=tenant_a.headers)
    assert again.json()["count"] == 0


async def test_recover_needs_the_destination_enabled_and_is_tenant_scoped(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant, tenant_b: Tenant
) -> None:
    o = await _outage(client, conn, tenant_a)
    path = f"/v1/destinations/{o['dest']['id']}/recover"
    body = {"since": "2000-01-01T00:00:00Z"}
    off = await client.post(path, json=body, headers=tenant_a.headers)
    assert off.status_code == 409
    assert off.json()["type"].endswith("/destination-disabled")
    preview = await client.post(path, json={**body, "dry_run": True}, headers=tenant_a.headers)
    assert preview.status_code == 200 and preview.json()["count"] == 2
    foreign = await client.post(path, json=body, headers=tenant_b.headers)
    missing = await client.post(
        f"/v1/destinations/{uuid.uuid4()}/recover", json=body, headers=tenant_b.headers
    )
    assert foreign.status_code == 404
    assert foreign.json() == missing.json()
    bad = await client.post(
        path,
        json={"since": "2000-01-02T00:00:00Z", "until": "2000-01-01T00:00:00Z"},
        headers=tenant_a.headers,
    )
    assert bad.status_code == 422
    naive = await client.post(path, json={"since": "2000-01-01T00:00:00"}, headers=tenant_a.headers)
    assert naive.status_code == 422
