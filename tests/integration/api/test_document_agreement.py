"""What the OpenAPI document allows, the API accepts: the cases Schemathesis found where a
schema-valid request was refused, each pinned here on its own (the Schemathesis run in
test_schemathesis.py finds them again only by chance)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import psycopg

from courier.asgi import create_app
from courier.web.destination_input import URL_PATTERN
from tests.integration.api.conftest import Tenant, api_settings, create_destination, send_event
from tests.integration.observability.conftest import uvicorn_serving
from tests.integration.operations.conftest import finish

ID_CURSOR = "ffffffff-ffff-4fff-bfff-ffffffffffff"  # matches the pattern, names no row


async def test_any_cursor_matching_its_pattern_is_accepted(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    dest = await create_destination(client, tenant_a)
    (delivery,) = (await send_event(client, tenant_a))["deliveries"]
    for path, cursor in [
        ("/v1/destinations", ID_CURSOR),
        ("/v1/deliveries", ID_CURSOR.upper()),
        ("/v1/dead-letters", ID_CURSOR),
        ("/v1/audit", "00000000-0000-0000-0000-000000000000"),
        (f"/v1/deliveries/{delivery['id']}/attempts", "999999999"),
        ("/v1/delivery-events", "99999999999999999999.9999999999999999999"),
    ]:
        name = "after" if path == "/v1/delivery-events" else "cursor"
        page = await client.get(path, params={name: cursor}, headers=tenant_a.headers)
        assert page.status_code == 200, (path, page.text)
    # the walk continues from an issued cursor; one from another list is refused
    first = await client.get("/v1/destinations", params={"limit": 1}, headers=tenant_a.headers)
    assert first.json()["items"][0]["id"] == dest["id"]
    wrong = await client.get(
        f"/v1/deliveries/{delivery['id']}/attempts",
        params={"cursor": dest["id"]},
        headers=tenant_a.headers,
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "cursor"


async def test_issued_cursors_match_the_documented_patterns(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    await create_destination(client, tenant_a)
    await create_destination(client, tenant_a)
    await send_event(client, tenant_a)
    page = await client.get("/v1/destinations", params={"limit": 1}, headers=tenant_a.headers)
    document = (await client.get("/openapi.json")).json()
    params = {p["name"]: p for p in document["paths"]["/v1/destinations"]["get"]["parameters"]}
    assert re.fullmatch(params["cursor"]["schema"]["pattern"], page.json()["next_cursor"])
    # (feed cursors: tests/unit/test_document_patterns.py; the feed may hold events back
    # while any transaction on the server is open, so it is not read here)


async def test_patch_takes_null_only_where_the_document_allows_it(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    dest = await create_destination(client, tenant_a, rate_limit_per_second=5)
    path = f"/v1/destinations/{dest['id']}"
    cleared = await client.patch(
        path, json={"rate_limit_per_second": None}, headers=tenant_a.headers
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["rate_limit_per_second"] is None
    document = (await client.get("/openapi.json")).json()
    fields = document["components"]["schemas"]["DestinationUpdate"]["properties"]
    for name, schema in fields.items():
        nullable = {"type": "null"} in schema.get("anyOf", [])
        answer = await client.patch(path, json={name: None}, headers=tenant_a.headers)
        assert (answer.status_code == 200) == nullable, (name, answer.text)


async def test_whole_number_floats_are_integers(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    dest = await create_destination(client, tenant_a, max_attempts=3.0)
    assert dest["max_attempts"] == 3
    rotated = await client.post(
        f"/v1/destinations/{dest['id']}/rotate-secret",
        json={"grace_period_seconds": 524288.0},
        headers=tenant_a.headers,
    )
    assert rotated.status_code == 200, rotated.text
    fraction = await client.post(
        f"/v1/destinations/{dest['id']}/rotate-secret",
        json={"grace_period_seconds": 1.5},
        headers=tenant_a.headers,
    )
    assert fraction.status_code == 422
    assert fraction.json()["errors"][0]["field"] == "grace_period_seconds"


async def test_bounds_are_the_documented_ones(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    document = (await client.get("/openapi.json")).json()
    most = document["components"]["schemas"]["DestinationCreate"]["properties"]["backoff_max_ms"]
    top = await create_destination(client, tenant_a, backoff_max_ms=most["maximum"])
    assert top["backoff_max_ms"] == most["maximum"]
    over = await client.post(
        "/v1/destinations",
        json={"name": "x", "url": "https://example.com/", "backoff_max_ms": most["maximum"] + 1},
        headers=tenant_a.headers,
    )
    assert over.status_code == 422 and over.json()["errors"][0]["field"] == "backoff_max_ms"


async def test_an_empty_window_is_accepted_and_an_inverted_one_refused(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    dest = await create_destination(client, tenant_a)
    (delivery,) = (await send_event(client, tenant_a))["deliveries"]
    finish(conn, tenant_a.id, uuid.UUID(delivery["id"]), "dead_lettered")
    at, before = "2025-01-01T12:00:00Z", "2025-01-01T11:00:00Z"
    for path in (f"/v1/destinations/{dest['id']}/recover", "/v1/dead-letters/replay"):
        empty = await client.post(path, json={"since": at, "until": at}, headers=tenant_a.headers)
        assert empty.status_code == 200, (path, empty.text)
        assert empty.json()["count"] == 0
        inverted = await client.post(
            path, json={"since": at, "until": before, "dry_run": True}, headers=tenant_a.headers
        )
        assert inverted.status_code == 422, (path, inverted.text)
        assert inverted.json()["errors"][0]["field"] == "until"


async def test_a_url_matching_the_pattern_is_accepted(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    for url in ("https://a.b:65535/x?y#z", "https://example.com", "https://x-1.io/%20"):
        assert re.fullmatch(URL_PATTERN, url), url
        await create_destination(client, tenant_a, url=url)
    for url in ("https://localhost/x", "https://10.0.0.1/", "http://example.com/"):
        assert not re.fullmatch(URL_PATTERN, url), url


async def test_the_stream_answers_as_documented(
    db_url: str, secret_key: str, client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    await create_destination(client, tenant_a)
    await send_event(client, tenant_a)
    app = create_app(api_settings(secret_key), db_url)
    async with uvicorn_serving(app) as base, httpx.AsyncClient(base_url=base) as live:
        path = "/v1/delivery-events/stream"
        bad = await live.get(path, params={"after": "nope"}, headers=tenant_a.headers)
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        # an empty Last-Event-ID is no Last-Event-ID: the stream opens (from the start)
        headers = {**tenant_a.headers, "Last-Event-ID": ""}
        async with live.stream("GET", path, headers=headers, timeout=20) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            first = await anext(stream.aiter_lines())
    assert first == "retry: 2000"
