"""Redmine destinations over the HTTP API: config validated (422 naming the field, a
template that does not compile included), the API key a secret (encrypted at rest,
`<redacted>` in reads, kept on PATCH), and GET /v1/deliveries/{id} and the console's
delivery page showing the ticket."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from courier import kinds
from courier.asgi import create_app
from courier.tenancy import create_tenant
from tests.integration.api.conftest import Tenant, api_settings, serving
from tests.integration.ticketing.conftest import redmine_config, redmine_worker
from tests.support.engine import Engine, run_workers, wait_terminal
from tests.support.redmine import RedmineServer

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def client(db_url: str, secret_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(api_settings(secret_key), db_url)) as c:
        yield c


@pytest.fixture
def api_tenant(conn: psycopg.Connection[Any]) -> Tenant:
    tenant_id, issued = create_tenant(conn, f"tickets-{uuid.uuid4().hex[:8]}")
    return Tenant(tenant_id, issued.key, issued.id)


async def _post(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> httpx.Response:
    body.setdefault("name", "tracker")
    return await client.post("/v1/destinations", json=body, headers=tenant.headers)


def _refusal(response: httpx.Response) -> tuple[str, str]:
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    return str(error["field"]), str(error["message"])


def _config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "base_url": "http://127.0.0.1:3000",
        "api_key": "0123456789abcdef-secret-key",
        "project": "ops",
        "tracker_id": 1,
        "correlation_field_id": 1,
        "correlation_key": "{{ payload.id }}",
        "subject": "{{ payload.title }}",
    }
    config.update(overrides)
    return config


async def test_config_is_validated_naming_the_field(
    client: httpx.AsyncClient, api_tenant: Tenant
) -> None:
    async def refused(**config: Any) -> tuple[str, str]:
        return _refusal(await _post(client, api_tenant, kind="redmine", config=config))

    field, message = await refused(**_config(subject="{{ payload.title "))
    assert field == "config.subject" and "TemplateSyntaxError" in message
    field, _ = await refused(**_config(correlation_key="{% if %}"))
    assert field == "config.correlation_key"
    field, _ = await refused(**_config(custom_fields={"7": "{{ a | nosuchfilter }}"}))
    assert field == "config.custom_fields.7"
    field, _ = await refused(**_config(custom_fields={"x": "a"}))
    assert field.startswith("config.custom_fields")
    field, message = await refused(**_config(resolving_event_types=["incident.resolved"]))
    assert field == "config" and "closed_status_id" in message
    config = _config()
    del config["api_key"]
    assert (await refused(**config))[0] == "config.api_key"
    assert (await refused(**_config(base_url="ftp://h/")))[0] == "config.base_url"
    assert (await refused(**_config(base_url="http://u:p@h/")))[0] == "config.base_url"
    assert (await refused(**_config(tracker_id="1")))[0] == "config.tracker_id"
    response = await _post(client, api_tenant, kind="redmine", url="http://h/", config=_config())
    assert _refusal(response)[0] == "url"


async def test_the_api_key_is_secret_everywhere_and_kept_on_patch(
    client: httpx.AsyncClient, api_tenant: Tenant, conn: psycopg.Connection[Any]
) -> None:
    secret = "0123456789abcdef-secret-key"
    created = await _post(client, api_tenant, kind="redmine", config=_config(api_key=secret))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["kind"] == "redmine" and body["url"] == "http://127.0.0.1:3000"
    assert body["config"]["api_key"] == kinds.SECRET_SHOWN
    assert body["config"]["subject"] == "{{ payload.title }}"
    path = f"/v1/destinations/{body['id']}"
    patched = await client.patch(
        path, json={"config": {"subject": "[x] {{ payload.title }}"}}, headers=api_tenant.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"]["subject"] == "[x] {{ payload.title }}"
    bad = await client.patch(
        path, json={"config": {"note": "{{ broken"}}, headers=api_tenant.headers
    )
    assert _refusal(bad)[0] == "config.note"
    one = await client.get(path, headers=api_tenant.headers)
    audit = await client.get("/v1/audit", headers=api_tenant.headers)
    at_rest = conn.execute("SELECT d::text FROM destinations d").fetchall()
    audit_rows = conn.execute("SELECT a::text FROM audit_records a").fetchall()
    for text in (created.text, patched.text, one.text, audit.text, str(at_rest), str(audit_rows)):
        assert secret not in text
    assert one.json()["config"]["api_key"] == kinds.SECRET_SHOWN


async def test_get_delivery_shows_the_ticket(
    client: httpx.AsyncClient,
    api_tenant: Tenant,
    engine: Engine,
    redmine: RedmineServer,
    project: str,
) -> None:
    config = redmine_config(redmine, project)
    created = await _post(client, api_tenant, kind="redmine", config=config)
    assert created.status_code == 201, created.text
    sent = await client.post(
        "/v1/events",
        json={"type": "incident.opened", "payload": {"incident_id": "A-1", "title": "down"}},
        headers=api_tenant.headers,
    )
    assert sent.status_code == 202, sent.text
    delivery_id = sent.json()["deliveries"][0]["id"]
    before = await client.get(f"/v1/deliveries/{delivery_id}", headers=api_tenant.headers)
    assert before.json()["ticket"] is None
    async with run_workers([redmine_worker(engine)]):
        await wait_terminal(engine.db_url, 1)
    (issue,) = redmine.issues(project)
    read = await client.get(f"/v1/deliveries/{delivery_id}", headers=api_tenant.headers)
    assert read.status_code == 200
    assert read.json()["state"] == "delivered"
    url = f"{redmine.url}/issues/{issue['id']}"
    assert read.json()["ticket"] == {"id": str(issue["id"]), "url": url, "action": "created"}
    # The console's attempt timeline links the succeeded attempt to the ticket.
    form = await client.get("/console/sign-in")
    token = CSRF.search(form.text)
    assert token is not None
    data = {"csrf_token": token.group(1), "api_key": api_tenant.key, "next": ""}
    assert (await client.post("/console/sign-in", data=data)).status_code == 303
    page = await client.get(f"/console/deliveries/{delivery_id}")
    assert page.status_code == 200
    assert f'<a href="{url}" id="ticket" rel="noopener noreferrer">#{issue["id"]}</a>' in page.text
    assert f'created ticket <a href="{url}"' in page.text
