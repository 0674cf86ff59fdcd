"""/v1/deliveries and /v1/dead-letters: what happened to each delivery, attempt by
attempt, and the replays (one delivery, or the dead letters a filter selects).

courier.replay does the replaying (the operator console calls it too); these routes map
its answers and exceptions onto HTTP and problem documents.
"""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from courier import replay
from courier.api.auth import CallerDep
from courier.api.openapi import conflict_response, errors
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
from courier.api.schemas import (
    Attempt,
    BulkReplayed,
    DeadLetterReplay,
    Delivery,
    DeliveryState,
    DeliveryWithAttempts,
    Page,
    Ticket,
)
from courier.store import resources
from courier.web.deps import ConnDep
from courier.web.destination_input import IdempotencyKey
from courier.web.problems import NotFound, conflict, invalid_field

# Tags per route, not per router: a replay is listed under operations first.
TAGS: list[str | Enum] = ["deliveries"]
OPERATION_TAGS: list[str | Enum] = ["operations", "deliveries"]
router = APIRouter()
NOUN = "delivery"
# every attempt of a delivery in one answer; max_attempts is at most 100, and a
# lease takeover adds at most one abandoned attempt per claim
ATTEMPTS_IN_DELIVERY = 1000


@router.get(
    "/v1/deliveries",
    summary="List deliveries, newest first, by state, destination or event",
    response_model=Page[Delivery],
    responses=errors(422),
    tags=TAGS,
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
    tags=TAGS,
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
    tags=TAGS,
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
    tags=TAGS,
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


@router.post(
    "/v1/deliveries/{delivery_id}/replay",
    status_code=status.HTTP_201_CREATED,
    summary="Replay a finished delivery: a new pending delivery with `replay_of`",
    response_model=Delivery,
    response_description="The new delivery",
    responses={
        200: {"model": Delivery, "description": "A repeated Idempotency-Key: the first replay"},
        **errors(404, 422),
        **conflict_response(
            "The delivery is not finished, or its destination is deleted or disabled"
        ),
    },
    tags=OPERATION_TAGS,
)
async def replay_delivery(
    delivery_id: uuid.UUID,
    caller: CallerDep,
    conn: ConnDep,
    response: Response,
    idempotency_key: Annotated[
        IdempotencyKey | None,
        Header(alias="Idempotency-Key", description="a repeat answers the first replay"),
    ] = None,
) -> Delivery:
    try:
        result = await replay.replay_delivery(
            conn,
            caller.tenant_id,
            delivery_id,
            actor=caller.actor,
            idempotency_key=idempotency_key,
        )
    except replay.NotFound:
        raise NotFound("delivery") from None
    except replay.NotReplayable as exc:
        slug = "not-replayable" if exc.reason == "not_terminal" else "destination-unavailable"
        raise conflict(str(exc), slug) from None
    except replay.KeyReused as exc:
        raise invalid_field("Idempotency-Key", str(exc), "header") from None
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return Delivery.model_validate(result.delivery)


@router.post(
    "/v1/dead-letters/replay",
    summary="Replay dead-lettered (and failed) deliveries a filter selects, in pages",
    response_model=BulkReplayed,
    responses=errors(413, 422),
    tags=OPERATION_TAGS,
)
async def replay_dead_letters(
    body: DeadLetterReplay, caller: CallerDep, conn: ConnDep
) -> BulkReplayed:
    if body.since is not None and body.until is not None and body.until < body.since:
        raise invalid_field("until", "must not be before since")
    try:
        result = await replay.replay_dead_letters(
            conn,
            caller.tenant_id,
            actor=caller.actor,
            destination_id=body.destination_id,
            since=body.since,
            until=body.until,
            states=body.states,
            dry_run=body.dry_run,
            cursor=body.cursor,
        )
    except replay.InvalidCursor as exc:
        raise invalid_field("cursor", str(exc)) from None
    return BulkReplayed(
        count=result.count,
        delivery_ids=result.delivery_ids,
        next_cursor=result.next_cursor,
        dry_run=result.dry_run,
    )
