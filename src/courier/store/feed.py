"""The lifecycle-event feed: a tenant's events in a stable order, read page by page.

A position is the (txid, seq) of the last event a reader has seen; the opaque cursor
that the API hands out encodes it. `read_feed` returns only events of transactions
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

from courier.store.rows import AsyncConn, Row, fetch_all

_CURSOR_PREFIX = "f1:"
_CURSOR_BODY = re.compile(r"^(\d{1,20})\.(\d{1,19})$")


class InvalidCursor(ValueError):
    """A cursor this service did not issue."""


@dataclass(frozen=True, slots=True, order=True)
class FeedPosition:
    txid: int  # the writing transaction's id (xid8)
    seq: int  # the row's sequence number within lifecycle_events

    def cursor(self) -> str:
        text = f"{_CURSOR_PREFIX}{self.txid}.{self.seq}"
        return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")

    @classmethod
    def from_cursor(cls, cursor: str | None) -> FeedPosition:
        """The position a cursor names; None (no cursor) is the start of the feed."""
        if cursor is None or cursor == "":
            return START
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        except (UnicodeError, binascii.Error, ValueError):
            raise InvalidCursor("not a cursor this API issued") from None
        if not text.startswith(_CURSOR_PREFIX):
            raise InvalidCursor("not a cursor this API issued")
        match = _CURSOR_BODY.match(text[len(_CURSOR_PREFIX) :])
        if match is None:
            raise InvalidCursor("not a cursor this API issued")
        txid, seq = int(match.group(1)), int(match.group(2))
        if txid >= 2**64 or seq >= 2**63:
            raise InvalidCursor("not a cursor this API issued")
        return cls(txid, seq)


START = FeedPosition(0, 0)


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    id: uuid.UUID
    tenant_id: uuid.UUID
    type: str
    delivery_id: uuid.UUID
    event_id: uuid.UUID
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
        """The event as the API and the stream show it (CONTRACT section 5), JSON-ready."""
        return {
            "id": str(self.id),
            "tenant_id": str(self.tenant_id),
            "type": self.type,
            "delivery_id": str(self.delivery_id),
            "event_id": str(self.event_id),
            "destination_id": str(self.destination_id),
            "state": self.state,
            "attempt_number": self.attempt_number,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": self.data,
        }


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
