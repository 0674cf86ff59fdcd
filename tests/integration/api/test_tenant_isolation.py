"""The cross-tenant matrix: tenant B gets 404 for each of tenant A's objects, on every
route that takes an id, exactly as for an id that does not exist; lists never show them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg

from tests.integration.api.conftest import Tenant, create_destination, send_event


def _id_routes(
    destination_id: str, delivery_id: str
) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"/v1/destinations/{destination_id}", None),
        ("PATCH", f"/v1/destinations/{destination_id}", {"enabled": False}),
        ("GET", f"/v1/destinations/{destination_id}/secret", None),
        ("DELETE", f"/v1/destinations/{destination_id}", None),
        ("GET", f"/v1/deliveries/{delivery_id}", None),
        ("GET", f"/v1/deliveries/{delivery_id}/attempts", None),
    ]


async def test_another_tenants_ids_answer_404_like_missing_ones(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant, tenant_b: Tenant
) -> None:
    dest = await create_destination(client, tenant_a)
    event = await send_event(client, tenant_a)
    (delivery,) = event["deliveries"]
    theirs = _id_routes(dest["id"], delivery["id"])
    missing = _id_routes(str(uuid.uuid4()), str(uuid.uuid4()))
    for (method, path, body), (_, missing_path, _) in zip(theirs, missing, strict=True):
        foreign = await client.request(method, path, json=body, headers=tenant_b.headers)
        absent = await client.request(method, missing_path, json=body, headers=tenant_b.headers)
        assert foreign.status_code == 404, (method, path, foreign.text)
        assert foreign.json() == absent.json(), (method, path)
        assert _comparable(foreign.headers) == _comparable(absent.headers), (method, path)
    # nothing of A's was changed or deleted by B's attempts
    again = await client.get(f"/v1/destinations/{dest['id']}", headers=tenant_a.headers)
    assert again.status_code == 200 and again.json()["enabled"] is True
    audit = conn.execute(
        "SELECT count(*) FROM audit_records WHERE tenant_id = %s", (tenant_b.id,)
    ).fetchone()
    assert audit == (0,)


def _comparable(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in ("date",)}


async def test_lists_never_show_another_tenants_rows(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    dest = await create_destination(client, tenant_a)
    event = await send_event(client, tenant_a)
    await create_destination(client, tenant_b)
    lists = [
        "/v1/destinations",
        "/v1/deliveries",
        f"/v1/deliveries?destination_id={dest['id']}",
        f"/v1/deliveries?event_id={event['id']}",
        "/v1/dead-letters",
        "/v1/audit",
    ]
    a_ids = {dest["id"], event["deliveries"][0]["id"]}
    for path in lists:
        response = await client.get(path, headers=tenant_b.headers)
        assert response.status_code == 200, path
        items = response.json()["items"]
        assert not a_ids & {i["id"] for i in items}, path
        assert all(i.get("tenant_id", str(tenant_b.id)) == str(tenant_b.id) for i in items), path
    filtered = await client.get(f"/v1/deliveries?event_id={event['id']}", headers=tenant_b.headers)
    assert filtered.json() == {"items": [], "next_cursor": None}


async def test_events_fan_out_only_to_the_senders_destinations(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    mine = await create_destination(client, tenant_a)
    await create_destination(client, tenant_b)
    event = await send_event(client, tenant_a)
    assert [d["destination_id"] for d in event["deliveries"]] == [mine["id"]]
