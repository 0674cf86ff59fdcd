"""Outage recovery: what a destination missed while it was disabled, and delivering it.

Events are kept whether or not any destination took them. While a destination is off,
matching events get no delivery to it (enqueue skips disabled destinations), and its
deliveries that fell due fail as `destination_disabled` without a request. When it is
on again, `outage` counts both since it was disabled, and `recover_destination` makes
a delivery for each such event (`delivery.created`) and a replay of each such failure
(`delivery.replayed`), bounded per call and audited (`destination.recovered`).
Running it again never makes a second delivery of the same event to the destination.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import psycopg

# Raised here; defined once in courier.errors and importable from here too.
from courier.errors import DestinationDisabled as DestinationDisabled
from courier.errors import DestinationNotFound as DestinationNotFound
from courier.store import operations as store

MAX_RECOVER = 10_000  # deliveries made by one call at most


@dataclass(frozen=True, slots=True)
class Outage:
    since: datetime
    missed_events: int
    disabled_failures: int


@dataclass(frozen=True, slots=True)
class RecoverResult:
    count: int
    delivery_ids: list[uuid.UUID] = field(default_factory=list)
    missed_events: int = 0
    disabled_failures: int = 0
    event_ids: list[uuid.UUID] = field(default_factory=list)
    replayed_ids: list[uuid.UUID] = field(default_factory=list)
    more: bool = False
    dry_run: bool = False


async def outage(
    conn: psycopg.AsyncConnection[Any],
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID,
    since: datetime,
    until: datetime | None = None,
) -> Outage | None:
    """What the destination missed in [since, until); None when there is no such row."""
    params = {
        "tenant_id": tenant_id,
        "destination_id": destination_id,
        "since": since,
        "until": until,
    }
    row = await store.destination_outage(conn, params)
    if row is None:
        return None
    return Outage(since, int(row["missed_events"]), int(row["disabled_failures"]))


async def recover_destination(
    conn: psycopg.AsyncConnection[Any],
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID,
    *,
    actor: str,
    since: datetime,
    until: datetime | None = None,
    dry_run: bool = False,
    limit: int = MAX_RECOVER,
) -> RecoverResult:
    """Deliver what the destination missed in [since, until); see the module docstring."""
    if not 1 <= limit <= MAX_RECOVER:
        raise ValueError(f"limit must be between 1 and {MAX_RECOVER}")
    filter_doc = {
        "since": since.isoformat(),
        "until": until.isoformat() if until else None,
        "limit": limit,
    }
    params = {
        "tenant_id": tenant_id,
        "destination_id": destination_id,
        "actor": actor,
        "since": since,
        "until": until,
        "dry_run": dry_run,
        "limit": limit,
        "filter": orjson.dumps(filter_doc).decode("utf-8"),
    }
    row = await store.recover_destination(conn, params)
    if row is None:
        raise DestinationNotFound(str(destination_id))
    if not row["enabled"] and not dry_run:
        raise DestinationDisabled(str(destination_id))
    missed = int(row["missed_events"])
    failures = int(row["disabled_failures"])
    return RecoverResult(
        count=missed + failures,
        delivery_ids=list(row["delivery_ids"]),
        missed_events=missed,
        disabled_failures=failures,
        event_ids=list(row["event_ids"]),
        replayed_ids=list(row["replayed_ids"]),
        more=bool(row["more"]),
        dry_run=dry_run,
    )
