"""`destination.disabled` and `destination.enabled` lifecycle events: written whenever a
destination is turned off or on, whoever does it (a PATCH, the health service, a plain
UPDATE), in the feed and the stream, with `delivery_id` and `event_id` null."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson
import psycopg

from courier.asgi import create_app
from courier.worker.health import REASON_GONE, HealthConfig, HealthService
from tests.integration.api.conftest import Tenant, api_settings, create_destination
from tests.integration.observability.conftest import uvicorn_serving
from tests.integration.operations.conftest import add_attempt, days, enqueue, now
from tests.support.asyncapi import validate_event

WAIT_S = 20.0


async def _feed(client: httpx.AsyncClient, tenant: Tenant, want: int) -> list[dict[str, Any]]:
    """The tenant's feed once it shows `want` destination events (the feed may lag)."""
    for _ in range(200):
        response = await client.get("/v1/delivery-events?limit=200", headers=tenant.headers)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = [
            i for i in response.json()["items"] if i["type"].startswith("destination.")
        ]
        if len(items) >= want:
            return items
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {want} destination events in the feed")


async def _patch(client: httpx.AsyncClient, tenant: Tenant, dest_id: str, **body: Any) -> None:
    response = await client.patch(f"/v1/destinations/{dest_id}", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text


async def test_a_patch_that_disables_then_enables_writes_one_event_each(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    dest = await create_destination(client, tenant_a)
    other = await create_destination(client, tenant_b)
    await _patch(client, tenant_a, dest["id"], enabled=False)
    await _patch(client, tenant_a, dest["id"], enabled=False)  # no change: no event
    await _patch(client, tenant_a, dest["id"], name="renamed")  # no switch: no event
    await _patch(client, tenant_a, dest["id"], enabled=True)
    await _patch(client, tenant_b, other["id"], enabled=False)

    items = await _feed(client, tenant_a, 2)
    assert [(i["type"], i["state"], i["data"]) for i in items] == [
        ("destination.disabled", "disabled", {"reason": "manual"}),
        ("destination.enabled", "enabled", {"reason": "manual"}),
    ]
    for item in items:
        validate_event(item)
        assert item["destination_id"] == dest["id"]
        assert item["delivery_id"] is None and item["event_id"] is None
        assert item["attempt_number"] == 0
        assert item["tenant_id"] == str(tenant_a.id)
    assert [i["destination_id"] for i in await _feed(client, tenant_b, 1)] == [other["id"]]


async def test_deleting_a_destination_is_not_disabling_it(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    dest = await create_destination(client, tenant_a)
    response = await client.delete(f"/v1/destinations/{dest['id']}", headers=tenant_a.headers)
    assert response.status_code == 204
    (n,) = conn.execute(
        "SELECT count(*) FROM lifecycle_events WHERE destination_id = %s", (dest["id"],)
    ).fetchone() or (None,)
    assert n == 0


async def test_the_health_service_disabling_a_gone_destination_says_why(
    client: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    direct_db_url: str,
    tenant_a: Tenant,
) -> None:
    dest = await create_destination(client, tenant_a, event_types=["gone.x"])
    conn.execute(
        "UPDATE destinations SET enabled_at = now() - interval '10 days' WHERE id = %s",
        (dest["id"],),
    )
    (delivery_id,) = enqueue(conn, tenant_a.id, "gone.x")
    t0 = now(conn)
    for age in (2, 1.5, 0.5):
        add_attempt(
            conn,
            tenant_a.id,
            delivery_id,
            at=t0 - days(age),
            outcome="permanent_failure",
            http_status=410,
        )
    run = await HealthService(direct_db_url, HealthConfig()).run_once()
    assert [d.destination_id for d in run.disabled] == [uuid.UUID(dest["id"])]

    (item,) = await _feed(client, tenant_a, 1)
    assert item["type"] == "destination.disabled"
    assert item["data"] == {"reason": REASON_GONE}
    validate_event(item)


async def test_the_stream_carries_destination_events(
    db_url: str, secret_key: str, conn: psycopg.Connection[Any], make_tenant: Any
) -> None:
    tenant: Tenant = make_tenant()
    app = create_app(api_settings(secret_key), db_url)
    async with uvicorn_serving(app) as base, httpx.AsyncClient(base_url=base) as client:
        dest = await create_destination(client, tenant)
        async with client.stream(
            "GET", "/v1/delivery-events/stream", headers=tenant.headers
        ) as stream:
            assert stream.status_code == 200
            await _patch(client, tenant, dest["id"], enabled=False)

            async def first_event() -> dict[str, Any]:
                async for line in stream.aiter_lines():
                    if line.startswith("data:"):
                        event: dict[str, Any] = orjson.loads(line[5:])
                        return event
                raise AssertionError("the stream ended")

            event = await asyncio.wait_for(first_event(), timeout=WAIT_S)
    assert event["type"] == "destination.disabled"
    assert event["destination_id"] == dest["id"] and event["delivery_id"] is None
    validate_event(event)
