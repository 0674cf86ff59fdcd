"""POST /v1/events: fan-out by type filters, disabled destinations, idempotency (also
under a race), the payload limit and body validation."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest

from courier.api.schemas import EventAccepted
from courier.asgi import create_app
from tests.integration.api.conftest import (
    Tenant,
    api_settings,
    create_destination,
    send_event,
    serving,
)
from tests.support.database import direct


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # test-only
    assert row is not None
    return int(row[0])


async def test_fan_out_follows_exact_types_wildcards_and_empty_filters(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    everything = await create_destination(client, tenant_a, event_types=[])
    star = await create_destination(client, tenant_a, event_types=["*"])
    exact = await create_destination(client, tenant_a, event_types=["order.created"])
    family = await create_destination(client, tenant_a, event_types=["order.*"])
    nested = await create_destination(client, tenant_a, event_types=["order.item.*"])
    other = await create_destination(client, tenant_a, event_types=["invoice.paid", "user.*"])
    expected = {
        "order.created": {everything["id"], star["id"], exact["id"], family["id"]},
        "order.updated": {everything["id"], star["id"], family["id"]},
        "order.item.added": {everything["id"], star["id"], family["id"], nested["id"]},
        "orders.created": {everything["id"], star["id"]},
        "order": {everything["id"], star["id"]},
        "invoice.paid": {everything["id"], star["id"], other["id"]},
        "user.signed_up": {everything["id"], star["id"], other["id"]},
    }
    for event_type, destinations in expected.items():
        accepted = await send_event(client, tenant_a, event_type)
        got = {d["destination_id"] for d in accepted["deliveries"]}
        assert got == destinations, event_type
        assert all(d["state"] == "pending" for d in accepted["deliveries"])
        listed = await client.get(
            f"/v1/deliveries?event_id={accepted['id']}", headers=tenant_a.headers
        )
        assert {d["destination_id"] for d in listed.json()["items"]} == destinations


async def test_disabled_destinations_get_no_delivery(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    live = await create_destination(client, tenant_a)
    born_disabled = await create_destination(client, tenant_a, enabled=False)
    later_disabled = await create_destination(client, tenant_a)
    response = await client.patch(
        f"/v1/destinations/{later_disabled['id']}",
        json={"enabled": False},
        headers=tenant_a.headers,
    )
    assert response.status_code == 200
    accepted = await send_event(client, tenant_a)
    assert [d["destination_id"] for d in accepted["deliveries"]] == [live["id"]]
    assert born_disabled["id"] != live["id"]


async def test_event_without_destinations_is_stored_with_no_deliveries(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    accepted = await send_event(client, tenant_a, payload=[1, "two", None, {"3": 3.5}])
    assert accepted["deliveries"] == []
    row = conn.execute(
        "SELECT payload::text FROM events WHERE id = %s", (accepted["id"],)
    ).fetchone()
    assert row == ('[1,"two",null,{"3":3.5}]',)


async def test_repeated_idempotency_key_returns_the_first_answer_and_creates_nothing(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    await create_destination(client, tenant_a)
    body = {"type": "order.created", "payload": {"n": 1}, "idempotency_key": "order-1"}
    first = await client.post("/v1/events", json=body, headers=tenant_a.headers)
    assert first.status_code == 202
    # a later destination must not change the replayed answer
    await create_destination(client, tenant_a)
    again = await client.post("/v1/events", json=body, headers=tenant_a.headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert _count(conn, "events") == 1 and _count(conn, "deliveries") == 1
    # the header form is the same key
    header = await client.post(
        "/v1/events",
        json={"type": "order.created", "payload": {"n": 1}},
        headers={**tenant_a.headers, "Idempotency-Key": "order-1"},
    )
    assert header.status_code == 200 and header.json() == first.json()
    conflicting = await client.post(
        "/v1/events",
        json=body,
        headers={**tenant_a.headers, "Idempotency-Key": "order-2"},
    )
    assert conflicting.status_code == 422
    assert [e["field"] for e in conflicting.json()["errors"]] == ["idempotency_key"]


async def test_idempotent_replay_does_not_follow_delivery_progress(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    await create_destination(client, tenant_a)
    body = {"type": "order.created", "payload": {}, "idempotency_key": "k"}
    first = await client.post("/v1/events", json=body, headers=tenant_a.headers)
    conn.execute("UPDATE deliveries SET state = 'failed', next_attempt_at = NULL")
    again = await client.post("/v1/events", json=body, headers=tenant_a.headers)
    assert again.json() == first.json()
    assert again.json()["deliveries"][0]["state"] == "pending"


async def test_idempotency_keys_are_per_tenant(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    a = await send_event(client, tenant_a, idempotency_key="shared")
    b = await send_event(client, tenant_b, idempotency_key="shared")
    assert a["id"] != b["id"]


async def test_twenty_racing_identical_requests_create_one_event(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    await create_destination(client, tenant_a)
    await create_destination(client, tenant_a, event_types=["order.*"])
    body = {"type": "order.created", "payload": {"n": 1}, "idempotency_key": "race"}
    responses = await asyncio.gather(
        *(client.post("/v1/events", json=body, headers=tenant_a.headers) for _ in range(20))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [202]
    bodies = [r.json() for r in responses]
    assert all(b == bodies[0] for b in bodies)
    assert len(bodies[0]["deliveries"]) == 2
    assert _count(conn, "events") == 1 and _count(conn, "deliveries") == 2
    assert _count(conn, "lifecycle_events") == 2


async def test_payload_over_the_limit_is_413(
    db_url: str, secret_key: str, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    app = create_app(api_settings(secret_key, max_payload_bytes=4096), db_url)
    async with serving(app) as client:
        small = await client.post(
            "/v1/events", json={"type": "t", "payload": "x" * 3000}, headers=tenant_a.headers
        )
        assert small.status_code == 202
        big = await client.post(
            "/v1/events", json={"type": "t", "payload": "x" * 5000}, headers=tenant_a.headers
        )
        assert big.status_code == 413
        assert big.headers["content-type"] == "application/problem+json"
        assert big.json()["status"] == 413

        async def chunks() -> Any:  # no Content-Length: the bytes read are counted
            yield b'{"type": "t", "payload": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}'

        streamed = await client.post(
            "/v1/events",
            content=chunks(),
            headers={**tenant_a.headers, "content-type": "application/json"},
        )
        assert streamed.status_code == 413
        assert streamed.json()["status"] == 413
    assert _count(conn, "events") == 1


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{not json", "body"),
        (b'{"payload": {}}', "type"),
        (b'{"type": "order.created"}', "payload"),
        (b'{"type": "", "payload": 1}', "type"),
        (b'{"type": "has space", "payload": 1}', "type"),
        (b'{"type": "t", "payload": 1, "idempotency_key": ""}', "idempotency_key"),
        (b'{"type": "t", "payload": NaN}', "payload"),
        (b'{"type": "t", "payload": "\\ud800"}', "payload"),
        (b'{"type": "t", "payload": 1, "extra": 2}', "extra"),
        (b"[]", "body"),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    tenant_a: Tenant,
    content: bytes,
    field: str,
) -> None:
    response = await client.post(
        "/v1/events",
        content=content,
        headers={**tenant_a.headers, "content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/validation-error") and problem["status"] == 422
    assert field in [e["field"] for e in problem["errors"]], problem
    assert _count(conn, "events") == 0


async def test_large_integers_and_unicode_payloads_round_trip(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    accepted = await send_event(client, tenant_a, payload={"big": 2**80, "text": "héllo\u0000"})
    row = conn.execute(
        "SELECT payload::text FROM events WHERE id = %s", (accepted["id"],)
    ).fetchone()
    assert row == ('{"big":1208925819614629174706176,"text":"héllo\\u0000"}',)


async def test_undecodable_body_is_422_naming_the_body(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    response = await client.post(
        "/v1/events",
        content=b"\xff\xfe{\x00",
        headers={**tenant_a.headers, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["body"]


@pytest.mark.parametrize(
    "body", [{"type": 1, "payload": 1}, {"type": "t", "payload": 1, "idempotency_key": 5}]
)
async def test_loose_types_are_refused(
    client: httpx.AsyncClient, tenant_a: Tenant, body: dict[str, Any]
) -> None:
    response = await client.post("/v1/events", json=body, headers=tenant_a.headers)
    assert response.status_code == 422, response.text


async def test_accepted_event_wakes_workers(
    client: httpx.AsyncClient, db_url: str, tenant_a: Tenant
) -> None:
    await create_destination(client, tenant_a)
    async with await psycopg.AsyncConnection.connect(direct(db_url), autocommit=True) as listener:
        await listener.execute("LISTEN courier_deliveries")
        await send_event(client, tenant_a)
        notices = listener.notifies(timeout=5.0, stop_after=1)
        received = [n async for n in notices]
    assert [(n.channel, n.payload) for n in received] == [("courier_deliveries", str(tenant_a.id))]


async def test_the_answer_is_exactly_the_documented_event_accepted(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    """The route encodes its answer itself: the shape must still be EventAccepted's, for a
    first request (202) and its repeat (200) alike."""
    await create_destination(client, tenant_a, event_types=[])
    await create_destination(client, tenant_a, event_types=[])
    body = {"type": "order.created", "payload": {"n": 1}, "idempotency_key": "shape-1"}
    first = await client.post("/v1/events", json=body, headers=tenant_a.headers)
    again = await client.post("/v1/events", json=body, headers=tenant_a.headers)
    assert (first.status_code, again.status_code) == (202, 200)
    for answer in (first, again):
        assert answer.headers["content-type"] == "application/json"
        parsed = EventAccepted.model_validate_json(answer.content)
        assert parsed.model_dump(mode="json") == answer.json()  # no extra or missing keys
        assert len(parsed.deliveries) == 2
    assert first.json() == again.json()
