"""Enqueue events inside the caller's transaction (the transactional outbox).

    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("INSERT INTO orders ...")
        enqueue_event(conn, tenant_id, "order.created", {"id": 42})
        enqueue_events(conn, tenant_id, [NewEvent("order.paid", {"id": 42}), ...])

The events and their fan-out deliveries commit or roll back with the caller's own rows.
A single event is a batch of one: both go through the one `enqueue_events` statement,
which writes everything in one round trip and sends one NOTIFY per call. PostgreSQL
delivers NOTIFYs only on commit and folds identical ones sent in one transaction into
one, so a transaction wakes the workers once however many calls it makes.

An idempotency key names the first request made with it: repeating that request writes
nothing and answers as the first did (`created` False); reusing the key with another
type or payload is refused (`KeyReused`, or `IdempotencyKeyReused` from enqueue_event).
Payloads compare as the JSON text that is stored, signed and sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import psycopg

from courier.errors import CourierError
from courier.store.deliveries import (
    enqueue_rows,
    enqueue_rows_async,
    events_by_idempotency_keys,
    events_by_idempotency_keys_async,
)

MAX_LOOKUP_ROUNDS = 3  # statement + lookup rounds for keys racing a concurrent writer


@dataclass(frozen=True, slots=True)
class NewEvent:
    type: str
    payload: Any  # a JSON-serialisable value, or its JSON text as bytes
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class EnqueuedDelivery:
    id: uuid.UUID
    destination_id: uuid.UUID
    state: str


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    event_id: uuid.UUID
    created_at: datetime
    created: bool  # False: the idempotency key was seen before and nothing was written
    deliveries: list[EnqueuedDelivery] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class KeyReused:
    """The item's idempotency key names an event made with another type or payload."""

    idempotency_key: str
    event_id: uuid.UUID  # the event the key names


class IdempotencyKeyReused(CourierError, ValueError):
    def __init__(self, reused: KeyReused) -> None:
        super().__init__(f"idempotency key {reused.idempotency_key!r} was used for another request")
        self.reused = reused


Outcome = EnqueueResult | KeyReused
EventInput = NewEvent | Mapping[str, Any]


def _payload_text(payload: Any) -> str:
    body = payload if isinstance(payload, bytes | bytearray) else orjson.dumps(payload)
    return bytes(body).decode("utf-8")


def _items(events: Iterable[EventInput]) -> list[NewEvent]:
    items = []
    for event in events:
        if not isinstance(event, NewEvent):
            event = NewEvent(event["type"], event["payload"], event.get("idempotency_key"))
        items.append(event)
    return items


@dataclass(slots=True)
class _Batch:
    """The statement's parameters and the outcomes found so far, by position."""

    tenant_id: uuid.UUID
    types: list[str]
    payloads: list[str]
    keys: list[str | None]
    outcomes: list[Outcome | None]

    @classmethod
    def of(cls, tenant_id: uuid.UUID | str, items: Sequence[NewEvent]) -> _Batch:
        return cls(
            tenant_id=uuid.UUID(str(tenant_id)),
            types=[item.type for item in items],
            payloads=[_payload_text(item.payload) for item in items],
            keys=[item.idempotency_key for item in items],
            outcomes=[None] * len(items),
        )

    def pending(self) -> list[int]:
        return [i for i, outcome in enumerate(self.outcomes) if outcome is None]

    def params(self, positions: Sequence[int]) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "types": [self.types[i] for i in positions],
            "payloads": [self.payloads[i] for i in positions],
            "keys": [self.keys[i] for i in positions],
        }

    def lookup_params(self, positions: Sequence[int]) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "keys": sorted({self.keys[i] for i in positions})}

    def read_statement(self, positions: Sequence[int], rows: Sequence[dict[str, Any]]) -> None:
        """Record the outcome of each resolved item of an enqueue_events call."""
        for ord_, group in _grouped(rows, "ord").items():
            first = group[0]
            if not first["resolved"]:
                continue
            at = positions[ord_ - 1]
            if not first["same_request"]:
                self.outcomes[at] = KeyReused(str(self.keys[at]), first["event_id"])
            else:
                self.outcomes[at] = _result(group, first["created"])

    def read_lookup(self, positions: Sequence[int], rows: Sequence[dict[str, Any]]) -> None:
        """Answer items whose key a concurrent writer took, from the committed events."""
        found = _grouped(rows, "idempotency_key")
        for at in positions:
            group = found.get(self.keys[at])
            if not group:
                continue  # gone again: the next round writes it
            first = group[0]
            if first["type"] == self.types[at] and first["payload"] == self.payloads[at]:
                self.outcomes[at] = _result(group, created=False)
            else:
                self.outcomes[at] = KeyReused(str(self.keys[at]), first["event_id"])

    def done(self) -> list[Outcome]:
        missing = self.pending()
        if missing:
            raise RuntimeError(f"enqueue could not settle {len(missing)} idempotency keys")
        return [outcome for outcome in self.outcomes if outcome is not None]


