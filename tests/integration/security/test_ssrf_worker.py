"""The SSRF guard through a real worker built from Settings (as `courier worker` builds
it): destinations at literal private addresses written straight into the database,
bypassing the API's checks, fail permanently without a request; COURIER_ALLOWED_NETWORKS
admits its range and nothing else. And the API side of the same policy."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from courier.asgi import create_app
from courier.enqueue import enqueue_event
from courier.settings import Settings
from courier.worker.worker import Worker
from courier.worker_setup import build_worker
from tests.integration.api.conftest import Tenant, api_settings, serving
from tests.support.engine import Engine, attempts, delivery, run_workers, wait_terminal


def _worker(db_url: str, secret_key: str, **settings: Any) -> Worker:
    values: dict[str, Any] = {
        "secret_key": secret_key,
        "worker_tenants": "*",
        "worker_poll_interval": 0.1,
        "worker_lease_seconds": 5,
        "worker_shutdown_grace_seconds": 2,
        "allow_private_destinations": False,
        "allowed_networks": "",
    }
    values.update(settings)
    return build_worker(Settings(**values), db_url)


def _enqueue(conn: psycopg.Connection[Any], tenant: uuid.UUID, event_type: str) -> uuid.UUID:
    result = enqueue_event(conn, tenant, event_type, {"probe": event_type})
    (only,) = result.deliveries
    return only.id


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("[::1]", "loopback"),
        ("10.1.2.3", "private"),
        ("169.254.169.254", "link-local"),
        ("[::ffff:127.0.0.1]", "loopback"),
    ],
)
async def test_a_literal_private_destination_fails_permanently_without_a_request(
    engine: Engine,
    host: str,
    reason: str,
) -> None:
    engine.make_destination(f"http://{host}:{engine.receiver.port}/internal", max_attempts=5)
    delivery_id = _enqueue(engine.conn, engine.tenant, "probe.private")
    async with run_workers([_worker(engine.db_url, engine.secret_key)]):
        await wait_terminal(engine.db_url, 1)
    row = delivery(engine.conn, delivery_id)
    assert row["state"] == "failed" and row["attempt_count"] == 1  # not retried
    (attempt,) = attempts(engine.conn, delivery_id)
    assert attempt["outcome"] == "permanent_failure" and attempt["retryable"] is False
    assert attempt["http_status"] is None
    summary = attempt["error_summary"]
    assert summary == f"destination address not allowed: {reason}"
    assert engine.receiver.hits() == []


async def test_allowed_networks_admit_their_range_and_only_it(engine: Engine) -> None:
    engine.make_destination(engine.receiver.url("/admitted"), event_types=["probe.admitted"])
    engine.make_destination(
        f"http://[::1]:{engine.receiver.port}/outside",
        event_types=["probe.outside"],
        max_attempts=5,
    )
    admitted = _enqueue(engine.conn, engine.tenant, "probe.admitted")
    outside = _enqueue(engine.conn, engine.tenant, "probe.outside")
    worker = _worker(engine.db_url, engine.secret_key, allowed_networks="192.0.2.0/24, 127.0.0.0/8")
    async with run_workers([worker]):
        await wait_terminal(engine.db_url, 2)
    assert delivery(engine.conn, admitted)["state"] == "delivered"
    assert len(engine.receiver.hits("/admitted")) == 1
    assert delivery(engine.conn, outside)["state"] == "failed"
    (attempt,) = attempts(engine.conn, outside)
    assert attempt["outcome"] == "permanent_failure"
    assert attempt["error_summary"] == "destination address not allowed: loopback"
    assert engine.receiver.hits("/outside") == []


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://10.1.2.3/in", True),
        ("https://10.255.0.1:8443/in", True),
        ("https://192.168.1.1/in", False),
        ("https://127.0.0.1/in", False),
        ("https://169.254.169.254/latest", False),
    ],
)
async def test_the_api_admits_allowed_networks_and_refuses_other_private_literals(
    db_url: str, secret_key: str, tenant_a: Tenant, url: str, accepted: bool
) -> None:
    settings = api_settings(
        secret_key, allow_private_destinations=False, allowed_networks="10.0.0.0/8"
    )
    async with serving(create_app(settings, db_url)) as client:
        response = await client.post(
            "/v1/destinations", json={"name": "x", "url": url}, headers=tenant_a.headers
        )
    if accepted:
        assert response.status_code == 201, response.text
    else:
        assert response.status_code == 422, response.text
        (error,) = response.json()["errors"]
        assert error["field"] == "url" and "must not point at" in error["message"]
