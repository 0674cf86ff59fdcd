"""Test sends: a test event to one destination, whatever its event types and filter say
(a user checks that a receiver answers, not which events it takes). The event is a
`courier.test`, or a catalog type with one of its example payloads (chosen and checked
by courier.web.catalog_examples), so a receiver's handler for that type can be tried.

A test event is marked as one (`events.test`): outage recovery never gives it to
another destination of its type.

The event, its one delivery (`delivery.created`), an audit record
(`destination.test_sent`) and the NOTIFY that wakes workers are one statement; from
then on the delivery is like any other: signed, retried, attempts kept.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg

# Raised here; defined once in courier.errors and importable from here too.
from courier.errors import DestinationDisabled as DestinationDisabled
from courier.errors import DestinationNotFound as DestinationNotFound
from courier.store.events import insert_test_event

TEST_EVENT_TYPE = "courier.test"


@dataclass(frozen=True, slots=True)
class TestEvent:
    """What a test send carries, when it is not the `courier.test` ping."""

    __test__ = False  # not a pytest test class, whatever its name

    type: str
    payload: Any  # JSON


@dataclass(frozen=True, slots=True)
class SentTest:
    event_id: uuid.UUID
    delivery_id: uuid.UUID
    event_type: str
    filter_bypassed: bool  # the destination has a filter, which this event did not meet


def ping_payload(destination_id: uuid.UUID) -> dict[str, Any]:
    return {
        "type": TEST_EVENT_TYPE,
        "destination_id": str(destination_id),
        "message": "A test event sent by courier.",
        "sent_at": datetime.now(UTC).isoformat(),
    }


async def send_test_event(
    conn: psycopg.AsyncConnection[Any],
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID,
    *,
    actor: str,
    event: TestEvent | None = None,
) -> SentTest:
    """Send `event` (None: the `courier.test` ping) to this destination alone."""
    if event is None:
        event = TestEvent(TEST_EVENT_TYPE, ping_payload(destination_id))
    payload = orjson.dumps(event.payload).decode("utf-8")
    row = await insert_test_event(
        conn, tenant_id, destination_id, actor=actor, event_type=event.type, payload=payload
    )
    if row is None:
        raise DestinationNotFound(str(destination_id))
    if row["delivery_id"] is None:
        raise DestinationDisabled(str(destination_id))
    return SentTest(row["event_id"], row["delivery_id"], event.type, bool(row["filtered"]))
