"""docs/asyncapi.yaml in tests: the document against the official AsyncAPI 3.0.0 JSON
Schema, and lifecycle events against their message's payload schema."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "asyncapi.yaml"
OFFICIAL_SCHEMA = Path(__file__).resolve().parent / "asyncapi" / "asyncapi-3.0.0.schema.json"
DOCUMENT_URI = "urn:courier:asyncapi"


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text("utf-8"))
    return loaded


def official_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(OFFICIAL_SCHEMA.read_text("utf-8"))
    registry: Registry[Any] = Registry().with_resource(
        schema["$id"], Resource.from_contents(schema, default_specification=DRAFT7)
    )
    return jsonschema.Draft7Validator(schema, registry=registry.crawl())


@cache
def message_validators() -> dict[str, jsonschema.Draft7Validator]:
    """{event type: a validator of its payload}, from components.messages."""
    doc = document()
    registry: Registry[Any] = Registry().with_resource(
        DOCUMENT_URI, Resource.from_contents(doc, default_specification=DRAFT7)
    )
    validators = {}
    for message in doc["components"]["messages"].values():
        ref = message["payload"]["$ref"]
        assert ref.startswith("#/")
        schema = {"$ref": f"{DOCUMENT_URI}{ref}"}
        validators[message["name"]] = jsonschema.Draft7Validator(
            schema, registry=registry, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
        )
    return validators


def validate_event(event: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless the event matches its type's message."""
    validators = message_validators()
    if event.get("type") not in validators:
        raise jsonschema.ValidationError(f"no message in docs/asyncapi.yaml for {event!r}")
    validators[event["type"]].validate(event)


_ALL_EVENTS = """
SELECT tenant_id, id, seq, txid::text AS txid, type, delivery_id, event_id, destination_id,
       state, attempt_number, occurred_at, data
  FROM lifecycle_events ORDER BY txid, seq
"""


def check_database_events(db_url: str) -> int:
    """Validate every lifecycle event in a test database; returns how many there were.

    Run when each test's database is dropped (tests/conftest.py), so every event that
    the test suite emits is checked against docs/asyncapi.yaml.
    """
    import psycopg
    from psycopg.rows import dict_row

    from courier.store.feed import event_from_row

    try:
        conn = psycopg.connect(db_url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError:
        return 0  # a test that broke its own database says so itself
    with conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_ALL_EVENTS).fetchall()
    for row in rows:
        validate_event(event_from_row(row).to_json())
    return len(rows)
