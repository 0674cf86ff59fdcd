"""docs/asyncapi.yaml: a valid AsyncAPI 3.0.0 document (checked against the official JSON
Schema), and every lifecycle event a real delivery flow emits matches its message.

Every other test's events are checked too: tests/conftest.py validates each test
database's lifecycle events against the document before dropping it."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import Counter
from typing import Any

import httpx
import jsonschema
import psycopg
import pytest

from courier.api.routes.delivery_events import EVENT_TYPES
from courier.asgi import create_app
from courier.enqueue import enqueue_event
from courier.settings import Settings
from tests.integration.observability.conftest import asgi_serving
from tests.support.asyncapi import document, message_validators, official_validator, validate_event
from tests.support.engine import Engine, make_worker, run_workers, wait_terminal


def test_document_is_valid_asyncapi_3() -> None:
    validator = official_validator()
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document())]
    assert errors == []
    assert document()["asyncapi"] == "3.0.0"
    broken = copy.deepcopy(document())
    broken["channels"]["deliveryEventStream"]["adress"] = "/typo"
    assert list(validator.iter_errors(broken)), "the official schema must catch a typo"


def test_document_has_one_message_per_contract_event_type(conn: psycopg.Connection[Any]) -> None:
    # CHECK constraints only: PostgreSQL 18 lists NOT NULL ones too (`..._type_not_null`).
    (check,) = conn.execute(
        "SELECT string_agg(pg_get_constraintdef(oid), ' ') FROM pg_constraint "
        "WHERE conrelid = 'lifecycle_events'::regclass AND contype = 'c' "
        "AND conname LIKE '%type%'"
    ).fetchone() or ("",)
    check = check or ""
    in_database = {t for t in EVENT_TYPES if f"'{t}'" in check}
    assert in_database == set(EVENT_TYPES)
    assert set(message_validators()) == set(EVENT_TYPES)
    channels = document()["channels"]
    for channel in channels.values():
        assert len(channel["messages"]) == len(EVENT_TYPES)


def test_a_message_schema_rejects_what_it_does_not_describe() -> None:
    event = {
        "id": str(uuid.uuid4()),
        "tenant_id": str(uuid.uuid4()),
        "type": "delivery.delivered",
        "delivery_id": str(uuid.uuid4()),
        "event_id": str(uuid.uuid4()),
        "destination_id": str(uuid.uuid4()),
        "state": "delivered",
        "attempt_number": 1,
        "occurred_at": "2025-01-01T00:00:00Z",
        "data": {"outcome": "succeeded", "http_status": 200},
    }
    validate_event(event)
    for change in (
        {"state": "failed"},
        {"data": {"http_status": 200}},
        {"extra": 1},
        {"attempt_number": 0},
        {"type": "delivery.exploded"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate_event({**event, **change})


async def test_events_of_a_real_delivery_flow_match_their_messages(engine: Engine) -> None:
    engine.make_destination(engine.receiver.always("/ok", 200), event_types=["ok"])
    engine.make_destination(
        engine.receiver.script("/flaky", [503], then=200), event_types=["flaky"]
    )
    engine.make_destination(engine.receiver.always("/bad", 400), event_types=["bad"])
    engine.make_destination(
        engine.receiver.always("/down", 500), event_types=["down"], max_attempts=2
    )
    disabled, _ = engine.make_destination(engine.receiver.always("/off", 200), event_types=["off"])
    for event_type in ("ok", "flaky", "bad", "down", "off"):
        enqueue_event(engine.conn, engine.tenant, event_type, {"kind": event_type})
    engine.conn.execute("UPDATE destinations SET enabled = false WHERE id = %s", (disabled["id"],))
    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        await wait_terminal(engine.db_url, 5)

    # What a user actually receives: the feed's JSON, every page, until it has them all
    # (a write transaction elsewhere on the server may hold the feed back for a while).
    (total,) = engine.conn.execute("SELECT count(*) FROM lifecycle_events").fetchone() or (0,)
    app = create_app(Settings(secret_key=engine.secret_key), engine.db_url)
    key = _api_key(engine.conn, engine.tenant)
    items: list[dict[str, Any]] = []
    async with asgi_serving(app) as client:
        cursor = None
        for _ in range(600):
            params: dict[str, Any] = {"limit": 3, **({"after": cursor} if cursor else {})}
            page = await _page(client, key, params)
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if len(items) >= total:
                break
            if not page["items"]:
                await asyncio.sleep(0.1)

    for item in items:
        validate_event(item)
    types = Counter(item["type"] for item in items)
    assert types == {
        "delivery.created": 5,
        "delivery.delivered": 2,
        "delivery.retry_scheduled": 2,
        "delivery.failed": 2,
        "delivery.dead_lettered": 1,
        "destination.disabled": 1,  # turned off by a plain UPDATE: every path writes one
    }
    failed_reasons = {i["data"]["reason"] for i in items if i["type"] == "delivery.failed"}
    assert failed_reasons == {"permanent_failure", "destination_disabled"}


def _api_key(conn: psycopg.Connection[Any], tenant: uuid.UUID) -> str:
    from courier.tenancy import create_api_key

    return create_api_key(conn, tenant, name="asyncapi test").key


async def _page(client: httpx.AsyncClient, key: str, params: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(
        "/v1/delivery-events", params=params, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
