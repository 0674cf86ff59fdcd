"""The catalog example a test send carries: `event_type` names a type of the tenant's
catalog and `example` picks one of its example payloads, counted from 0 (see
`examples_of`). The payload must satisfy the type's schema as it is now; every refusal
is a 422 naming `event_type` or `example`.

The API's `POST /v1/destinations/{id}/test` and the console's "send a test event" both
choose through here.
"""

from __future__ import annotations

import uuid
from typing import Any

from courier import ping
from courier.event_schemas import InvalidPayload, InvalidSchema, compile_schema, validate
from courier.store import portal as portal_store
from courier.store.rows import AsyncConn, Row
from courier.web.problems import invalid_field


def examples_of(row: Row) -> list[Any]:
    """A catalog type's example payloads: its `example`, then its schema's `examples`
    (JSON Schema's own keyword), in order, each once."""
    found: list[Any] = []
    if row["example"] is not None:
        found.append(row["example"])
    schema = row["schema"]
    listed = schema.get("examples") if isinstance(schema, dict) else None
    if isinstance(listed, list):
        found += [e for e in listed if e not in found]
    return found


async def example_event(
    conn: AsyncConn, tenant_id: uuid.UUID, event_type: str, example: int
) -> ping.TestEvent:
    """The test event of `event_type` carrying its example number `example`."""
    row = await portal_store.get_event_type(conn, tenant_id, event_type)
    if row is None:
        raise invalid_field("event_type", "is not in the event-type catalog")
    found = examples_of(row)
    if not found:
        raise invalid_field("event_type", "has no example payload in the catalog")
    if example >= len(found):
        raise invalid_field(
            "example", f"{event_type} has {len(found)} example(s): pick 0 to {len(found) - 1}"
        )
    payload = found[example]
    if row["schema"] is not None:
        try:
            validate(compile_schema(row["schema"]), payload, "example")
        except InvalidPayload as exc:  # a schema's `examples` item need not satisfy it
            raise invalid_field(exc.path, f"fails the type's schema: {exc.problem}") from None
        except InvalidSchema as exc:  # pragma: no cover - PUT checks every schema it stores
            raise invalid_field("event_type", f"has an invalid schema: {exc}") from None
    return ping.TestEvent(event_type, payload)


def subscribed(patterns: list[str], event_type: str) -> bool:
    """Whether a destination with these event types (names, `family.*`, `*`; none: all)
    takes `event_type`, as fan-out decides."""
    if not patterns:
        return True
    for pattern in patterns:
        if pattern in ("*", event_type):
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False
