"""`POST /v1/destinations/{id}/test`: a `courier.test` event, or a catalog type's example
payload, to that one destination, delivered by a real worker like any other, whatever
the destination's filter says; outage recovery never gives a test event to another."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import psycopg
from psycopg.rows import dict_row

from tests.integration.api.conftest import Tenant, create_destination
from tests.support.engine import make_worker, run_workers, wait_terminal
from tests.support.receiver import Receiver


async def test_a_test_send_reaches_only_that_destination_despite_its_filter(
    client: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    tenant_a: Tenant,
    receiver: Receiver,
) -> None:
    picky = await create_destination(
        client, tenant_a, url=receiver.url("/picky"), filter={"data.amount": {"$gte": 100}}
    )
    await create_destination(client, tenant_a, url=receiver.url("/other"))
    sent = await client.post(f"/v1/destinations/{picky['id']}/test", headers=tenant_a.headers)
    assert sent.status_code == 202, sent.text
    body = sent.json()
    assert set(body) == {"event_id", "delivery_id", "event_type", "filter_bypassed"}
    assert body["filter_bypassed"] is True and body["event_type"] == "courier.test"

    async with run_workers([make_worker(db_url, secret_key)]):
        await wait_terminal(db_url, 1)
    (hit,) = receiver.hits()
    assert hit.path == "/picky"
    assert orjson.loads(hit.body)["type"] == "courier.test"
    with conn.cursor(row_factory=dict_row) as cur:
        (delivery,) = cur.execute("SELECT * FROM deliveries").fetchall()
        (event,) = cur.execute("SELECT * FROM events").fetchall()
        audit = cur.execute(
            "SELECT * FROM audit_records WHERE action = 'destination.test_sent'"
        ).fetchall()
    assert str(delivery["id"]) == body["delivery_id"] and delivery["state"] == "delivered"
    assert str(event["id"]) == body["event_id"] and event["type"] == "courier.test"
    assert len(audit) == 1 and audit[0]["data"]["filter_bypassed"] is True


async def test_a_test_send_without_a_filter_says_nothing_was_bypassed(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    dest = await create_destination(client, tenant_a, event_types=["order.*"])
    sent = await client.post(f"/v1/destinations/{dest['id']}/test", headers=tenant_a.headers)
    assert sent.status_code == 202 and sent.json()["filter_bypassed"] is False


async def test_a_test_send_is_refused_for_a_disabled_missing_or_foreign_destination(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant, tenant_b: Tenant
) -> None:
    dest = await create_destination(client, tenant_a, enabled=False)
    off = await client.post(f"/v1/destinations/{dest['id']}/test", headers=tenant_a.headers)
    assert off.status_code == 409 and off.json()["type"].endswith("/destination-disabled")
    foreign = await client.post(f"/v1/destinations/{dest['id']}/test", headers=tenant_b.headers)
    missing = await client.post(f"/v1/destinations/{uuid.uuid4()}/test", headers=tenant_b.headers)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)


ORDER_SCHEMA = {
    "type": "object",
    "required": ["id", "amount"],
    "properties": {"id": {"type": "string"}, "amount": {"type": "integer"}},
    "examples": [{"id": "ord_2", "amount": 250}, {"id": "ord_bad", "amount": "lots"}],
}


async def test_a_test_send_carries_the_catalog_example_asked_for(
    client: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    tenant_a: Tenant,
    receiver: Receiver,
) -> None:
    put = await client.put(
        "/v1/event-types/order.created",
        json={"schema": ORDER_SCHEMA, "example": {"id": "ord_1", "amount": 120}},
        headers=tenant_a.headers,
    )
    assert put.status_code == 201, put.text
    dest = await create_destination(
        client, tenant_a, url=receiver.url("/orders"), payload_format="envelope"
    )
    # Another destination of that type, disabled meanwhile: recovery must not hand it
    # the test event as if an order had been created.
    other = await create_destination(
        client, tenant_a, url=receiver.url("/other"), event_types=["order.*"], enabled=False
    )
    everything = await create_destination(
        client, tenant_a, url=receiver.url("/everything"), enabled=False
    )
    sent = await client.post(
        f"/v1/destinations/{dest['id']}/test",
        json={"event_type": "order.created", "example": 1},
        headers=tenant_a.headers,
    )
    assert sent.status_code == 202, sent.text
    assert sent.json()["event_type"] == "order.created"
    async with run_workers([make_worker(db_url, secret_key)]):
        await wait_terminal(db_url, 1)
    (hit,) = receiver.hits()
    assert hit.path == "/orders" and hit.headers["courier-event-type"] == "order.created"
    delivered = orjson.loads(hit.body)
    assert delivered["type"] == "order.created"
    assert delivered["data"] == {"id": "ord_2", "amount": 250}  # the schema's examples[0]
    with conn.cursor(row_factory=dict_row) as cur:
        event = cur.execute("SELECT * FROM events").fetchone()
        audit = cur.execute(
            "SELECT data FROM audit_records WHERE action = 'destination.test_sent'"
        ).fetchone()
    assert event is not None and event["test"] is True and event["type"] == "order.created"
    assert audit is not None and audit["data"]["event_type"] == "order.created"

    # A `courier.test` ping is not for a destination that takes every type either.
    ping = await client.post(f"/v1/destinations/{dest['id']}/test", headers=tenant_a.headers)
    assert ping.status_code == 202
    for missed in (other, everything):
        enabled = await client.patch(
            f"/v1/destinations/{missed['id']}", json={"enabled": True}, headers=tenant_a.headers
        )
        assert enabled.status_code == 200, enabled.text
        assert enabled.json()["recovery"]["missed_events"] == 0
        recovered = await client.post(
            f"/v1/destinations/{missed['id']}/recover",
            json={"since": "2000-01-01T00:00:00Z"},
            headers=tenant_a.headers,
        )
        assert recovered.status_code == 200, recovered.text
        assert conn.execute(
            "SELECT count(*) FROM deliveries WHERE destination_id = %s", (missed["id"],)
        ).fetchone() == (0,)


async def test_a_test_send_refuses_an_example_it_cannot_send(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    await client.put(
        "/v1/event-types/order.created",
        json={"schema": ORDER_SCHEMA, "example": {"id": "ord_1", "amount": 120}},
        headers=tenant_a.headers,
    )
    await client.put(
        "/v1/event-types/order.shipped",
        json={"description": "no example"},
        headers=tenant_a.headers,
    )
    dest = await create_destination(client, tenant_a)
    for body, field in (
        ({"event_type": "order.unknown"}, "event_type"),
        ({"event_type": "order.shipped"}, "event_type"),
        ({"event_type": "order.created", "example": 3}, "example"),
        ({"event_type": "order.created", "example": 2}, "example.amount"),  # fails the schema
        ({"event_type": "order.created", "example": -1}, "example"),
        ({"event_type": "bad type!"}, "event_type"),
        ({"example": 0}, "event_type"),
    ):
        answer = await client.post(
            f"/v1/destinations/{dest['id']}/test", json=body, headers=tenant_a.headers
        )
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["errors"][0]["field"] == field, (body, answer.text)
    assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
