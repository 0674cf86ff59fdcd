"""/v1/deliveries and /v1/dead-letters: what happened to each delivery, attempt by attempt."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from courier.api.auth import CallerDep
from courier.api.deps import ConnDep
from courier.api.openapi import errors
from courier.api.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    CursorQuery,
    LimitQuery,
    NumberCursorQuery,
    after_id,
    after_number,
    keyset_page,
    row_attempt_cursor,
)
from courier.api.problems import NotFound
from courier.api.schemas import (
    Attempt,
    Delivery,
    DeliveryState,
    DeliveryWithAttempts,
    Page,
    Ticket,
)
from courier.store import resources

router = APIRouter(tags=["deliveries"])
NOUN = "delivery"
# every attempt of a delivery in one answer; max_attempts is at most 100, and a
# lease takeover adds at most one abandoned attempt per claim
ATTEMPTS_IN_DELIVERY = 1000


@router.get(
    "/v1/deliveries",
    summary="List deliveries, newest first, by state, destination or event",
    response_model=Page[Delivery],
    responses=errors(422),
)
async def list_deliveries(
    caller: CallerDep,
    conn: ConnDep,
    state: Annotated[DeliveryState | None, Query()] = None,
    destination_id: Annotated[uuid.UUID | None, Query()] = None,
    event_id: Annotated[uuid.UUID | None, Query()] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[Delivery]:
    rows = await resources.list_deliveries(
        conn,
        caller.tenant_id,
        state=state,
        destination_id=destination_id,
        event_id=event_id,
        after=after_id(cursor),
        limit=limit,
    )
    return keyset_page(Delivery, rows, limit)


@router.get(
    "/v1/deliveries/{delivery_id}",
    summary="Read a delivery with its attempts",
    response_model=DeliveryWithAttempts,
    responses=errors(404, 422),
)
async def get_delivery(
    delivery_id: uuid.UUID, caller: CallerDep, conn: ConnDep
) -> DeliveryWithAttempts:
    row = await resources.get_delivery(conn, caller.tenant_id, delivery_id)
    if row is None:
        raise NotFound(NOUN)
    attempts = await resources.list_attempts(
        conn, caller.tenant_id, delivery_id, after=0, limit=ATTEMPTS_IN_DELIVERY
    )
    found = await resources.get_delivery_ticket(conn, caller.tenant_id, delivery_id)
    ticket = None
    if found is not None:
        ticket = Ticket(id=found["ticket_id"], url=found["ticket_url"], action=found["action"])
    return DeliveryWithAttempts.model_validate(
        {**row, "attempts": [Attempt.model_validate(a) for a in attempts], "ticket": ticket}
    )


@router.get(
    "/v1/deliveries/{delivery_id}/attempts",
    summary="List a delivery's attempts, oldest first",
    response_model=Page[Attempt],
    responses=errors(404, 422),
)
async def list_attempts(
    delivery_id: uuid.UUID,
    caller: CallerDep,
    conn: ConnDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: NumberCursorQuery = None,
) -> Page[Attempt]:
    after = after_number(cursor)
    if await resources.get_delivery(conn, caller.tenant_id, delivery_id) is None:
        raise NotFound(NOUN)
    rows = await resources.list_attempts(
        conn, caller.tenant_id, delivery_id, after=after, limit=min(limit, MAX_LIMIT)
    )
    return keyset_page(Attempt, rows, limit, row_attempt_cursor)


@router.get(
    "/v1/dead-letters",
    summary="List dead-lettered deliveries with their reason, newest first",
    response_model=Page[Delivery],
    responses=errors(422),
)
async def list_dead_letters(
    caller: CallerDep,
    conn: ConnDep,
    destination_id: Annotated[uuid.UUID | None, Query()] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[Delivery]:
    rows = await resources.list_deliveries(
        conn,
        caller.tenant_id,
        state="dead_lettered",
        destination_id=destination_id,
        event_id=None,
        after=after_id(cursor),
        limit=limit,
    )
    return keyset_page(Delivery, rows, limit)
