"""POST /v1/events/batch: items answered one by one in request order, idempotency within
a batch and across requests, the size bounds, the fan-out and lifecycle events of every
written item, one NOTIFY per batch; and a key reused with another request is a 422."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import psycopg
import pytest

from courier.asgi import create_app
from tests.integration.api.conftest import (
    Tenant,
    api_settings,
    create_destination,
    serving,
)

REUSED = "reused with another request"


def _count(conn: psycopg.Connection[Any], sql: str, *params: Any) -> int:
    row = conn.execute(sql, params).fetchone()  # test-only statements
    assert row is not None
    return int(row[0])


async def _batch(client: httpx.AsyncClient, tenant: Tenant, events: list[Any]) -> list[Any]:
    response = await client.post(
        "/v1/events/batch", json={"events": events}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    results: list[Any] = response.json()["results"]
    assert len(results) == len(events)
    return results


def _fields(result: dict[str, Any]) -> list[str]:
    assert result["status"] == 422 and result["problem"]["status"] == 422, result
    assert result["problem"]["type"].endswith("/validation-error")
    return [e["field"] for e in result["problem"]["errors"]]


async def test_mixed_items_are_answered_in_order_and_bad_ones_reject_only_themselves(
    db_url: str, secret_key: str, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    app = create_app(api_settings(secret_key, max_payload_bytes=4096), db_url)
    async with serving(app) as client:
        everything = await create_destination(client, tenant_a)
        orders = await create_destination(client, tenant_a, event_types=["order.*"])
        events: list[Any] = [
            {"type": "order.created", "payload": {"n": 0}},
            {"type": "has space", "payload": {"n": 1}},
            {"type": "invoice.paid", "payload": [1, 2]},
            {"type": "order.shipped"},
            "not an object",
            {"type": "order.updated", "payload": {}, "extra": True},
            {"type": "order.big", "payload": "x" * 5000},
            {"type": "order.keyed", "payload": None, "idempotency_key": ""},
            {"type": "order.paid", "payload": {"n": 8}, "idempotency_key": "k8"},
        ]
        results = await _batch(client, tenant_a, events)
    assert [r["status"] for r in results] == [202, 422, 202, 422, 422, 422, 422, 422, 202]
    assert _fields(results[1]) == ["events[1].type"]
    assert _fields(results[3]) == ["events[3].payload"]
    assert _fields(results[4]) == ["events[4]"]
    assert _fields(results[5]) == ["events[5].extra"]
    assert _fields(results[6]) == ["events[6].payload"]
    assert _fields(results[7]) == ["events[7].idempotency_key"]
    expected = {0: {everything["id"], orders["id"]}, 2: {everything["id"]}}
    expected[8] = {everything["id"], orders["id"]}
    for index, destinations in expected.items():
        event = results[index]["event"]
        assert {d["destination_id"] for d in event["deliveries"]} == destinations
        assert all(d["state"] == "pending" for d in event["deliveries"])
        for delivery in event["deliveries"]:  # each delivery is stored with its created event
            assert (
                _count(
                    conn,
                    "SELECT count(*) FROM deliveries WHERE id = %s AND event_id = %s",
                    delivery["id"],
                    event["id"],
                )
                == 1
            )
            assert (
                _count(
                    conn,
                    "SELECT count(*) FROM lifecycle_events WHERE delivery_id = %s"
                    " AND type = 'delivery.created'",
                    delivery["id"],
                )
                == 1
            )
    assert _count(conn, "SELECT count(*) FROM events") == 3
    assert _count(conn, "SELECT count(*) FROM deliveries") == 5
    assert _count(conn, "SELECT count(*) FROM lifecycle_events") == 5
    stored = conn.execute("SELECT payload::text FROM events ORDER BY type").fetchall()
    assert stored == [("[1,2]",), ('{"n":0}',), ('{"n":8}',)]


async def test_idempotency_within_a_batch_and_across_requests(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    await create_destination(client, tenant_a)
    a = {"type": "order.created", "payload": {"n": 1}, "idempotency_key": "a"}
    b = {"type": "order.created", "payload": {"n": 2}, "idempotency_key": "b"}
    a_other = {**a, "payload": {"n": 99}}
    a_retyped = {**a, "type": "order.deleted"}
    first = await _batch(client, tenant_a, [a, a, b, a_other, a_retyped, {**a}])
    assert [r["status"] for r in first] == [202, 200, 202, 422, 422, 200]
    assert first[1]["event"] == first[0]["event"] == first[5]["event"]
    assert first[0]["event"]["id"] != first[2]["event"]["id"]
    assert _fields(first[3]) == ["events[3].idempotency_key"]
    assert _fields(first[4]) == ["events[4].idempotency_key"]
    assert REUSED in first[3]["problem"]["detail"]
    assert _count(conn, "SELECT count(*) FROM events") == 2
    assert _count(conn, "SELECT count(*) FROM deliveries") == 2

    await create_destination(client, tenant_a)  # must not change a repeated answer
    again = await _batch(client, tenant_a, [b, a, a_other])
    assert [r["status"] for r in again] == [200, 200, 422]
    assert again[0]["event"] == first[2]["event"] and again[1]["event"] == first[0]["event"]
    single = await client.post("/v1/events", json=b, headers=tenant_a.headers)
    assert single.status_code == 200 and single.json() == first[2]["event"]
    # keys taken by POST /v1/events are seen by a batch too
    one = await client.post(
        "/v1/events",
        json={"type": "t", "payload": 1, "idempotency_key": "c"},
        headers=tenant_a.headers,
    )
    assert one.status_code == 202
    (from_batch,) = await _batch(
        client, tenant_a, [{"type": "t", "payload": 1, "idempotency_key": "c"}]
    )
    assert from_batch["status"] == 200 and from_batch["event"] == one.json()
    assert _count(conn, "SELECT count(*) FROM events") == 3


async def test_a_key_reused_with_another_request_is_422_on_post_events(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    await create_destination(client, tenant_a)
    body = {"type": "order.created", "payload": {"n": 1}, "idempotency_key": "k"}
    first = await client.post("/v1/events", json=body, headers=tenant_a.headers)
    assert first.status_code == 202
    # the same request, spelled with other whitespace, is the same request
    spaced = await client.post(
        "/v1/events",
        content=b'{ "type": "order.created",  "payload": { "n" : 1 } }',
        headers={**tenant_a.headers, "content-type": "application/json", "Idempotency-Key": "k"},
    )
    assert spaced.status_code == 200 and spaced.json() == first.json()
    for changed in ({**body, "payload": {"n": 2}}, {**body, "type": "order.updated"}):
        response = await client.post("/v1/events", json=changed, headers=tenant_a.headers)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert [e["field"] for e in problem["errors"]] == ["idempotency_key"]
        assert REUSED in problem["detail"]
    assert _count(conn, "SELECT count(*) FROM events") == 1
    assert _count(conn, "SELECT count(*) FROM deliveries") == 1


async def test_body_bounds_refuse_the_whole_batch(
    db_url: str, secret_key: str, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    app = create_app(
        api_settings(secret_key, max_payload_bytes=100_000, max_batch_bytes=200_000), db_url
    )
    async with serving(app) as client:
        item = {"type": "t", "payload": 1}
        full = await client.post(
            "/v1/events/batch", json={"events": [item] * 1000}, headers=tenant_a.headers
        )
        assert full.status_code == 200 and len(full.json()["results"]) == 1000
        over = await client.post(
            "/v1/events/batch", json={"events": [item] * 1001}, headers=tenant_a.headers
        )
        assert over.status_code == 422
        assert [e["field"] for e in over.json()["errors"]] == ["events"]
        big = await client.post(
            "/v1/events/batch",
            json={"events": [{"type": "t", "payload": "x" * 150_000}] * 2},
            headers=tenant_a.headers,
        )
        assert big.status_code == 413 and big.json()["status"] == 413
        # the batch limit is the batch route's own: POST /v1/events keeps its limit
        single = await client.post(
            "/v1/events", json={"type": "t", "payload": "x" * 150_000}, headers=tenant_a.headers
        )
        assert single.status_code == 413
        for content, field in (
            (b'{"events": {"type": "t"}}', "events"),
            (b"[]", "body"),
            (b"{}", "events"),
            (b'{"events": [], "more": 1}', "more"),
            (b"{not json", "body"),
        ):
            refused = await client.post(
                "/v1/events/batch",
                content=content,
                headers={**tenant_a.headers, "content-type": "application/json"},
            )
            assert refused.status_code == 422, content
            assert refused.headers["content-type"] == "application/problem+json"
            assert field in [e["field"] for e in refused.json()["errors"]], content
        empty = await client.post("/v1/events/batch", json={"events": []}, headers=tenant_a.headers)
        assert empty.status_code == 200 and empty.json() == {"results": []}
    assert _count(conn, "SELECT count(*) FROM events") == 1000


async def test_payloads_json_cannot_hold_are_refused_per_item(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    content = (
        b'{"events": [{"type": "t", "payload": NaN},'
        b' {"type": "t", "payload": "\\ud800"}, {"type": "t", "payload": 3}]}'
    )
    response = await client.post(
        "/v1/events/batch",
        content=content,
        headers={**tenant_a.headers, "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [422, 422, 202]
    assert _fields(results[0]) == ["events[0].payload"]
    assert _fields(results[1]) == ["events[1].payload"]


async def test_one_notify_per_batch(
    client: httpx.AsyncClient, direct_db_url: str, tenant_a: Tenant
) -> None:
    await create_destination(client, tenant_a)
    # LISTEN needs a session of its own: past the pooler, if the suite runs through one.
    async with await psycopg.AsyncConnection.connect(direct_db_url, autocommit=True) as listener:
        await listener.execute("LISTEN courier_deliveries")
        await _batch(client, tenant_a, [{"type": "t", "payload": {"n": n}} for n in range(50)])
        received = [n async for n in listener.notifies(timeout=2.0)]
    assert [(n.channel, n.payload) for n in received] == [("courier_deliveries", str(tenant_a.id))]


async def test_racing_batches_sharing_keys_write_each_event_once(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    await create_destination(client, tenant_a)
    items: list[dict[str, Any]] = [
        {"type": "t", "payload": {"k": k}, "idempotency_key": f"key-{k}"} for k in range(20)
    ]
    batches = [items if n % 2 else list(reversed(items)) for n in range(6)]
    answers = await asyncio.gather(*(_batch(client, tenant_a, batch) for batch in batches))
    by_key: dict[str, set[str]] = {}
    created = 0
    for batch, results in zip(batches, answers, strict=True):
        for item, result in zip(batch, results, strict=True):
            assert result["status"] in (200, 202), result
            created += result["status"] == 202
            by_key.setdefault(item["idempotency_key"], set()).add(json.dumps(result["event"]))
    assert created == 20
    assert all(len(answers_of_key) == 1 for answers_of_key in by_key.values())
    assert _count(conn, "SELECT count(*) FROM events") == 20
    assert _count(conn, "SELECT count(*) FROM deliveries") == 20


@pytest.mark.parametrize("ordering", ["fifo"])
async def test_a_fifo_line_follows_the_batch_order(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant, ordering: str
) -> None:
    await create_destination(client, tenant_a, ordering=ordering)
    results = await _batch(
        client, tenant_a, [{"type": "t", "payload": {"n": n}} for n in range(30)]
    )
    ids = [r["event"]["deliveries"][0]["id"] for r in results]
    rows = conn.execute("SELECT id::text FROM deliveries ORDER BY line_position").fetchall()
    assert [row[0] for row in rows] == ids


async def test_items_failing_their_types_schema_are_refused_each_naming_its_path(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    schema = {
        "type": "object",
        "required": ["amount"],
        "properties": {
            "amount": {"type": "integer", "minimum": 0},
            "lines": {"type": "array", "items": {"required": ["sku"]}},
        },
    }
    put = await client.put(
        "/v1/event-types/order.paid", json={"schema": schema}, headers=tenant_a.headers
    )
    assert put.status_code == 201, put.text
    await create_destination(client, tenant_a)
    results = await _batch(
        client,
        tenant_a,
        [
            {"type": "order.paid", "payload": {"amount": 5}},
            {"type": "order.paid", "payload": {"amount": "5"}},
            {"type": "order.created", "payload": {"anything": True}},  # no schema: accepted
            {"type": "order.paid", "payload": {}},
            {"type": "order.paid", "payload": {"amount": 1, "lines": [{"sku": 1}, {}]}},
            {"type": "order.paid", "payload": {"amount": 7}, "idempotency_key": "k1"},
        ],
    )
    assert [r["status"] for r in results] == [202, 422, 202, 422, 422, 202]
    assert _fields(results[1]) == ["events[1].payload.amount"]
    assert _fields(results[3]) == ["events[3].payload"]
    assert _fields(results[4]) == ["events[4].payload.lines[1]"]
    assert "events[1].payload.amount" in results[1]["problem"]["detail"]
    assert _count(conn, "SELECT count(*) FROM events WHERE tenant_id = %s", tenant_a.id) == 3
    stored = conn.execute(
        "SELECT payload::text FROM events WHERE tenant_id = %s AND type = 'order.paid'",
        (tenant_a.id,),
    ).fetchall()
    # (ids made in the same millisecond do not sort in creation order)
    assert sorted(p for (p,) in stored) == ['{"amount":5}', '{"amount":7}']
