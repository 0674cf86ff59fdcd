"""Destinations over HTTP: create (with its secret, once), read, list, change, delete,
URL and bound validation, and the explicit secret read."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest
from standardwebhooks.webhooks import Webhook

from courier.asgi import create_app
from tests.integration.api.conftest import (
    Tenant,
    api_settings,
    create_destination,
    send_event,
    serving,
)
from tests.support.engine import delivery, make_worker, run_workers, wait_terminal
from tests.support.receiver import Receiver


async def test_create_returns_the_secret_once_and_reads_never_do(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    created = await create_destination(
        client, tenant_a, name="orders", event_types=["order.*"], max_attempts=3
    )
    secret = created["signing_secret"]
    assert secret.startswith("whsec_")
    assert created["name"] == "orders" and created["event_types"] == ["order.*"]
    assert created["max_attempts"] == 3 and created["enabled"] is True
    one = await client.get(f"/v1/destinations/{created['id']}", headers=tenant_a.headers)
    listed = await client.get("/v1/destinations", headers=tenant_a.headers)
    for text in (one.text, listed.text):
        assert secret not in text and "signing_secret" not in text and "token" not in text
    assert one.json() == {k: v for k, v in created.items() if k != "signing_secret"}
    revealed = await client.get(
        f"/v1/destinations/{created['id']}/secret", headers=tenant_a.headers
    )
    assert revealed.status_code == 200
    assert revealed.json()["signing_secret"] == secret
    assert [s["secret"] for s in revealed.json()["secrets"]] == [secret]


async def test_secret_is_encrypted_at_rest_and_its_read_is_audited(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    created = await create_destination(client, tenant_a)
    stored = conn.execute("SELECT signing_secrets::text FROM destinations").fetchone()
    assert stored is not None and created["signing_secret"] not in stored[0]
    await client.get(f"/v1/destinations/{created['id']}/secret", headers=tenant_a.headers)
    audit = (await client.get("/v1/audit", headers=tenant_a.headers)).json()["items"]
    assert [a["action"] for a in audit] == ["destination.secret_read", "destination.created"]
    assert all(a["actor"] == f"api_key:{tenant_a.key_id}" for a in audit)
    assert created["signing_secret"] not in str(audit)


async def test_the_returned_secret_verifies_real_deliveries(
    client: httpx.AsyncClient, db_url: str, secret_key: str, tenant_a: Tenant, receiver: Receiver
) -> None:
    created = await create_destination(client, tenant_a, url=receiver.url("/hook"))
    event = await send_event(client, tenant_a, payload={"order": 7})
    async with run_workers([make_worker(db_url, secret_key)]):
        await wait_terminal(db_url, 1)
    (hit,) = receiver.hits("/hook")
    verified = Webhook(created["signing_secret"]).verify(hit.body, hit.headers)
    assert verified == {"order": 7}
    assert hit.headers["webhook-id"] == event["id"]


async def test_patch_changes_only_what_is_sent(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    created = await create_destination(client, tenant_a, timeout_ms=2000)
    path = f"/v1/destinations/{created['id']}"
    response = await client.patch(
        path,
        json={"enabled": False, "event_types": ["invoice.paid"], "backoff_initial_ms": 200},
        headers=tenant_a.headers,
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["enabled"] is False and changed["event_types"] == ["invoice.paid"]
    assert changed["backoff_initial_ms"] == 200
    assert changed["timeout_ms"] == 2000 and changed["url"] == created["url"]
    assert changed["updated_at"] > created["updated_at"]
    url = await client.patch(
        path, json={"url": "https://example.org/new"}, headers=tenant_a.headers
    )
    assert url.json()["url"] == "https://example.org/new"
    audit = (await client.get("/v1/audit", headers=tenant_a.headers)).json()["items"]
    assert audit[0]["action"] == "destination.updated" and audit[0]["data"] == {"changed": ["url"]}
    assert audit[1]["data"] == {"changed": ["backoff_initial_ms", "enabled", "event_types"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 101}, "max_attempts"),
        ({"timeout_ms": 99}, "timeout_ms"),
        ({"timeout_ms": 300_001}, "timeout_ms"),
        ({"backoff_initial_ms": 50}, "backoff_initial_ms"),
        ({"max_age_seconds": 0}, "max_age_seconds"),
        ({"name": ""}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"event_types": ["bad type"]}, "event_types.0"),
        ({"enabled": None}, "enabled"),
        ({"colour": "blue"}, "colour"),
        ({"enabled": 0}, "enabled"),
        ({"max_attempts": "3"}, "max_attempts"),
    ],
)
async def test_out_of_bounds_values_are_422_naming_the_field(
    client: httpx.AsyncClient, tenant_a: Tenant, body: dict[str, Any], field: str
) -> None:
    create = await client.post(
        "/v1/destinations",
        json={"name": "x", "url": "https://example.com/", **body},
        headers=tenant_a.headers,
    )
    assert create.status_code == 422, create.text
    assert create.headers["content-type"] == "application/problem+json"
    problem = create.json()
    assert problem["status"] == 422 and problem["title"] and problem["detail"]
    assert field in [e["field"] for e in problem["errors"]], problem
    created = await create_destination(client, tenant_a)
    patch = await client.patch(
        f"/v1/destinations/{created['id']}", json=body, headers=tenant_a.headers
    )
    assert patch.status_code == 422, patch.text
    assert field in [e["field"] for e in patch.json()["errors"]], patch.json()


async def test_backoff_max_below_initial_is_refused_also_against_the_stored_value(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    created = await create_destination(
        client, tenant_a, backoff_initial_ms=1000, backoff_max_ms=5000
    )
    response = await client.patch(
        f"/v1/destinations/{created['id']}", json={"backoff_max_ms": 500}, headers=tenant_a.headers
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["backoff_max_ms"]
    both = await client.post(
        "/v1/destinations",
        json={
            "name": "x",
            "url": "https://e.com/",
            "backoff_initial_ms": 900,
            "backoff_max_ms": 800,
        },
        headers=tenant_a.headers,
    )
    assert both.status_code == 422


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://hooks.example.com/in", True),
        ("https://hooks.example.com:8443/in?x=1", True),
        ("http://hooks.example.com/in", False),
        ("ftp://hooks.example.com/in", False),
        ("https://user:pw@hooks.example.com/in", False),
        ("https://token@hooks.example.com/in", False),
        ("https://127.0.0.1/in", False),
        ("https://10.1.2.3/in", False),
        ("https://[::1]/in", False),
        ("https://169.254.169.254/latest", False),
        ("https://localhost/in", False),
        ("https:///nohost", False),
        ("not a url", False),
        ("https://example.com:99999/", False),
    ],
)
async def test_destination_urls_are_validated(
    db_url: str, secret_key: str, tenant_a: Tenant, url: str, accepted: bool
) -> None:
    strict = create_app(api_settings(secret_key, allow_private_destinations=False), db_url)
    async with serving(strict) as client:
        response = await client.post(
            "/v1/destinations", json={"name": "x", "url": url}, headers=tenant_a.headers
        )
    if accepted:
        assert response.status_code == 201, response.text
    else:
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["url"]


async def test_private_destinations_are_allowed_when_configured(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    created = await create_destination(client, tenant_a, url="http://127.0.0.1:9/hook")
    assert created["url"] == "http://127.0.0.1:9/hook"
    bad = await client.post(
        "/v1/destinations",
        json={"name": "x", "url": "http://u:p@127.0.0.1/"},
        headers=tenant_a.headers,
    )
    assert bad.status_code == 422


async def test_deleted_destination_is_gone_and_its_waiting_deliveries_fail_safely(
    client: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    tenant_a: Tenant,
    receiver: Receiver,
) -> None:
    created = await create_destination(client, tenant_a, url=receiver.url("/gone"))
    event = await send_event(client, tenant_a)
    path = f"/v1/destinations/{created['id']}"
    deleted = await client.delete(path, headers=tenant_a.headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await client.get(path, headers=tenant_a.headers)).status_code == 404
    assert (await client.delete(path, headers=tenant_a.headers)).status_code == 404
    listed = (await client.get("/v1/destinations", headers=tenant_a.headers)).json()
    assert listed["items"] == []
    async with run_workers([make_worker(db_url, secret_key)]):
        await wait_terminal(db_url, 1)
    row = delivery(conn, event["deliveries"][0]["id"])
    assert row["state"] == "failed" and row["failure_reason"] == "destination_missing"
    assert receiver.hits() == []
    # and new events no longer fan out to it
    assert (await send_event(client, tenant_a))["deliveries"] == []
