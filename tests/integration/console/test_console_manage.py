"""Destination self-service in the console, over HTTP: an operator creates, edits,
disables, enables, rotates and deletes; every change is audited as the session; a
scoped link reaches only its own destinations (and one it creates joins them); forms
without the session's CSRF token, and bad fields, are refused."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from fastapi import FastAPI
from psycopg.rows import dict_row

from courier.asgi import create_app
from courier.tenancy import create_tenant
from tests.integration.api.conftest import BASE_URL, Tenant, api_settings, serving
from tests.support.engine import make_worker, run_workers, wait_terminal
from tests.support.receiver import Receiver

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET = re.compile(r'id="signing-secret" class="secret">(whsec_[A-Za-z0-9+/=]+)<')
FORM = {
    "name": "orders",
    "url": "https://example.com/orders",
    "max_attempts": "5",
    "timeout_ms": "3000",
    "backoff_initial_ms": "1000",
    "backoff_max_ms": "60000",
}


@pytest.fixture
def app(db_url: str, secret_key: str) -> FastAPI:
    return create_app(api_settings(secret_key), db_url)


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app) as client:
        yield client


def _tenant(conn: psycopg.Connection[Any]) -> Tenant:
    tenant_id, issued = create_tenant(conn, f"acme-{uuid.uuid4().hex[:6]}")
    return Tenant(tenant_id, issued.key, issued.id)


def _row(conn: psycopg.Connection[Any], destination_id: Any) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM destinations WHERE id = %s", (destination_id,)).fetchone()
    assert row is not None
    return row


async def _sign_in(api: httpx.AsyncClient, tenant: Tenant, **link: Any) -> str:
    """Open an operator link in a fresh cookie jar; answers the session's CSRF token."""
    created = await api.post(
        "/v1/portal-sessions", json={"role": "operator", **link}, headers=tenant.headers
    )
    assert created.status_code == 201, created.text
    api.cookies.clear()
    opened = await api.get(created.json()["url"][len(BASE_URL) :], follow_redirects=True)
    assert opened.status_code == 200
    found = TOKEN.search(opened.text)
    assert found is not None
    return found.group(1)


