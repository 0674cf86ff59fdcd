"""`filter` on destinations through the API: stored and read back, refused with a 422
naming its bad place (nothing stored), applied by fan-out, by the batch ingest and by
outage recovery."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.api.conftest import Tenant, create_destination, send_event

HIGH_VALUE = {"data.amount": {"$gte": 100}, "data.currency": {"$in": ["EUR", "USD"]}}


def _order(amount: Any, currency: str = "EUR") -> dict[str, Any]:
    return {"data": {"amount": amount, "currency": currency}}


async def test_a_filter_is_stored_read_back_and_routes_events(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    plain = await create_destination(client, tenant_a)
    high = await create_destination(client, tenant_a, filter=HIGH_VALUE)
    assert high["filter"] == HIGH_VALUE and plain["filter"] is None
    read = await client.get(f"/v1/destinations/{high['id']}", headers=tenant_a.headers)
    assert read.json()["filter"] == HIGH_VALUE

    big = await send_event(client, tenant_a, payload=_order(250))
    small = await send_event(client, tenant_a, payload=_order(20))
    text = await send_event(client, tenant_a, payload=_order("250"))  # a string is no amount
    assert {d["destination_id"] for d in big["deliveries"]} == {plain["id"], high["id"]}
    assert [d["destination_id"] for d in small["deliveries"]] == [plain["id"]]
    assert [d["destination_id"] for d in text["deliveries"]] == [plain["id"]]

    batch = await client.post(
        "/v1/events/batch",
        json={"events": [{"type": "order.created", "payload": _order(a)} for a in (99, 100)]},
        headers=tenant_a.headers,
    )
    low, edge = (r["event"]["deliveries"] for r in batch.json()["results"])
    assert len(low) == 1 and len(edge) == 2


async def test_patch_sets_changes_and_removes_a_filter(
    client: httpx.AsyncClient, tenant_a: Tenant, conn: psycopg.Connection[Any]
) -> None:
    dest = await create_destination(client, tenant_a)
    path = f"/v1/destinations/{dest['id']}"
    on = await client.patch(path, json={"filter": HIGH_VALUE}, headers=tenant_a.headers)
    assert on.status_code == 200 and on.json()["filter"] == HIGH_VALUE
    assert (await send_event(client, tenant_a, payload=_order(5)))["deliveries"] == []
    renamed = await client.patch(path, json={"name": "kept"}, headers=tenant_a.headers)
    assert renamed.json()["filter"] == HIGH_VALUE
    off = await client.patch(path, json={"filter": None}, headers=tenant_a.headers)
    assert off.status_code == 200 and off.json()["filter"] is None
    assert len((await send_event(client, tenant_a, payload=_order(5)))["deliveries"]) == 1
    everything = await client.patch(path, json={"filter": {}}, headers=tenant_a.headers)
    assert everything.json()["filter"] is None  # `{}` matches everything: stored as none
    audit = conn.execute(
        "SELECT data->'changed' FROM audit_records WHERE action = 'destination.updated'"
        " ORDER BY id LIMIT 1"
    ).fetchone()
    assert audit == (["filter"],)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"data.amount": {"$gte": True}}, "filter.data.amount.$gte"),
        ({"data.amount": {"$between": [1, 2]}}, "filter.data.amount.$between"),
        ({"$or": [{"a": 1}, {"b": {"$in": 3}}]}, "filter.$or[1].b.$in"),
        ({"a..b": 1}, "filter.a..b"),
    ],
)
async def test_a_bad_filter_is_a_422_naming_its_place_and_stores_nothing(
    client: httpx.AsyncClient,
    tenant_a: Tenant,
    conn: psycopg.Connection[Any],
    document: dict[str, Any],
    field: str,
) -> None:
    before = conn.execute("SELECT count(*) FROM destinations").fetchone()
    created = await client.post(
        "/v1/destinations",
        json={"name": "x", "url": "https://example.com/hook", "filter": document},
        headers=tenant_a.headers,
    )
    assert created.status_code == 422, created.text
    assert created.headers["content-type"] == "application/problem+json"
    assert created.json()["errors"][0]["field"] == field
    assert conn.execute("SELECT count(*) FROM destinations").fetchone() == before

    dest = await create_destination(client, tenant_a, filter={"a": 1})
    patched = await client.patch(
        f"/v1/destinations/{dest['id']}", json={"filter": document}, headers=tenant_a.headers
    )
    assert patched.status_code == 422 and patched.json()["errors"][0]["field"] == field
    stored = conn.execute("SELECT filter FROM destinations WHERE id = %s", (dest["id"],))
    assert stored.fetchone() == ({"a": 1},)


async def test_a_filter_that_is_not_an_object_is_a_422(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    created = await client.post(
        "/v1/destinations",
        json={"name": "x", "url": "https://example.com/hook", "filter": [1]},
        headers=tenant_a.headers,
    )
    assert created.status_code == 422 and created.json()["errors"][0]["field"] == "filter"


async def test_recovery_delivers_only_the_missed_events_the_filter_matches(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    dest = await create_destination(client, tenant_a, filter=HIGH_VALUE)
    path = f"/v1/destinations/{dest['id']}"
    await client.patch(path, json={"enabled": False}, headers=tenant_a.headers)
    wanted = await send_event(client, tenant_a, payload=_order(500))
    await send_event(client, tenant_a, payload=_order(1))
    await send_event(client, tenant_a, payload=_order(500, "GBP"))
    on = await client.patch(path, json={"enabled": True}, headers=tenant_a.headers)
    assert on.json()["recovery"]["missed_events"] == 1
    since = on.json()["recovery"]["since"]
    done = await client.post(f"{path}/recover", json={"since": since}, headers=tenant_a.headers)
    assert done.status_code == 200, done.text
    assert done.json()["event_ids"] == [wanted["id"]]