def _grouped(rows: Sequence[dict[str, Any]], column: str) -> dict[Any, list[dict[str, Any]]]:
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[column], []).append(row)
    return groups


def _result(rows: Sequence[dict[str, Any]], created: bool) -> EnqueueResult:
    first = rows[0]
    return EnqueueResult(
        event_id=first["event_id"],
        created_at=first["created_at"],
        created=created,
        deliveries=[
            EnqueuedDelivery(r["delivery_id"], r["destination_id"], r["state"])
            for r in rows
            if r["delivery_id"] is not None
        ],
    )


# The statement rounds of one call, written once for both connection kinds: the
# generator yields (lookup, params), is sent the rows they answered, and returns the
# outcomes; enqueue_events and enqueue_events_async only run the statements it asks for.
_Rounds = Generator[tuple[bool, dict[str, Any]], Sequence[dict[str, Any]], list[Outcome]]


def _rounds(batch: _Batch) -> _Rounds:
    for _ in range(MAX_LOOKUP_ROUNDS):
        positions = batch.pending()
        if not positions:
            break
        batch.read_statement(positions, (yield False, batch.params(positions)))
        positions = batch.pending()
        if positions:
            batch.read_lookup(positions, (yield True, batch.lookup_params(positions)))
    return batch.done()


def enqueue_events(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID | str, events: Iterable[EventInput]
) -> list[Outcome]:
    """Write events and their deliveries on `conn`, in whatever transaction it is in.

    `events` are NewEvent or mappings with `type`, `payload` and an optional
    `idempotency_key`. Answers one outcome per event, in order. One round trip, unless
    a concurrent transaction races for one of the keys.
    """
    rounds = _rounds(_Batch.of(tenant_id, _items(events)))
    try:
        lookup, params = next(rounds)
        while True:
            run = events_by_idempotency_keys if lookup else enqueue_rows
            lookup, params = rounds.send(run(conn, params))
    except StopIteration as finished:
        outcomes: list[Outcome] = finished.value
        return outcomes


async def enqueue_events_async(
    conn: psycopg.AsyncConnection[Any],
    tenant_id: uuid.UUID | str,
    events: Iterable[EventInput],
) -> list[Outcome]:
    """The same as enqueue_events, on an asyncio connection."""
    rounds = _rounds(_Batch.of(tenant_id, _items(events)))
    try:
        lookup, params = next(rounds)
        while True:
            run = events_by_idempotency_keys_async if lookup else enqueue_rows_async
            lookup, params = rounds.send(await run(conn, params))
    except StopIteration as finished:
        outcomes: list[Outcome] = finished.value
        return outcomes


def _single(outcome: Outcome) -> EnqueueResult:
    if isinstance(outcome, KeyReused):
        raise IdempotencyKeyReused(outcome)
    return outcome


def enqueue_event(
    conn: psycopg.Connection[Any],
    tenant_id: uuid.UUID | str,
    event_type: str,
    payload: Any,
    idempotency_key: str | None = None,
) -> EnqueueResult:
    """Write an event and its deliveries on `conn`, in whatever transaction it is in.

    Raises IdempotencyKeyReused when the key names an event of another type or payload.
    """
    (outcome,) = enqueue_events(conn, tenant_id, [NewEvent(event_type, payload, idempotency_key)])
    return _single(outcome)


async def enqueue_event_async(
    conn: psycopg.AsyncConnection[Any],
    tenant_id: uuid.UUID | str,
    event_type: str,
    payload: Any,
    idempotency_key: str | None = None,
) -> EnqueueResult:
    """The same as enqueue_event, on an asyncio connection."""
    (outcome,) = await enqueue_events_async(
        conn, tenant_id, [NewEvent(event_type, payload, idempotency_key)]
    )
    return _single(outcome)
