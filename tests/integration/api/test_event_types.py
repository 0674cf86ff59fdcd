"""/v1/event-types: the catalog, schemas checked as JSON Schema 2020-12, and POST
/v1/events refusing payloads that fail their type's schema (422 naming the path)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import Tenant, send_event

AMOUNT_SCHEMA = {
    "type": "object",
    "required": ["amount"],
    "properties": {
        "amount": {"type": "integer", "minimum": 0},
        "lines": {"type": "array", "items": {"type": "object", "required": ["sku"]}},
    },
}


async def _put(client: httpx.AsyncClient, tenant: Tenant, name: str, **body: Any) -> httpx.Response:
    return await client.put(f"/v1/event-types/{name}", json=body, headers=tenant.headers)


def _fields(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    return [e["field"] for e in answer.json()["errors"]]


async def test_put_list_read_and_delete(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    created = await _put(
        client,
        tenant_a,
        "order.paid",
        description="paid",
        schema=AMOUNT_SCHEMA,
        example={"amount": 5},
    )
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1 and created.json()["schema"] == AMOUNT_SCHEMA
    replaced = await _put(client, tenant_a, "order.paid", description="paid, in cents")
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    assert replaced.json()["schema"] is None
    for name in ("a.first", "z.last"):
        assert (await _put(client, tenant_a, name)).status_code == 201
    names: list[str] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await client.get("/v1/event-types", params=params, headers=tenant_a.headers)
        assert page.status_code == 200
        names += [item["name"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert names == ["a.first", "order.paid", "z.last"]
    read = await client.get("/v1/event-types/order.paid", headers=tenant_a.headers)
    assert read.json()["description"] == "paid, in cents"
    gone = await client.delete("/v1/event-types/order.paid", headers=tenant_a.headers)
    assert gone.status_code == 204
    again = await client.delete("/v1/event-types/order.paid", headers=tenant_a.headers)
    assert again.status_code == 404
    bad_cursor = await client.get("/v1/event-types?cursor=not..a.name", headers=tenant_a.headers)
    assert _fields(bad_cursor) == ["cursor"]


async def test_another_tenants_catalog_is_invisible(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    await _put(client, tenant_a, "order.paid", schema=AMOUNT_SCHEMA)
    assert (
        await client.get("/v1/event-types/order.paid", headers=tenant_b.headers)
    ).status_code == 404
    listed = await client.get("/v1/event-types", headers=tenant_b.headers)
    assert listed.json()["items"] == []
    # and tenant b's events of that type are not validated against a's schema
    await send_event(client, tenant_b, "order.paid", {"amount": "lots"})


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ({"type": "objekt"}, "schema.type"),
        ({"properties": {"amount": {"minimum": "zero"}}}, "schema.properties.amount.minimum"),
        ({"required": "amount"}, "schema.required"),
        (["not", "a", "schema"], "schema"),
    ],
)
async def test_an_invalid_schema_is_a_422_naming_where(
    client: httpx.AsyncClient, tenant_a: Tenant, schema: Any, field: str
) -> None:
    answer = await _put(client, tenant_a, "order.paid", schema=schema)
    assert _fields(answer) == [field]
    assert (await client.get("/v1/event-types", headers=tenant_a.headers)).json()["items"] == []


async def test_an_example_must_satisfy_the_schema(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    answer = await _put(
        client, tenant_a, "order.paid", schema=AMOUNT_SCHEMA, example={"amount": -1}
    )
    assert _fields(answer) == ["example.amount"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"amount": "12"}, "payload.amount"),
        ({}, "payload"),
        ({"amount": 1, "lines": [{"sku": "a"}, {"qty": 2}]}, "payload.lines[1]"),
        ([1, 2], "payload"),
    ],
)
async def test_a_payload_failing_its_schema_is_a_422_naming_the_path(
    client: httpx.AsyncClient, tenant_a: Tenant, payload: Any, field: str
) -> None:
    await _put(client, tenant_a, "order.paid", schema=AMOUNT_SCHEMA)
    answer = await client.post(
        "/v1/events", json={"type": "order.paid", "payload": payload}, headers=tenant_a.headers
    )
    assert _fields(answer) == [field]
    assert field in answer.json()["detail"]


async def test_changing_or_deleting_a_schema_applies_to_the_next_event(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    await send_event(client, tenant_a, "order.paid", {"amount": "any"})  # no schema yet
    await _put(client, tenant_a, "order.paid", schema=AMOUNT_SCHEMA)
    refused = await client.post(
        "/v1/events",
        json={"type": "order.paid", "payload": {"amount": "x"}},
        headers=tenant_a.headers,
    )
    assert refused.status_code == 422
    await send_event(client, tenant_a, "order.paid", {"amount": 3})
    await _put(client, tenant_a, "order.paid", schema={"type": "object", "required": ["id"]})
    assert _fields(
        await client.post(
            "/v1/events",
            json={"type": "order.paid", "payload": {"amount": 3}},
            headers=tenant_a.headers,
        )
    ) == ["payload"]
    await client.delete("/v1/event-types/order.paid", headers=tenant_a.headers)
    await send_event(client, tenant_a, "order.paid", {"amount": "x"})


async def test_a_schema_changed_by_another_process_applies_within_the_recheck(
    client: httpx.AsyncClient, tenant_a: Tenant, conn: Any
) -> None:
    from courier.event_schemas import RECHECK_S

    await _put(client, tenant_a, "order.paid", schema=AMOUNT_SCHEMA)
    await send_event(client, tenant_a, "order.paid", {"amount": 1})  # cached now
    # Another API process replaced the schema: this process's cache does not know yet.
    conn.execute(
        'UPDATE event_types SET schema = \'{"type": "object", "required": ["id"]}\','
        " version = version + 1 WHERE tenant_id = %s",
        (tenant_a.id,),
    )
    import asyncio

    await asyncio.sleep(RECHECK_S + 0.2)
    answer = await client.post(
        "/v1/events",
        json={"type": "order.paid", "payload": {"amount": 1}},
        headers=tenant_a.headers,
    )
    assert _fields(answer) == ["payload"]
