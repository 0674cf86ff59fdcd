"""Keyset pagination: stable while rows are being inserted, no row skipped or repeated."""

from __future__ import annotations

import uuid

import httpx

from tests.integration.api.conftest import Tenant, create_destination, send_event


async def test_paging_while_inserting_skips_and_repeats_nothing(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    await create_destination(client, tenant_a)
    before = [(await send_event(client, tenant_a))["deliveries"][0]["id"] for _ in range(23)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/deliveries", params=params, headers=tenant_a.headers)).json()
        seen.extend(d["id"] for d in page["items"])
        pages += 1
        # new rows arrive between every two pages
        for _ in range(3):
            await send_event(client, tenant_a)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert sorted(seen) == sorted(before), "a row was skipped, or a new one slipped in"
    assert seen == sorted(seen, key=uuid.UUID, reverse=True), "not newest first"


async def test_default_and_bounded_limits(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    for _ in range(3):
        await create_destination(client, tenant_a)
    everything = (await client.get("/v1/destinations", headers=tenant_a.headers)).json()
    assert len(everything["items"]) == 3 and everything["next_cursor"] is None
    first = (await client.get("/v1/destinations?limit=2", headers=tenant_a.headers)).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = (
        await client.get(
            "/v1/destinations",
            params={"limit": 2, "cursor": first["next_cursor"]},
            headers=tenant_a.headers,
        )
    ).json()
    assert [d["id"] for d in first["items"] + rest["items"]] == [
        d["id"] for d in everything["items"]
    ]
    assert rest["next_cursor"] is None


async def test_a_cursor_of_one_list_is_refused_by_another(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    await create_destination(client, tenant_a)
    for _ in range(2):
        await send_event(client, tenant_a)
    deliveries = (await client.get("/v1/deliveries?limit=1", headers=tenant_a.headers)).json()
    delivery_id = deliveries["items"][0]["id"]
    attempts = await client.get(
        f"/v1/deliveries/{delivery_id}/attempts",
        params={"cursor": deliveries["next_cursor"]},
        headers=tenant_a.headers,
    )
    assert attempts.status_code == 422
    assert attempts.json()["errors"][0]["field"] == "cursor"