async def test_an_operator_manages_a_destination_from_creation_to_deletion(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    await api.put(
        "/v1/event-types/order.created", json={"description": "an order"}, headers=acme.headers
    )
    csrf = await _sign_in(api, acme)
    form_page = await api.get("/console/destinations/new")
    assert form_page.status_code == 200
    assert 'value="order.created"' in form_page.text  # the catalog, as checkboxes

    created = await api.post(
        "/console/destinations",
        data={
            **FORM,
            "csrf_token": csrf,
            "event_types": "order.created",
            "more_event_types": "refund.*",
        },
    )
    assert created.status_code == 200, created.text
    shown = SECRET.search(created.text)
    assert shown is not None  # the secret, once
    (dest_id,) = (
        conn.execute("SELECT id FROM destinations WHERE tenant_id = %s", (acme.id,)).fetchone()
        or ()
    )
    row = _row(conn, dest_id)
    assert (row["name"], row["url"], row["event_types"]) == (
        "orders",
        "https://example.com/orders",
        ["order.created", "refund.*"],
    )
    assert (row["max_attempts"], row["timeout_ms"], row["backoff_initial_ms"]) == (5, 3000, 1000)
    assert shown.group(1) not in str(row["signing_secrets"])  # encrypted at rest
    detail = await api.get(f"/console/integrations/{dest_id}")
    assert shown.group(1) not in detail.text  # never shown again
    assert 'id="manage"' in detail.text

    edit = await api.get(f"/console/integrations/{dest_id}/edit")
    assert 'value="orders"' in edit.text and 'value="refund.*"' in edit.text
    saved = await api.post(
        f"/console/integrations/{dest_id}/edit",
        data={**FORM, "csrf_token": csrf, "name": "orders v2", "max_attempts": "9"},
    )
    assert saved.status_code == 303
    row = _row(conn, dest_id)
    assert (row["name"], row["max_attempts"], row["event_types"]) == ("orders v2", 9, [])
    (changed,) = conn.execute(
        "SELECT data->'changed' FROM audit_records WHERE action = 'destination.updated'"
    ).fetchone() or (None,)
    assert changed == ["event_types", "max_attempts", "name"]  # what differs, not all sent
    unchanged = await api.post(
        f"/console/integrations/{dest_id}/edit",
        data={**FORM, "csrf_token": csrf, "name": "orders v2", "max_attempts": "9"},
    )
    assert unchanged.status_code == 303  # nothing differs: nothing written, nothing audited

    for action in ("disable", "enable"):
        answer = await api.post(
            f"/console/integrations/{dest_id}/{action}", data={"csrf_token": csrf}
        )
        assert answer.status_code == 303
        assert _row(conn, dest_id)["enabled"] is (action == "enable")
    events = conn.execute(
        "SELECT type, data->>'reason' FROM lifecycle_events WHERE destination_id = %s ORDER BY seq",
        (dest_id,),
    ).fetchall()
    assert events == [("destination.disabled", "manual"), ("destination.enabled", "manual")]

    rotated = await api.post(
        f"/console/integrations/{dest_id}/rotate-secret", data={"csrf_token": csrf}
    )
    new_secret = SECRET.search(rotated.text)
    assert new_secret is not None and new_secret.group(1) != shown.group(1)
    assert len(_row(conn, dest_id)["signing_secrets"]) == 2  # the old one signs for a while

    confirm = await api.get(f"/console/integrations/{dest_id}/delete")
    assert 'id="confirm-delete"' in confirm.text
    assert _row(conn, dest_id)["deleted_at"] is None  # asking is not deleting
    deleted = await api.post(f"/console/integrations/{dest_id}/delete", data={"csrf_token": csrf})
    assert deleted.status_code == 303 and deleted.headers["location"] == "/console/integrations"
    assert _row(conn, dest_id)["deleted_at"] is not None
    assert (await api.get(f"/console/integrations/{dest_id}/edit")).status_code == 404

    audit = conn.execute(
        "SELECT action, actor FROM audit_records WHERE destination_id = %s ORDER BY created_at, id",
        (dest_id,),
    ).fetchall()
    assert [a for a, _ in audit] == [
        "destination.created",
        "destination.updated",
        "destination.updated",
        "destination.updated",
        "destination.secret_rotated",
        "destination.deleted",
    ]
    assert {actor for _, actor in audit} == {audit[0][1]}
    assert audit[0][1].startswith("portal:")


async def test_a_scoped_operator_reaches_only_its_destinations(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    mine = conn.execute(
        "INSERT INTO destinations (tenant_id, name, url) VALUES (%s, 'mine', 'https://a.example')"
        " RETURNING id",
        (acme.id,),
    ).fetchone()
    theirs = conn.execute(
        "INSERT INTO destinations (tenant_id, name, url) VALUES (%s, 'theirs', 'https://b.example')"
        " RETURNING id",
        (acme.id,),
    ).fetchone()
    assert mine is not None and theirs is not None
    csrf = await _sign_in(api, acme, destination_ids=[str(mine[0])])
    before = _row(conn, theirs[0])
    for action in ("edit", "enable", "disable", "rotate-secret", "delete"):
        path = f"/console/integrations/{theirs[0]}/{action}"
        answer = await api.post(path, data={**FORM, "csrf_token": csrf})
        assert answer.status_code == 404, path
        assert "theirs" not in answer.text
    for page in ("edit", "delete"):
        assert (await api.get(f"/console/integrations/{theirs[0]}/{page}")).status_code == 404
    assert _row(conn, theirs[0]) == before

    created = await api.post("/console/destinations", data={**FORM, "csrf_token": csrf})
    assert created.status_code == 200
    listing = await api.get("/console/integrations")
    assert "orders" in listing.text and "mine" in listing.text and "theirs" not in listing.text


async def test_forms_need_the_sessions_token_and_valid_fields(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    csrf = await _sign_in(api, acme)
    forged = await api.post("/console/destinations", data={**FORM, "csrf_token": "forged"})
    assert forged.status_code == 403
    for field, value in (
        ("max_attempts", "0"),
        ("max_attempts", "lots"),
        ("url", "ftp://example.com/x"),
        ("more_event_types", "bad type!"),
        ("backoff_max_ms", "100"),
        ("url", ""),
        ("name", ""),
    ):
        answer = await api.post(
            "/console/destinations", data={**FORM, field: value, "csrf_token": csrf}
        )
        assert answer.status_code == 422, (field, value, answer.text)
        # the form again, the message beside the field it names
        shown = "event_types" if field == "more_event_types" else field
        assert f'class="field-error" role="alert" data-field="{shown}' in answer.text, field
        assert 'id="destination-form"' in answer.text
    assert conn.execute("SELECT count(*) FROM destinations").fetchone() == (0,)


async def test_an_api_key_session_manages_destinations_too(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    form = await api.get("/console/sign-in")
    token = TOKEN.search(form.text)
    assert token is not None
    signed_in = await api.post(
        "/console/sign-in", data={"csrf_token": token.group(1), "api_key": acme.key}
    )
    assert signed_in.status_code == 303
    page = await api.get("/console/integrations")
    assert 'id="new-destination"' in page.text
    csrf = TOKEN.search(page.text)
    assert csrf is not None
    created = await api.post("/console/destinations", data={**FORM, "csrf_token": csrf.group(1)})
    assert created.status_code == 200 and SECRET.search(created.text) is not None
    (actor,) = conn.execute(
        "SELECT actor FROM audit_records WHERE action = 'destination.created'"
    ).fetchone() or (None,)
    assert actor == f"console:{acme.key_id}"


async def test_a_broker_destinations_form_changes_its_settings_not_its_address(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    found = conn.execute(
        "INSERT INTO destinations (tenant_id, name, url, kind, config)"
        " VALUES (%s, 'queue', 'amqp://broker.example/', 'rabbitmq',"
        ' \'{"exchange": "orders"}\') RETURNING id',
        (acme.id,),
    ).fetchone()
    assert found is not None
    csrf = await _sign_in(api, acme)
    edit = await api.get(f"/console/integrations/{found[0]}/edit")
    assert 'name="url"' not in edit.text and "amqp://broker.example/" in edit.text
    form = {k: v for k, v in FORM.items() if k != "url"}
    saved = await api.post(
        f"/console/integrations/{found[0]}/edit", data={**form, "csrf_token": csrf}
    )
    assert saved.status_code == 303, saved.text
    row = _row(conn, found[0])
    assert (row["name"], row["url"], row["config"]) == (
        "orders",
        "amqp://broker.example/",
        {"exchange": "orders"},
    )


async def test_an_operator_sends_a_test_event_and_watches_it_arrive(
    api: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    receiver: Receiver,
) -> None:
    acme = _tenant(conn)
    made = await api.post(
        "/v1/destinations",
        json={"name": "hook", "url": receiver.url("/hook"), "event_types": ["order.*"]},
        headers=acme.headers,
    )
    assert made.status_code == 201, made.text
    dest_id = made.json()["id"]
    csrf = await _sign_in(api, acme)
    page = await api.get(f"/console/integrations/{dest_id}")
    assert 'id="send-test"' in page.text

    sent = await api.post(f"/console/integrations/{dest_id}/send-test", data={"csrf_token": csrf})
    assert sent.status_code == 303
    delivery_path = sent.headers["location"]
    assert delivery_path.startswith("/console/deliveries/")
    async with run_workers([make_worker(db_url, secret_key)]):
        await wait_terminal(db_url, 1)
    (hit,) = receiver.hits()
    assert hit.path == "/hook" and orjson.loads(hit.body)["type"] == "courier.test"
    watched = await api.get(delivery_path)
    assert watched.status_code == 200 and "delivered" in watched.text
    assert conn.execute(
        "SELECT count(*) FROM audit_records WHERE action = 'destination.test_sent'"
    ).fetchone() == (1,)

    # A disabled destination says why instead of sending; a viewer cannot send at all.
    await api.post(f"/console/integrations/{dest_id}/disable", data={"csrf_token": csrf})
    refused = await api.post(
        f"/console/integrations/{dest_id}/send-test", data={"csrf_token": csrf}
    )
    assert refused.status_code == 422 and "enable it first" in refused.text
    viewer = await api.post("/v1/portal-sessions", json={"role": "viewer"}, headers=acme.headers)
    api.cookies.clear()
    opened = await api.get(viewer.json()["url"][len(BASE_URL) :], follow_redirects=True)
    token = TOKEN.search(opened.text)
    answer = await api.post(
        f"/console/integrations/{dest_id}/send-test",
        data={"csrf_token": token.group(1) if token else ""},
    )
    assert answer.status_code == 403
    assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)  # nothing more


async def test_an_operator_sends_a_catalog_example_as_the_test_event(
    api: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    receiver: Receiver,
) -> None:
    acme = _tenant(conn)
    example = {"id": "ord_1", "amount": 120, "note": "<b>bold</b>"}
    put = await api.put(
        "/v1/event-types/order.created",
        json={
            "description": "an order was placed",
            "schema": {"type": "object", "examples": [{"id": "ord_2", "amount": 5}]},
            "example": example,
        },
        headers=acme.headers,
    )
    assert put.status_code == 201, put.text
    await api.put(
        "/v1/event-types/invoice.paid",
        json={"example": {"invoice": "inv_1"}},
        headers=acme.headers,
    )
    made = await api.post(
        "/v1/destinations",
        json={"name": "hook", "url": receiver.url("/hook"), "event_types": ["order.*"]},
        headers=acme.headers,
    )
    dest_id = made.json()["id"]
    csrf = await _sign_in(api, acme)
    page = await api.get(f"/console/integrations/{dest_id}")
    # its types' examples and schema, escaped; not the types it does not take
    assert 'data-event-type="order.created"' in page.text
    assert 'data-event-type="invoice.paid"' not in page.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in page.text and "ord_2" in page.text
    assert page.text.count('class="send-example"') == 2
    catalog = await api.get("/console/event-types")
    assert "ord_2" in catalog.text and "inv_1" in catalog.text

    sent = await api.post(
        f"/console/integrations/{dest_id}/send-test",
        data={"csrf_token": csrf, "event_type": "order.created", "example": "0"},
    )
    assert sent.status_code == 303, sent.text
    async with run_workers([make_worker(db_url, secret_key)]):
        await wait_terminal(db_url, 1)
    (hit,) = receiver.hits()
    assert orjson.loads(hit.body) == example
    assert hit.headers["courier-event-type"] == "order.created"
    audit = conn.execute(
        "SELECT actor, data->>'event_type' FROM audit_records"
        " WHERE action = 'destination.test_sent'"
    ).fetchone()
    assert audit is not None and audit[1] == "order.created" and audit[0].startswith("portal:")

    for data, field in (
        ({"event_type": "order.created", "example": "7"}, "Invalid example"),
        ({"event_type": "nope.never", "example": "0"}, "Invalid event_type"),
        ({"event_type": "order.created", "example": "x"}, "Invalid example"),
    ):
        refused = await api.post(
            f"/console/integrations/{dest_id}/send-test", data={"csrf_token": csrf, **data}
        )
        assert refused.status_code == 422 and field in refused.text, (data, refused.text)
    assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)

    viewer = await api.post("/v1/portal-sessions", json={"role": "viewer"}, headers=acme.headers)
    api.cookies.clear()
    await api.get(viewer.json()["url"][len(BASE_URL) :], follow_redirects=True)
    seen = await api.get(f"/console/integrations/{dest_id}")
    assert 'data-event-type="order.created"' in seen.text  # a viewer reads the examples
    assert 'class="send-example"' not in seen.text  # and cannot send one
