"""The console over HTTP without a browser: sessions, CSRF, headers, tenancy, paging."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from courier.asgi import create_app
from courier.tenancy import create_tenant, revoke_api_key
from tests.integration.api.conftest import Tenant, api_settings, serving

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def console(db_url: str, secret_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(api_settings(secret_key), db_url)) as client:
        yield client


def _tenant(conn: psycopg.Connection[Any], name: str = "acme") -> Tenant:
    tenant_id, issued = create_tenant(conn, f"{name}-{uuid.uuid4().hex[:6]}")
    return Tenant(tenant_id, issued.key, issued.id)


async def _sign_in(client: httpx.AsyncClient, key: str, next_path: str = "") -> httpx.Response:
    form = await client.get("/console/sign-in")
    token = TOKEN.search(form.text)
    assert token is not None
    data = {"csrf_token": token.group(1), "api_key": key, "next": next_path}
    return await client.post("/console/sign-in", data=data)


def _destination(conn: psycopg.Connection[Any], tenant: Tenant, name: str) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO destinations (tenant_id, name, url) VALUES (%s, %s, 'http://127.0.0.1:9/x')"
        " RETURNING id",
        (tenant.id, name),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _deliveries(conn: psycopg.Connection[Any], tenant: Tenant, dest: uuid.UUID, n: int) -> None:
    """n events with one pending delivery each, written directly (no worker runs)."""
    conn.execute(
        "WITH e AS (INSERT INTO events (tenant_id, type, payload)"
        "  SELECT %(t)s, 'order.created', '{}' FROM generate_series(1, %(n)s) RETURNING id)"
        " INSERT INTO deliveries (tenant_id, event_id, destination_id)"
        " SELECT %(t)s, id, %(d)s FROM e",
        {"t": tenant.id, "d": dest, "n": n},
    )


async def test_pages_send_you_to_sign_in_and_back(
    console: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    page = await console.get("/console/dead-letters?destination_id=x")
    assert page.status_code == 303
    assert page.headers["location"] == (
        "/console/sign-in?next=%2Fconsole%2Fdead-letters%3Fdestination_id%3Dx"
    )
    signed = await _sign_in(console, acme.key, "/console/dead-letters?destination_id=x")
    assert signed.status_code == 303
    assert signed.headers["location"] == "/console/dead-letters?destination_id=x"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http; behind https the flag is set
    assert acme.key not in cookie
    assert (await console.get("/console/integrations")).status_code == 200


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/v1/events"])
async def test_sign_in_only_returns_inside_the_console(
    console: httpx.AsyncClient, conn: psycopg.Connection[Any], target: str
) -> None:
    signed = await _sign_in(console, _tenant(conn).key, target)
    assert signed.headers["location"] == "/console/integrations"


async def test_sign_in_refuses_a_form_without_its_token_and_bad_keys(
    console: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    forged = await console.post("/console/sign-in", data={"api_key": acme.key, "csrf_token": "x"})
    assert forged.status_code == 403
    assert "courier_console=" not in forged.headers.get("set-cookie", "")  # no session
    for bad in ("", "ck_nope", acme.key + "x", acme.key[:-1]):
        answer = await _sign_in(console, bad)
        assert answer.status_code == 401
        assert "That API key is not valid." in answer.text


async def test_a_revoked_key_ends_its_sessions(
    console: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    await _sign_in(console, acme.key)
    assert (await console.get("/console/integrations")).status_code == 200
    assert revoke_api_key(conn, acme.key_id)
    assert (await console.get("/console/integrations")).status_code == 303
    assert (await console.get("/console/events")).status_code == 401


async def test_pages_carry_a_strict_content_security_policy(
    console: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    await _sign_in(console, _tenant(conn).key)
    page = await console.get("/console/integrations")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
    script = await console.get("/console/static/console.js")
    assert script.status_code == 200 and "EventSource" in script.text


async def test_state_changing_forms_need_the_sessions_token(
    console: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    await _sign_in(console, acme.key)
    for path in ("/console/sign-out", "/console/dead-letters/replay"):
        answer = await console.post(path, data={"csrf_token": "forged"})
        assert answer.status_code == 403, path
    signed_in = await console.get("/console/integrations")
    token = TOKEN.search(signed_in.text)
    assert token is not None
    out = await console.post("/console/sign-out", data={"csrf_token": token.group(1)})
    assert out.status_code == 303
    assert (await console.get("/console/integrations")).status_code == 303


async def test_names_from_the_database_are_escaped(
    console: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    _destination(conn, acme, '<script>alert("x")</script>')
    await _sign_in(console, acme.key)
    page = await console.get("/console/integrations")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert '<script>alert("x")' not in page.text


async def test_thousands_of_deliveries_page_by_fifty(
    console: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme, other = _tenant(conn), _tenant(conn, "other")
    dest = _destination(conn, acme, "busy")
    _deliveries(conn, acme, dest, 3000)
    _deliveries(conn, other, _destination(conn, other, "theirs"), 10)
    await _sign_in(console, acme.key)
    overview = await console.get("/console/integrations")
    assert re.search(r'data-state="pending">3000<', overview.text)
    seen: list[str] = []
    url: str | None = f"/console/integrations/{dest}?state=pending"
    pages = 0
    while url is not None and pages < 100:
        page = await console.get(url)
        assert page.status_code == 200
        rows = re.findall(r'<tr data-delivery="([0-9a-f-]+)"', page.text)
        assert len(rows) == 50
        seen.extend(rows)
        older = re.search(r'href="\?([^"]*after=[^"]+)" rel="next"', page.text)
        url = (
            f"/console/integrations/{dest}?{older.group(1).replace('&amp;', '&')}"
            if older
            else None
        )
        pages += 1
    assert pages == 60 and len(set(seen)) == 3000
    assert seen == sorted(seen, reverse=True)  # newest first, none repeated


def _dead_letter(
    conn: psycopg.Connection[Any], tenant: Tenant, dest: uuid.UUID, later: str = "0 seconds"
) -> None:
    conn.execute(
        "WITH e AS (INSERT INTO events (tenant_id, type, payload)"
        "  VALUES (%(t)s, 'order.created', '{}') RETURNING id)"
        " INSERT INTO deliveries (tenant_id, event_id, destination_id, state, attempt_count,"
        "   next_attempt_at, dead_letter_reason, dead_lettered_at, updated_at)"
        " SELECT %(t)s, id, %(d)s, 'dead_lettered', 3, NULL, 'max_attempts_exhausted',"
        "   now() + %(later)s::interval, now() + %(later)s::interval FROM e",
        {"t": tenant.id, "d": dest, "later": later},
    )


async def test_a_batch_replay_replays_what_was_confirmed_and_no_more(
    console: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    dest = _destination(conn, acme, "ledger")
    _dead_letter(conn, acme, dest)
    _dead_letter(conn, acme, dest)
    await _sign_in(console, acme.key)
    confirm = await console.get(f"/console/dead-letters/replay?destination_id={dest}")
    assert re.search(r'id="dry-run-count">2<', confirm.text)
    fields = dict(
        re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', confirm.text)
    )
    assert set(fields) == {"csrf_token", "destination_id", "until"}
    _dead_letter(conn, acme, dest, later="5 seconds")  # dead-lettered after the confirmation
    done = await console.post("/console/dead-letters/replay", data=fields)
    assert re.search(r'id="replayed-count">2<', done.text)
    replays = conn.execute("SELECT count(*) FROM deliveries WHERE replay_of IS NOT NULL")
    assert replays.fetchone() == (2,)
    again = await console.get(f"/console/dead-letters/replay?destination_id={dest}&until=")
    assert re.search(r'id="dry-run-count">0<', again.text)  # its end lies after the new cut-off
