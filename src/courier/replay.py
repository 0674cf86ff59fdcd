"""Replay: a terminal delivery is never reopened; a new delivery with `replay_of` is made.

    CourierError (courier.errors)
    ├── NotFound             courier.errors.DeliveryNotFound: no such delivery for this
    │                        tenant (another tenant's id included)
    ├── InvalidCursor        courier.errors.InvalidCursor: a cursor this module did not issue
    └── ReplayError
        ├── NotReplayable    not terminal yet, or its destination is deleted or disabled
        └── KeyReused        the Idempotency-Key was used to replay another delivery

`replay_delivery` replays one delivery (delivered, failed or dead_lettered): the new
pending delivery, its `delivery.replayed` lifecycle event, an audit record and the
NOTIFY that wakes workers are one statement, run on the caller's connection and inside
whatever transaction it is in. An idempotency key makes a repeat find the first replay
instead of making another.

`replay_dead_letters` replays, in bounded pages, the failed / dead-lettered deliveries
a filter selects, skipping those replayed before, with one audit record per call.
Both are called by the HTTP API and by the operator console.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import psycopg

from courier.errors import CourierError, DeliveryNotFound

# Raised here; defined once in courier.errors and importable from here too.
from courier.errors import InvalidCursor as InvalidCursor
from courier.states import BULK_REPLAY_STATES, REPLAYABLE_STATES
from courier.store import operations as store

BULK_STATES = BULK_REPLAY_STATES
NotFound = DeliveryNotFound  # raised here; defined once in courier.errors
MAX_BULK = 10_000  # deliveries replayed by one bulk call at most


class ReplayError(CourierError):
    pass


class NotReplayable(ReplayError):
    """`state` is the delivery's; `reason` is `not_terminal` or `destination_unavailable`."""

    def __init__(self, state: str, reason: str = "not_terminal") -> None:
        if reason == "not_terminal":
            message = f"a {state} delivery is not finished; only a terminal one can be replayed"
        else:
            message = "the delivery's destination is deleted or disabled; enable it first"
        super().__init__(message)
        self.state = state
        self.reason = reason


class KeyReused(ReplayError):
    def __init__(self, replay_of: uuid.UUID | None) -> None:
        super().__init__("this Idempotency-Key was already used to replay another delivery")
        self.replay_of = replay_of


@dataclass(frozen=True, slots=True)
class ReplayResult:
    delivery: dict[str, Any]  # the new delivery's row
    created: bool  # False: the idempotency key found an earlier replay


@dataclass(frozen=True, slots=True)
class BulkReplayResult:
    count: int
    # the new deliveries' ids, or on a dry run the ids of those that would be replayed
    delivery_ids: list[uuid.UUID] = field(default_factory=list)
    next_cursor: str | None = None  # pass back as `cursor` to continue; None at the end
    dry_run: bool = False


def encode_cursor(last_id: uuid.UUID) -> str:
    """The cursor after a delivery: its id as text (the API documents its exact pattern)."""
    return str(last_id)


def decode_cursor(cursor: str | None) -> uuid.UUID | None:
    if cursor is None:
        return None
    try:
        after = uuid.UUID(cursor)
    except ValueError:
        raise InvalidCursor() from None
    if str(after) != cursor.lower():  # only the hyphenated form, as encode_cursor writes it
        raise InvalidCursor()
    return after


def _row_from_json(value: dict[str, Any]) -> dict[str, Any]:
    """A `to_jsonb(row)` back into Python types, as a dict_row would have them."""
    row = dict(value)
    for key in ("id", "tenant_id", "event_id", "destination_id", "replay_of"):
        if row.get(key) is not None:
            row[key] = uuid.UUID(row[key])
    for key in (
        "next_attempt_at",
        "locked_until",
        "created_at",
        "updated_at",
        "delivered_at",
        "dead_lettered_at",
    ):
        if row.get(key) is not None:
            row[key] = datetime.fromisoformat(row[key])
    return row


async def replay_delivery(
    conn: psycopg.AsyncConnection[Any],
    tenant_id: uuid.UUID,
    delivery_id: uuid.UUID,
    *,
    actor: str,
    idempotency_key: str | None = None,
) -> ReplayResult:
    """Replay one terminal delivery; see the module docstring."""
    params = {
        "tenant_id": tenant_id,
        "id": delivery_id,
        "actor": actor,
        "idempotency_key": idempotency_key,
    }
    state = "unknown"
    for _ in range(2):
        row = await store.replay_attempt(conn, params)
        if row is None:
            raise DeliveryNotFound(delivery_id)
        if row["delivery"] is not None:
            return ReplayResult(_row_from_json(row["delivery"]), created=True)
        state = row["original_state"]
        if state not in REPLAYABLE_STATES:
            raise NotReplayable(state)
        if idempotency_key is None:
            raise NotReplayable(state, "destination_unavailable")
        earlier = await store.replay_by_key(conn, params)
        if earlier is not None:
            if earlier["replay_of"] != delivery_id:
                raise KeyReused(earlier["replay_of"])
            return ReplayResult(earlier, created=False)
        if not row["destination_usable"]:
            raise NotReplayable(state, "destination_unavailable")
        # the key's first holder rolled back after we waited on it: try once more
    raise NotReplayable(state, "destination_unavailable")  # pragma: no cover


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


async def replay_dead_letters(
    conn: psycopg.AsyncConnection[Any],
    tenant_id: uuid.UUID,
    *,
    actor: str,
    destination_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    states: Sequence[str] = ("dead_lettered",),
    dry_run: bool = False,
    limit: int = MAX_BULK,
    cursor: str | None = None,
) -> BulkReplayResult:
    """Replay up to `limit` deliveries a filter selects, in id order after `cursor`.

    Selects deliveries in `states` (failed and/or dead_lettered) that ended (their
    `updated_at`) in [since, until), of `destination_id` if given, whose destination is
    live and enabled, and that were never replayed: running the same filter again never
    replays a delivery twice. A dry run writes nothing and returns the ids that would be
    replayed. A real run writes one audit record (action `deliveries.bulk_replayed`).
    """
    wanted = list(dict.fromkeys(states))
    if not wanted or any(s not in BULK_STATES for s in wanted):
        raise ValueError(f"states must be a non-empty subset of {list(BULK_STATES)}")
    if not 1 <= limit <= MAX_BULK:
        raise ValueError(f"limit must be between 1 and {MAX_BULK}")
    after = decode_cursor(cursor)
    filter_doc = {
        "destination_id": str(destination_id) if destination_id else None,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "states": wanted,
        "cursor": cursor,
        "limit": limit,
    }
    params = {
        "tenant_id": tenant_id,
        "actor": actor,
        "destination_id": destination_id,
        "since": since,
        "until": until,
        "states": wanted,
        "after": after,
        "limit": limit,
        "dry_run": dry_run,
        "filter": _dumps(filter_doc),
    }
    row = await store.replay_selected(conn, params)
    ids: list[uuid.UUID] = list(row["delivery_ids"])
    next_cursor = encode_cursor(row["last_id"]) if row["more"] and row["last_id"] else None
    return BulkReplayResult(
        count=len(ids), delivery_ids=ids, next_cursor=next_cursor, dry_run=dry_run
    )
