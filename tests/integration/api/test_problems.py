"""Errors are RFC 9457 problem documents: unknown routes, wrong methods, a database
outage (503 with Retry-After), and an internal failure (500 without a traceback)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from courier.asgi import create_app
from courier.crypto import SecretBox, generate_key
from courier.destinations import create_destination
from tests.integration.api.conftest import Tenant, api_settings, serving
from tests.support.ports import closed_port as _closed_port

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def _is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_KEYS and body["status"] == status
    return body


async def test_unknown_route_and_wrong_method_are_problems(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    _is_problem(await client.get("/v1/nothing-here", headers=tenant_a.headers), 404)
    wrong = await client.put("/v1/destinations", headers=tenant_a.headers)
    _is_problem(wrong, 405)
    assert "GET" in wrong.headers["allow"]


async def test_malformed_id_is_422_naming_the_path_field(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    body = _is_problem(await client.get("/v1/deliveries/not-a-uuid", headers=tenant_a.headers), 422)
    assert body["errors"] == [
        {"field": "delivery_id", "location": "path", "message": body["errors"][0]["message"]}
    ]


async def test_database_outage_answers_503_with_retry_after(
    secret_key: str, tenant_a: Tenant
) -> None:
    url = f"postgresql://courier@127.0.0.1:{_closed_port()}/courier?connect_timeout=1"
    async with serving(create_app(api_settings(secret_key), url)) as client:
        listed = await client.get("/v1/destinations", headers=tenant_a.headers)
        body = _is_problem(listed, 503)
        assert int(listed.headers["retry-after"]) > 0
        assert "Traceback" not in listed.text and "127.0.0.1" not in body["detail"]
        ready = await client.get("/readyz")
        _is_problem(ready, 503)
        assert "retry-after" in ready.headers
        assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_internal_failure_is_a_bare_500_without_traceback(
    client: httpx.AsyncClient, conn: Any, tenant_a: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    # A secret encrypted under a key this server does not hold (a misconfigured
    # COURIER_SECRET_KEY): decrypting it fails inside the route.
    row, _ = create_destination(
        conn, SecretBox(generate_key()), tenant_a.id, name="foreign", url="https://e.com/"
    )
    response = await client.get(f"/v1/destinations/{row['id']}/secret", headers=tenant_a.headers)
    body = _is_problem(response, 500)
    assert body["detail"] == "An internal error occurred."
    for word in ("Traceback", "SecretKeyError", "File ", ".py"):
        assert word not in response.text
    assert any(r.levelname == "ERROR" and r.exc_info for r in caplog.records)


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


async def test_readiness_reports_pending_migrations(
    secret_key: str, db_url: str, conn: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from courier.store.migrate import migrations_dir

    for path in migrations_dir().glob("*.sql"):
        (tmp_path / path.name).write_text(path.read_text("utf-8"), "utf-8")
    (tmp_path / "999_future.sql").write_text("SELECT 1;", "utf-8")
    monkeypatch.setenv("COURIER_MIGRATIONS_DIR", str(tmp_path))
    async with serving(create_app(api_settings(secret_key), db_url)) as client:
        ready = await client.get("/readyz")
    body = _is_problem(ready, 503)
    assert body["pending_migrations"] == ["999_future"]
