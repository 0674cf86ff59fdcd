"""`GET /v1/events/{id}` and `GET /v1/events`: the tenant's events read back, newest
first, by type and time, paged by plain-text cursors; another tenant's answer 404."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg

from tests.integration.api.conftest import Tenant, create_destination, send_event
from tests.integration.operations.conftest import finish

EVENT_FIELDS = {"id", "type", "payload", "idempotency_key", "created_at", "delivery_ids"}


async def test_an_event_is_read_back_with_its_deliveries(
    client: httpx.AsyncClient, tenant_a: Tenant, conn: psycopg.Connection[Any]
) -> None:
    first = await create_destination(client, tenant_a)
    await create_destination(client, tenant_a, event_types=["invoice.*"])
    sent = await send_event(
        client, tenant_a, "order.created", {"id": 7, "note": "é"}, idempotency_key="k-7"
    )
    read = await client.get(f"/v1/events/{sent['id']}", headers=tenant_a.headers)
    assert read.status_code == 200, read.text
    event = read.json()
    assert set(event) == EVENT_FIELDS
    assert event["type"] == "order.created" and event["payload"] == {"id": 7, "note": "é"}
    assert event["idempotency_key"] == "k-7" and event["created_at"]
    assert event["delivery_ids"] == [d["id"] for d in sent["deliveries"]]
    assert sent["deliveries"][0]["destination_id"] == first["id"]

    # a replay is one of its deliveries too
    finish(conn, tenant_a.id, uuid.UUID(event["delivery_ids"][0]), "delivered")
    replay = await client.post(
        f"/v1/deliveries/{event['delivery_ids'][0]}/replay", headers=tenant_a.headers
    )
    assert replay.status_code == 201, replay.text
    again = (await client.get(f"/v1/events/{sent['id']}", headers=tenant_a.headers)).json()
    assert again["delivery_ids"] == [*event["delivery_ids"], replay.json()["id"]]


async def test_events_are_listed_newest_first_by_type_and_time(
    client: httpx.AsyncClient, tenant_a: Tenant, conn: psycopg.Connection[Any]
) -> None:
    ids = [
        (await send_event(client, tenant_a, t, {"n": n}))["id"]
        for n, t in enumerate(["order.created", "order.paid", "order.created", "x.y"])
    ]
    h = tenant_a.headers
    everything = (await client.get("/v1/events", headers=h)).json()
    assert [e["id"] for e in everything["items"]] == ids[::-1]
    assert everything["next_cursor"] is None
    created = (await client.get("/v1/events", params={"type": "order.created"}, headers=h)).json()
    assert [e["id"] for e in created["items"]] == [ids[2], ids[0]]

    # times: move the first two events an hour back
    conn.execute(
        "UPDATE events SET created_at = created_at - interval '1 hour' WHERE id = ANY(%s::uuid[])",
        (ids[:2],),
    )
    (cut,) = conn.execute("SELECT created_at FROM events WHERE id = %s", (ids[2],)).fetchone() or ()
    recent = (await client.get("/v1/events", params={"since": cut.isoformat()}, headers=h)).json()
    assert [e["id"] for e in recent["items"]] == [ids[3], ids[2]]
    older = (await client.get("/v1/events", params={"until": cut.isoformat()}, headers=h)).json()
    assert [e["id"] for e in older["items"]] == [ids[1], ids[0]]

    # pages of two: the cursor is the last id, as plain text
    page = (await client.get("/v1/events", params={"limit": 2}, headers=h)).json()
    assert [e["id"] for e in page["items"]] == [ids[3], ids[2]]
    assert page["next_cursor"] == ids[2]
    rest = await client.get(
        "/v1/events", params={"limit": 2, "cursor": page["next_cursor"]}, headers=h
    )
    assert [e["id"] for e in rest.json()["items"]] == [ids[1], ids[0]]
    assert rest.json()["next_cursor"] is None


async def test_events_are_tenant_isolated(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    mine = await send_event(client, tenant_a)
    foreign = await client.get(f"/v1/events/{mine['id']}", headers=tenant_b.headers)
    missing = await client.get(f"/v1/events/{uuid.uuid4()}", headers=tenant_b.headers)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert (await client.get("/v1/events", headers=tenant_b.headers)).json()["items"] == []


async def test_bad_query_parameters_are_422s_naming_them(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    for params, field in (
        ({"since": "2025-01-01T00:00:00"}, "since"),  # no offset
        ({"until": "yesterday"}, "until"),
        ({"until": "0.5"}, "until"),  # not seconds since 1970
        ({"type": "no spaces"}, "type"),
        ({"cursor": "abc"}, "cursor"),
    ):
        answer = await client.get("/v1/events", params=params, headers=tenant_a.headers)
        assert answer.status_code == 422, params
        assert answer.json()["errors"][0]["field"] == field
    # only ids reach the read (so /v1/events/batch stays POST only): nothing else is one
    bad_id = await client.get("/v1/events/not-an-id", headers=tenant_a.headers)
    assert bad_id.status_code == 404
    batch = await client.get("/v1/events/batch", headers=tenant_a.headers)
    assert batch.status_code == 405 and batch.headers["allow"] == "POST"
