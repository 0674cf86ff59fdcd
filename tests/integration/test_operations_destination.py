"""A tenant's operations destination, end to end: real loopback receivers, a real worker.

It receives the tenant's `destination.disabled` and `delivery.dead_lettered` lifecycle
events as signed deliveries of their own (`courier.destination.disabled`,
`courier.delivery.dead_lettered`), and never a report about itself or about a delivery
of a notification, so a failing operations destination cannot start a loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from courier.asgi import create_app
from courier.enqueue import enqueue_event
from courier.tenancy import create_api_key, create_tenant
from tests.integration.api.conftest import api_settings, serving
from tests.support.engine import Engine, make_worker, run_workers, wait_terminal

PATH = "/v1/tenant/operations-destination"
FAST = {"backoff_initial_ms": 100, "backoff_max_ms": 200}


@pytest.fixture
async def api(engine: Engine) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    key = create_api_key(engine.conn, engine.tenant, name="ops test").key
    async with serving(create_app(api_settings(engine.secret_key), engine.db_url)) as client:
        yield client, {"Authorization": f"Bearer {key}"}


def _count(engine: Engine, sql: str, *params: Any) -> int:
    row = engine.conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def _event_type(engine: Engine, event_id: str) -> str:
    row = engine.conn.execute("SELECT type FROM events WHERE id = %s", (event_id,)).fetchone()
    assert row is not None
    return str(row[0])


async def _settle(engine: Engine, expected: int) -> None:
    """Wait for `expected` terminal deliveries, then long enough for any further one to
    be made and tried (the worker polls every 0.1 s), and check that none was."""
    await wait_terminal(engine.db_url, expected)
    await asyncio.sleep(1.0)
    assert _count(engine, "SELECT count(*) FROM deliveries") == expected


async def test_the_operations_destination_receives_dead_letters_and_disables_of_others(
    engine: Engine, api: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    client, headers = api
    ops, ops_secret = engine.make_destination(
        engine.receiver.always("/ops", 200), name="ops", event_types=["ops.none"]
    )
    down, _ = engine.make_destination(
        engine.receiver.always("/down", 500), name="billing", max_attempts=2, **FAST
    )
    assert (await client.get(PATH, headers=headers)).json() == {"destination_id": None}
    response = await client.put(PATH, json={"destination_id": str(ops["id"])}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"destination_id": str(ops["id"])}
    assert (await client.get(PATH, headers=headers)).json() == {"destination_id": str(ops["id"])}

    result = enqueue_event(engine.conn, engine.tenant, "order.created", {"order": 7})
    (dead,) = result.deliveries
    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        await wait_terminal(engine.db_url, 2)  # the dead letter and its notification
        response = await client.patch(
            f"/v1/destinations/{down['id']}", json={"enabled": False}, headers=headers
        )
        assert response.status_code == 200
        await _settle(engine, 3)

    hits = engine.receiver.hits("/ops")
    assert [_event_type(engine, h.headers["webhook-id"]) for h in hits] == [
        "courier.delivery.dead_lettered",
        "courier.destination.disabled",
    ]
    for hit in hits:
        Webhook(ops_secret).verify(hit.body, hit.headers)  # signed like any delivery
    dead_lettered, disabled = (orjson.loads(h.body) for h in hits)
    assert dead_lettered["type"] == "delivery.dead_lettered"
    assert dead_lettered["delivery_id"] == str(dead.id)
    assert dead_lettered["event_id"] == str(result.event_id)
    assert dead_lettered["destination_id"] == str(down["id"])
    assert dead_lettered["destination_name"] == "billing"
    assert dead_lettered["attempt_number"] == 2
    assert dead_lettered["data"]["reason"] == "max_attempts_exhausted"
    assert disabled["type"] == "destination.disabled"
    assert disabled["delivery_id"] is None and disabled["event_id"] is None
    assert disabled["data"] == {"reason": "manual"}
    assert disabled["occurred_at"].endswith("Z")
    # deliveries of their own: listed, with attempts, like any other
    listed = await client.get(
        "/v1/deliveries", params={"destination_id": str(ops["id"])}, headers=headers
    )
    assert [d["state"] for d in listed.json()["items"]] == ["delivered", "delivered"]


async def test_a_failing_operations_destination_makes_no_loop(
    engine: Engine, api: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    client, headers = api
    ops, _ = engine.make_destination(
        engine.receiver.always("/ops-down", 500), event_types=["ops.none"], max_attempts=1
    )
    engine.make_destination(engine.receiver.always("/down", 500), max_attempts=1)
    await client.put(PATH, json={"destination_id": str(ops["id"])}, headers=headers)

    enqueue_event(engine.conn, engine.tenant, "order.created", {"order": 1})
    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        # the dead letter, its notification, which dead-letters too: and nothing more
        await _settle(engine, 2)
    assert _count(engine, "SELECT count(*) FROM deliveries WHERE state = 'dead_lettered'") == 2
    assert len(engine.receiver.hits("/ops-down")) == 1

    # Disabling the operations destination reports nothing (to whom?).
    response = await client.patch(
        f"/v1/destinations/{ops['id']}", json={"enabled": False}, headers=headers
    )
    assert response.status_code == 200
    assert _count(engine, "SELECT count(*) FROM deliveries") == 2


async def test_a_notification_is_never_reported_even_after_the_tenant_names_another(
    engine: Engine, api: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    client, headers = api
    first, _ = engine.make_destination(
        engine.receiver.always("/first", 500), event_types=["ops.none"], max_attempts=1
    )
    second, _ = engine.make_destination(
        engine.receiver.always("/second", 200), event_types=["ops.none"]
    )
    engine.make_destination(engine.receiver.always("/down", 500), max_attempts=1)
    await client.put(PATH, json={"destination_id": str(first["id"])}, headers=headers)
    enqueue_event(engine.conn, engine.tenant, "order.created", {"order": 1})
    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        await _settle(engine, 2)
        (notification,) = engine.conn.execute(
            "SELECT id FROM deliveries WHERE destination_id = %s", (first["id"],)
        ).fetchone() or (None,)

        await client.put(PATH, json={"destination_id": str(second["id"])}, headers=headers)
        # A replay of the dead notification to the old operations destination dead-letters
        # again: it is a notification's delivery, so the new one hears nothing of it ...
        replay = await client.post(f"/v1/deliveries/{notification}/replay", headers=headers)
        assert replay.status_code == 201, replay.text
        await _settle(engine, 3)
        assert engine.receiver.hits("/second") == []
        # ... while a dead letter of an ordinary delivery reaches it.
        enqueue_event(engine.conn, engine.tenant, "order.created", {"order": 2})
        await _settle(engine, 5)
    (hit,) = engine.receiver.hits("/second")
    assert _event_type(engine, hit.headers["webhook-id"]) == "courier.delivery.dead_lettered"
    assert orjson.loads(hit.body)["data"]["reason"] == "max_attempts_exhausted"
    assert len(engine.receiver.hits("/first")) == 2


async def test_naming_and_clearing_the_operations_destination(
    engine: Engine, api: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    client, headers = api
    mine, _ = engine.make_destination("https://example.com/ops")
    other_tenant, _ = create_tenant(engine.conn, f"other-{uuid.uuid4().hex[:8]}")
    theirs, _ = engine.make_destination("https://example.com/x", tenant_id=other_tenant)

    for refused in (str(theirs["id"]), str(uuid.uuid4())):
        response = await client.put(PATH, json={"destination_id": refused}, headers=headers)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        (error,) = response.json()["errors"]
        assert error["field"] == "destination_id" and error["message"] == "no such destination"
    response = await client.put(PATH, json={"destination_id": "nope"}, headers=headers)
    assert response.status_code == 422

    await client.put(PATH, json={"destination_id": str(mine["id"])}, headers=headers)
    response = await client.delete(PATH, headers=headers)
    assert response.status_code == 204
    assert (await client.get(PATH, headers=headers)).json() == {"destination_id": None}

    # a deleted destination is no operations destination
    await client.put(PATH, json={"destination_id": str(mine["id"])}, headers=headers)
    await client.delete(f"/v1/destinations/{mine['id']}", headers=headers)
    assert (await client.get(PATH, headers=headers)).json() == {"destination_id": None}

    actions = [
        r[0]
        for r in engine.conn.execute(
            "SELECT action FROM audit_records WHERE tenant_id = %s AND action LIKE 'tenant.%%'"
            " ORDER BY created_at, id",
            (engine.tenant,),
        ).fetchall()
    ]
    assert actions == [
        "tenant.operations_destination_set",
        "tenant.operations_destination_cleared",
        "tenant.operations_destination_set",
    ]
