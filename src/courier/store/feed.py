"""The lifecycle-event feed: a tenant's events in a stable order, read page by page.

A position is the (txid, seq) of the last event a reader has seen; the cursor that the
API hands out is that pair as text. `read_feed` returns only events of transactions
that have ended (see `feed_page` in sql/feed.sql for why that makes the order final),
so a follower that always resumes from its last position sees every event exactly once,
including those whose transaction commits after later-numbered ones.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from courier.errors import InvalidCursor as InvalidCursor
from courier.store.rows import AsyncConn, Row, fetch_all

# The cursor is the position in plain text, `<txid>.<seq>`, so that the OpenAPI document
# can state its exact pattern: every matching string is a position the feed accepts.
CURSOR_PATTERN = r"^[0-9]{1,20}\.[0-9]{1,19}$"
_CURSOR = re.compile(CURSOR_PATTERN)
_LEGACY_PREFIX = "f1:"
_MAX_TXID = 2**64 - 1  # xid8
_MAX_SEQ = 2**63 - 1  # bigint


@dataclass(frozen=True, slots=True, order=True)
class FeedPosition:
    txid: int  # the writing transaction's id (xid8)
    seq: int  # the row's sequence number within lifecycle_events

    def cursor(self) -> str:
        return f"{self.txid}.{self.seq}"

    @classmethod
    def from_cursor(cls, cursor: str | None) -> FeedPosition:
        """The position a cursor names; None (no cursor) is the start of the feed.

        A number beyond what the columns hold names a position after every event, so it
        is read as the largest one (the reader is caught up) rather than refused.
        """
        if cursor is None or cursor == "":
            return START
        if _CURSOR.fullmatch(cursor) is None:
            cursor = _legacy_cursor(cursor)
        txid, _, seq = cursor.partition(".")
        return cls(min(int(txid), _MAX_TXID), min(int(seq), _MAX_SEQ))


def _legacy_cursor(cursor: str) -> str:
    """The `<txid>.<seq>` inside a cursor of the first format (base64url of `f1:<txid>.<seq>`).

    Feed readers keep their cursor to resume after a restart, so cursors issued before the
    plain-text format stay valid; the OpenAPI document states only the current pattern.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (UnicodeError, binascii.Error, ValueError):
        raise InvalidCursor("not a cursor this API issued") from None
    body = text.removeprefix(_LEGACY_PREFIX)
    if body == text or _CURSOR.fullmatch(body) is None:
        raise InvalidCursor("not a cursor this API issued")
    return body


START = FeedPosition(0, 0)


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    id: uuid.UUID
    tenant_id: uuid.UUID
    type: str
    delivery_id: uuid.UUID | None  # None for a destination's own events (destination.*)
    event_id: uuid.UUID | None
    destination_id: uuid.UUID
    state: str
    attempt_number: int
    occurred_at: datetime
    data: dict[str, Any]
    position: FeedPosition

    @property
    def cursor(self) -> str:
        return self.position.cursor()

    def to_json(self) -> dict[str, Any]:
        """The event as the API and the stream show it (docs/asyncapi.yaml), JSON-ready."""
        return {
            "id": str(self.id),
            "tenant_id": str(self.tenant_id),
            "type": self.type,
            "delivery_id": _text(self.delivery_id),
            "event_id": _text(self.event_id),
            "destination_id": str(self.destination_id),
            "state": self.state,
            "attempt_number": self.attempt_number,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": self.data,
        }


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def event_from_row(row: Row) -> LifecycleEvent:
    """A lifecycle_events row (with `txid` as text) as a LifecycleEvent."""
    return LifecycleEvent(
        id=row["id"],
        tenant_id=row["tenant_id"],
        type=row["type"],
        delivery_id=row["delivery_id"],
        event_id=row["event_id"],
        destination_id=row["destination_id"],
        state=row["state"],
        attempt_number=row["attempt_number"],
        occurred_at=row["occurred_at"],
        data=row["data"],
        position=FeedPosition(int(row["txid"]), int(row["seq"])),
    )


def _params(tenant_id: uuid.UUID, after: FeedPosition, limit: int) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "after_txid": str(after.txid),
        "after_seq": after.seq,
        "limit": limit,
    }


async def read_feed(
    conn: AsyncConn, tenant_id: uuid.UUID, after: FeedPosition, limit: int
) -> list[LifecycleEvent]:
    """Up to `limit` events of `tenant_id` after `after`, of ended transactions only."""
    rows = await fetch_all(conn, "feed_page", _params(tenant_id, after, limit))
    return [event_from_row(r) for r in rows]
