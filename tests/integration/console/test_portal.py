"""One-time portal links: created by the API, opened once in the console, with a role
and a destination scope that every console page, form and the live stream respect."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from courier import console
from courier.asgi import create_app
from courier.enqueue import enqueue_event
from courier.metrics import CourierMetrics
from courier.tenancy import create_tenant
from courier.web.event_stream import StreamConfig
from courier.web.state import state_of
from tests.integration.api.conftest import BASE_URL, Tenant, api_settings, serving
from tests.integration.observability.conftest import uvicorn_serving

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
WAIT_S = 20.0  # upper bound for the stream to show what it should


@pytest.fixture
def app(db_url: str, secret_key: str) -> FastAPI:
    return create_app(api_settings(secret_key), db_url)


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app) as client:
        yield client


def _tenant(conn: psycopg.Connection[Any], name: str = "acme") -> Tenant:
    tenant_id, issued = create_tenant(conn, f"{name}-{uuid.uuid4().hex[:6]}")
    return Tenant(tenant_id, issued.key, issued.id)


def _destination(conn: psycopg.Connection[Any], tenant: Tenant, name: str, url: str) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO destinations (tenant_id, name, url) VALUES (%s, %s, %s) RETURNING id",
        (tenant.id, name, url),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _delivery(
    conn: psycopg.Connection[Any], tenant: Tenant, dest: uuid.UUID, state: str, attempts: int
) -> uuid.UUID:
    """A delivery in `state` with `attempts` finished attempts (written directly)."""
    dead = state == "dead_lettered"
    row = conn.execute(
        "WITH e AS (INSERT INTO events (tenant_id, type, payload)"
        "  VALUES (%(t)s, 'order.created', '{}') RETURNING id)"
        " INSERT INTO deliveries (tenant_id, event_id, destination_id, state, attempt_count,"
        "   next_attempt_at, dead_letter_reason, dead_lettered_at, delivered_at)"
        " SELECT %(t)s, id, %(d)s, %(state)s, %(n)s,"
        "   CASE WHEN %(dead)s OR %(state)s = 'delivered' THEN NULL ELSE now() END,"
        "   CASE WHEN %(dead)s THEN 'max_attempts_exhausted' END,"
        "   CASE WHEN %(dead)s THEN now() END,"
        "   CASE WHEN %(state)s = 'delivered' THEN now() END FROM e"
        " RETURNING id, event_id",
        {"t": tenant.id, "d": dest, "state": state, "n": attempts, "dead": dead},
    ).fetchone()
    assert row is not None
    delivery_id, event_id = row
    for number in range(1, attempts + 1):
        ok = state == "delivered" and number == attempts
        conn.execute(
            "INSERT INTO delivery_attempts (tenant_id, delivery_id, event_id, destination_id,"
            "  attempt_number, worker_id, finished_at, duration_ms, http_status, retryable,"
            "  outcome, error_summary)"
            " VALUES (%s, %s, %s, %s, %s, 'w', now(), 5, %s, %s, %s, %s)",
            (
                tenant.id,
                delivery_id,
                event_id,
                dest,
                number,
                200 if ok else 503,
                not ok,
                "succeeded" if ok else "retryable_failure",
                None if ok else "HTTP 503",
            ),
        )
    return uuid.UUID(str(delivery_id))


async def _link(api: httpx.AsyncClient, tenant: Tenant, **body: Any) -> str:
    created = await api.post("/v1/portal-sessions", json=body, headers=tenant.headers)
    assert created.status_code == 201, created.text
    url: str = created.json()["url"]
    assert url.startswith(f"{BASE_URL}/console/portal/")
    return url[len(BASE_URL) :]


async def _open(api: httpx.AsyncClient, path: str) -> httpx.Response:
    """Open a link in a fresh browser (cookie jar), which keeps the session it gets."""
    api.cookies.clear()
    return await api.get(path)


async def test_a_link_signs_in_once_and_then_reads_as_used(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    created = await api.post("/v1/portal-sessions", json={"role": "viewer"}, headers=acme.headers)
    assert created.status_code == 201
    assert set(created.json()) == {"id", "url", "expires_at"}
    path = created.json()["url"][len(BASE_URL) :]
    token = path.rsplit("/", 1)[1]
    stored = conn.execute("SELECT token_hash FROM portal_sessions").fetchall()
    assert len(stored) == 1 and token.encode() not in bytes(stored[0][0])  # only its hash

    opened = await _open(api, path)
    assert opened.status_code == 303 and opened.headers["location"] == "/console/integrations"
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and token not in cookie
    page = await api.get("/console/integrations")
    assert page.status_code == 200 and acme.key not in page.text and "read-only" in page.text

    again = await _open(api, path)
    assert again.status_code == 410 and "already been used" in again.text
    assert "courier_console=" not in again.headers.get("set-cookie", "")
    assert (await api.get("/console/integrations")).status_code == 303  # no session


@pytest.mark.parametrize(
    "path",
    [
        "/console/portal/" + "A" * 43,  # well-formed, never issued
        "/console/portal/x",  # malformed
        "/console/portal/" + "é" * 30,
        "/console/portal/" + "a" * 5000,
    ],
)
async def test_a_forged_link_is_not_valid(api: httpx.AsyncClient, path: str) -> None:
    answer = await _open(api, path)
    assert answer.status_code == 404 and "not valid" in answer.text


async def test_an_expired_link_says_so(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    path = await _link(api, acme, role="operator", expires_in_seconds=60)
    conn.execute("UPDATE portal_sessions SET expires_at = now() - interval '1 second'")
    answer = await _open(api, path)
    assert answer.status_code == 410 and "expired" in answer.text
    assert (await api.get("/console/integrations")).status_code == 303


async def test_creating_a_link_checks_its_fields(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme, other = _tenant(conn), _tenant(conn, "other")
    mine = _destination(conn, acme, "mine", "http://127.0.0.1:9/mine")
    theirs = _destination(conn, other, "theirs", "http://127.0.0.1:9/theirs")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"role": "viewer", "destination_ids": [str(mine), str(theirs)]}, "destination_ids[1]"),
        ({"role": "viewer", "destination_ids": [str(uuid.uuid4())]}, "destination_ids[0]"),
        ({"role": "viewer", "destination_ids": ["nope"]}, "destination_ids.0"),
        ({"role": "admin"}, "role"),
        ({"role": "viewer", "expires_in_seconds": 3601}, "expires_in_seconds"),
        ({"role": "viewer", "expires_in_seconds": 0}, "expires_in_seconds"),
        ({}, "role"),
    ]
    for body, field in cases:
        answer = await api.post("/v1/portal-sessions", json=body, headers=acme.headers)
        assert answer.status_code == 422, body
        assert answer.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in answer.json()["errors"]], (body, answer.json())
    unauthenticated = await api.post("/v1/portal-sessions", json={"role": "viewer"})
    assert unauthenticated.status_code == 401
    assert conn.execute("SELECT count(*) FROM portal_sessions").fetchone() == (0,)


def _console_posts() -> list[str]:
    """Every POST route of the console, as its path template."""
    return sorted(
        route.path
        for router in console.routers()
        for route in router.routes
        if isinstance(route, APIRoute) and "POST" in route.methods
    )


async def test_a_viewer_reaches_no_write_form_or_action(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    dest = _destination(conn, acme, "ledger", "http://127.0.0.1:9/ledger")
    dead = _delivery(conn, acme, dest, "dead_lettered", 2)
    await _open(api, await _link(api, acme, role="viewer"))
    page = await api.get(f"/console/deliveries/{dead}")
    assert page.status_code == 200 and "ledger" in page.text
    assert 'action="/console/deliveries' not in page.text and 'id="replay"' not in page.text
    letters = await api.get("/console/dead-letters")
    assert str(dead)[-12:] in letters.text
    assert "/replay" not in letters.text  # neither replay one nor "Replay all matching…"
    assert (await api.get("/console/dead-letters/replay")).status_code == 403

    csrf = TOKEN.search(page.text)
    assert csrf is not None  # the sign-out form: a valid token does not make a viewer a writer
    posts = _console_posts()
    session_routes = {"/console/sign-in", "/console/sign-out"}  # not actions on any data
    actions = [p for p in posts if p not in session_routes]
    assert actions == [
        "/console/dead-letters/replay",
        "/console/deliveries/{delivery_id}/replay",
        "/console/destinations",
        "/console/integrations/{destination_id}/delete",
        "/console/integrations/{destination_id}/disable",
        "/console/integrations/{destination_id}/edit",
        "/console/integrations/{destination_id}/enable",
        "/console/integrations/{destination_id}/rotate-secret",
        "/console/integrations/{destination_id}/send-test",
    ]
    before = conn.execute("SELECT * FROM destinations WHERE id = %s", (dest,)).fetchone()
    for template in actions:
        path = template.replace("{delivery_id}", str(dead)).replace("{destination_id}", str(dest))
        form = {
            "csrf_token": csrf.group(1),
            "replay_token": "abc",
            "destination_id": str(dest),
            "name": "taken over",
            "url": "https://example.com/evil",
            # the delivery options and a catalog example: refused like the rest
            "options_form": "1",
            "header_name": "X-Evil",
            "header_value": "exfiltrate",
            "auth_type": "bearer",
            "auth_token": "evil-token",
            "capture_response_body": "1",
            "payload_format": "envelope",
            "event_type": "order.created",
            "example": "0",
        }
        answer = await api.post(path, data=form)
        assert answer.status_code == 403, path
        assert "Read-only access" in answer.text
    for form_page in ("/console/destinations/new", f"/console/integrations/{dest}/edit"):
        assert (await api.get(form_page)).status_code == 403, form_page
    assert (await api.get(f"/console/integrations/{dest}/delete")).status_code == 403
    detail = await api.get(f"/console/integrations/{dest}")
    assert 'id="manage"' not in detail.text and "/edit" not in detail.text
    assert "/console/destinations/new" not in (await api.get("/console/integrations")).text
    replays = conn.execute("SELECT count(*) FROM deliveries WHERE replay_of IS NOT NULL")
    assert replays.fetchone() == (0,)
    assert conn.execute("SELECT * FROM destinations WHERE id = %s", (dest,)).fetchone() == before
    assert conn.execute("SELECT count(*) FROM destinations").fetchone() == (1,)


async def test_an_operator_link_replays_and_is_audited_as_the_link(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    dest = _destination(conn, acme, "ledger", "http://127.0.0.1:9/ledger")
    dead = _delivery(conn, acme, dest, "dead_lettered", 2)
    await _open(api, await _link(api, acme, role="operator", destination_ids=[str(dest)]))
    page = await api.get(f"/console/deliveries/{dead}")
    csrf = TOKEN.search(page.text)
    assert csrf is not None and 'id="replay"' in page.text
    done = await api.post(
        f"/console/deliveries/{dead}/replay",
        data={"csrf_token": csrf.group(1), "replay_token": "t1"},
    )
    assert done.status_code == 303
    (link_id,) = conn.execute("SELECT id FROM portal_sessions").fetchone() or ()
    actors = conn.execute("SELECT actor FROM audit_records WHERE delivery_id = %s", (dead,))
    assert [a for (a,) in actors.fetchall()] == [f"portal:{link_id}"]


@dataclass
class TwoDestinations:
    tenant: Tenant
    shown: uuid.UUID
    hidden: uuid.UUID
    shown_dead: uuid.UUID
    hidden_dead: uuid.UUID
    hidden_delivered: uuid.UUID


HIDDEN_NAME = "bravo-hidden-name"
HIDDEN_URL = "http://127.0.0.1:9/bravo-hidden-path"


def _two_destinations(conn: psycopg.Connection[Any]) -> TwoDestinations:
    acme = _tenant(conn)
    shown = _destination(conn, acme, "alpha-shown", "http://127.0.0.1:9/alpha")
    hidden = _destination(conn, acme, HIDDEN_NAME, HIDDEN_URL)
    shown_dead = _delivery(conn, acme, shown, "dead_lettered", 2)
    hidden_dead = _delivery(conn, acme, hidden, "dead_lettered", 3)
    hidden_delivered = _delivery(conn, acme, hidden, "delivered", 4)
    for _ in range(5):
        _delivery(conn, acme, hidden, "pending", 0)
    return TwoDestinations(acme, shown, hidden, shown_dead, hidden_dead, hidden_delivered)


def _hidden_marks(t: TwoDestinations) -> list[str]:
    return [
        HIDDEN_NAME,
        "bravo-hidden-path",
        str(t.hidden),
        str(t.hidden_dead),
        str(t.hidden_dead)[-12:],
        str(t.hidden_delivered)[-12:],
    ]


async def test_a_scoped_link_shows_nothing_of_other_destinations(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    t = _two_destinations(conn)
    await _open(api, await _link(api, t.tenant, role="operator", destination_ids=[str(t.shown)]))
    pages = [
        "/console/integrations",
        f"/console/integrations/{t.shown}",
        f"/console/integrations/{t.shown}?state=dead_lettered",
        f"/console/deliveries/{t.shown_dead}",
        "/console/dead-letters",
        "/console/dead-letters/replay",
    ]
    for path in pages:
        page = await api.get(path)
        assert page.status_code == 200, path
        for mark in _hidden_marks(t):
            assert mark not in page.text, (path, mark)
    home = (await api.get("/console/integrations")).text
    assert "alpha-shown" in home
    assert '"pending">0<' in home and '"dead_lettered">1<' in home  # the hidden 5 pending
    assert "(2 in all" in home  # the chart counts the shown destination's 2 attempts only
    confirm = (await api.get("/console/dead-letters/replay")).text
    assert 'id="dry-run-count">1<' in confirm
    for path in (
        f"/console/dead-letters?destination_id={t.hidden}",
        f"/console/dead-letters/replay?destination_id={t.hidden}",
        f"/console/integrations/{t.hidden}",
        f"/console/deliveries/{t.hidden_dead}",
        f"/console/deliveries/{t.hidden_delivered}",
    ):
        answer = await api.get(path)
        assert answer.status_code == 404, path
        assert HIDDEN_NAME not in answer.text
    csrf = TOKEN.search(home)
    assert csrf is not None
    replay = await api.post(
        f"/console/deliveries/{t.hidden_dead}/replay",
        data={"csrf_token": csrf.group(1), "replay_token": "t2"},
    )
    assert replay.status_code == 404
    hidden_batch = await api.post(
        "/console/dead-letters/replay",
        data={"csrf_token": csrf.group(1), "destination_id": str(t.hidden)},
    )
    assert hidden_batch.status_code == 404
    batch = await api.post("/console/dead-letters/replay", data={"csrf_token": csrf.group(1)})
    assert batch.status_code == 200 and 'id="replayed-count">1<' in batch.text
    replayed = conn.execute(
        "SELECT replay_of FROM deliveries WHERE replay_of IS NOT NULL"
    ).fetchall()
    assert replayed == [(t.shown_dead,)]

    # The same tenant signed in with its API key sees both.
    api.cookies.clear()
    form = await api.get("/console/sign-in")
    sign_in = TOKEN.search(form.text)
    assert sign_in is not None
    await api.post(
        "/console/sign-in", data={"csrf_token": sign_in.group(1), "api_key": t.tenant.key}
    )
    full = (await api.get("/console/integrations")).text
    assert HIDDEN_NAME in full and '"pending">6<' in full  # 5 hidden, and the replay


async def test_a_scoped_stream_sends_only_its_destinations_events(
    conn: psycopg.Connection[Any], db_url: str, secret_key: str
) -> None:
    t = _two_destinations(conn)
    app = create_app(api_settings(secret_key), db_url)
    state_of(app).event_stream_config = StreamConfig(poll_interval_s=0.05, heartbeat_s=0.2)
    state_of(app).metrics = CourierMetrics()
    async with uvicorn_serving(app) as base, httpx.AsyncClient(base_url=base) as client:
        created = await client.post(
            "/v1/portal-sessions",
            json={"role": "viewer", "destination_ids": [str(t.shown)]},
            headers=t.tenant.headers,
        )
        path = created.json()["url"].split(base, 1)[1]
        assert (await client.get(path)).status_code == 303
        async with client.stream("GET", "/console/events") as stream:
            assert stream.status_code == 200
            # Three events; the first two reach only the hidden destination.
            conn.execute(
                "UPDATE destinations SET event_types = '{hidden.only}' WHERE id = %s",
                (t.hidden,),
            )
            conn.execute(
                "UPDATE destinations SET event_types = '{shown.only}' WHERE id = %s", (t.shown,)
            )
            enqueue_event(conn, t.tenant.id, "hidden.only", {"n": 1})
            enqueue_event(conn, t.tenant.id, "hidden.only", {"n": 2})
            enqueue_event(conn, t.tenant.id, "shown.only", {"n": 3})
            body = ""

            async def read() -> None:
                nonlocal body
                async for chunk in stream.aiter_text():
                    body += chunk
                    if str(t.shown) in body:
                        return

            await asyncio.wait_for(read(), timeout=WAIT_S)
            await asyncio.sleep(0.3)  # anything else already due would have come by now
    events = [line for line in body.splitlines() if line.startswith("data:")]
    assert len(events) == 1 and str(t.shown) in events[0]
    assert str(t.hidden) not in body


async def test_an_embeddable_console_names_its_framers_and_sets_third_party_cookies(
    db_url: str, secret_key: str, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    framer = "https://platform.example https://*.platform.example"
    settings = api_settings(secret_key, console_frame_ancestors=framer)
    async with serving(create_app(settings, db_url)) as client:
        sign_in = await client.get("/console/sign-in")
        assert f"frame-ancestors {framer};" in sign_in.headers["content-security-policy"]
        assert "frame-ancestors 'none'" not in sign_in.headers["content-security-policy"]
        pre = sign_in.headers["set-cookie"]
        assert "SameSite=none" in pre and "Secure" in pre and "Partitioned" in pre
        path = await _link(client, acme, role="operator")
        opened = await client.get(path)
        cookie = opened.headers["set-cookie"]
        assert "SameSite=none" in cookie and "Secure" in cookie and "Partitioned" in cookie
        assert "HttpOnly" in cookie and "Path=/console" in cookie
        # The cookie is Secure and the test client speaks http: send it by hand.
        value = opened.cookies["courier_console"]
        jar = {"Cookie": f"courier_console={value}"}
        page = await client.get("/console/integrations", headers=jar)
        assert page.status_code == 200
        assert framer in page.headers["content-security-policy"]
        # Forms still need the session's token.
        for path in ("/console/sign-out", "/console/dead-letters/replay"):
            forged = await client.post(path, data={"csrf_token": "forged"}, headers=jar)
            assert forged.status_code == 403, path
        assert (await client.get("/v1/destinations", headers=acme.headers)).headers.get(
            "content-security-policy"
        ) is None  # the API is not the console


async def test_without_the_setting_nothing_changes(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    sign_in = await api.get("/console/sign-in")
    assert "frame-ancestors 'none'" in sign_in.headers["content-security-policy"]
    assert "SameSite=strict" in sign_in.headers["set-cookie"]
    assert "Partitioned" not in sign_in.headers["set-cookie"]


async def test_the_console_shows_the_event_type_catalog(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme, other = _tenant(conn), _tenant(conn, "other")
    put = await api.put(
        "/v1/event-types/order.paid",
        json={
            "description": "An order was paid <script>alert(1)</script>",
            "schema": {"type": "object", "required": ["amount"]},
            "example": {"amount": 1250, "currency": "EUR"},
        },
        headers=acme.headers,
    )
    assert put.status_code == 201
    await api.put("/v1/event-types/secret.type", json={}, headers=other.headers)
    await _open(api, await _link(api, acme, role="viewer"))
    page = await api.get("/console/event-types")
    assert page.status_code == 200
    assert 'data-event-type="order.paid"' in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>alert" not in page.text
    assert "&#34;amount&#34;: 1250" in page.text or '"amount": 1250' in page.text
    assert "secret.type" not in page.text  # another tenant's catalog
    assert (await api.get("/console/event-types?after=" + "x" * 300)).status_code == 422


async def test_branding_is_validated_and_shown_in_the_console_header(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    for body, field in (
        ({"accent_color": "red"}, "accent_color"),
        ({"accent_color": "#12345g"}, "accent_color"),
        ({"logo_url": "http://cdn.example/logo.png"}, "logo_url"),
        ({"logo_url": "javascript:alert(1)"}, "logo_url"),
        ({"logo_url": "https://user:pw@cdn.example/x.png"}, "logo_url"),
        ({"display_name": ""}, "display_name"),
        ({"colour": "#123456"}, "colour"),
    ):
        answer = await api.patch("/v1/tenant/branding", json=body, headers=acme.headers)
        assert answer.status_code == 422, body
        assert field in [e["field"] for e in answer.json()["errors"]], answer.json()
    brand = {
        "display_name": "Acme <Payments>",
        "accent_color": "#0B7285",
        "logo_url": "https://cdn.example/logo.png",
    }
    changed = await api.patch("/v1/tenant/branding", json=brand, headers=acme.headers)
    assert changed.status_code == 200
    assert changed.json() == {**brand, "accent_color": "#0b7285"}
    partial = await api.patch("/v1/tenant/branding", json={"logo_url": None}, headers=acme.headers)
    assert (
        partial.json()["logo_url"] is None
        and partial.json()["display_name"] == brand["display_name"]
    )
    await _open(api, await _link(api, acme, role="viewer"))
    page = await api.get("/console/integrations")
    assert "Acme &lt;Payments&gt;" in page.text and 'href="/console/brand.css"' in page.text
    css = await api.get("/console/brand.css")
    assert css.headers["content-type"].startswith("text/css") and "#0b7285" in css.text
    api.cookies.clear()
    assert (await api.get("/console/brand.css")).text == ""  # nothing without a session
