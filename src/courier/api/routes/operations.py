"""Operations routes: replay one delivery, replay dead letters in bulk, recover a
destination after an outage, send it a test event, and read its health.

The work is done by plain modules (courier.replay, courier.recovery, courier.ping,
courier.worker.health) that the operator console calls too; these routes map their
answers and exceptions onto HTTP and problem documents.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response, status

from courier import ping, recovery, replay
from courier.api import catalog_examples
from courier.api.auth import CallerDep
from courier.api.deps import ConnDep, SettingsDep
from courier.api.openapi import errors
from courier.api.problems import NotFound, Problem, ProblemError, invalid_field
from courier.api.schemas import (
    BulkReplayed,
    DeadLetterReplay,
    Delivery,
    DestinationHealth,
    DestinationRecover,
    DestinationRecovered,
    DestinationTestSend,
    DestinationTestSent,
    IdempotencyKey,
)
from courier.destination_health import HealthConfig, read_health

router = APIRouter(tags=["operations"])


def _conflict(detail: str, slug: str) -> ProblemError:
    return ProblemError(409, detail, slug=slug)


def _with_409(description: str) -> dict[int | str, dict[str, Any]]:
    """A 409 problem response for `responses=` (openapi.errors has no 409)."""
    return {409: {"model": Problem, "description": description}}


@router.post(
    "/v1/deliveries/{delivery_id}/replay",
    status_code=status.HTTP_201_CREATED,
    summary="Replay a finished delivery: a new pending delivery with `replay_of`",
    response_model=Delivery,
    response_description="The new delivery",
    responses={
        200: {"model": Delivery, "description": "A repeated Idempotency-Key: the first replay"},
        **errors(404, 422),
        **_with_409("The delivery is not finished, or its destination is deleted or disabled"),
    },
    tags=["deliveries"],
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
        raise _conflict(str(exc), slug) from None
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
    tags=["deliveries"],
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


@router.post(
    "/v1/destinations/{destination_id}/recover",
    summary="Deliver what a destination missed while it was disabled",
    response_model=DestinationRecovered,
    responses={
        **errors(404, 413, 422),
        **_with_409("The destination is disabled: enable it first (a dry run works)"),
    },
    tags=["destinations"],
)
async def recover_destination(
    destination_id: uuid.UUID, body: DestinationRecover, caller: CallerDep, conn: ConnDep
) -> DestinationRecovered:
    if body.until is not None and body.until < body.since:
        raise invalid_field("until", "must not be before since")
    try:
        result = await recovery.recover_destination(
            conn,
            caller.tenant_id,
            destination_id,
            actor=caller.actor,
            since=body.since,
            until=body.until,
            dry_run=body.dry_run,
        )
    except recovery.DestinationNotFound:
        raise NotFound("destination") from None
    except recovery.DestinationDisabled:
        raise _conflict(
            "The destination is disabled: enable it first, then recover.", "destination-disabled"
        ) from None
    return DestinationRecovered(
        count=result.count,
        delivery_ids=result.delivery_ids,
        missed_events=result.missed_events,
        disabled_failures=result.disabled_failures,
        event_ids=result.event_ids,
        replayed_ids=result.replayed_ids,
        more=result.more,
        dry_run=result.dry_run,
    )


@router.post(
    "/v1/destinations/{destination_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a test event to this destination only, whatever its filter: a "
    "`courier.test`, or a catalog type's example payload",
    description="Without a body the event is a `courier.test`. With `event_type` (and "
    "`example`, from 0) it is that catalog type carrying that example payload, which must "
    "satisfy the type's schema; either way only this destination receives it, and outage "
    "recovery never hands it to another.",
    response_model=DestinationTestSent,
    responses={
        **errors(404, 413, 422),
        **_with_409("The destination is disabled: enable it first"),
    },
    tags=["destinations"],
)
async def send_test_event(
    destination_id: uuid.UUID,
    caller: CallerDep,
    conn: ConnDep,
    body: Annotated[DestinationTestSend | None, Body()] = None,
) -> DestinationTestSent:
    event = None
    if body is not None:
        event = await catalog_examples.example_event(
            conn, caller.tenant_id, body.event_type, body.example
        )
    try:
        sent = await ping.send_test_event(
            conn, caller.tenant_id, destination_id, actor=caller.actor, event=event
        )
    except ping.DestinationNotFound:
        raise NotFound("destination") from None
    except ping.DestinationDisabled:
        raise _conflict(
            "The destination is disabled: enable it first, then send a test.",
            "destination-disabled",
        ) from None
    return DestinationTestSent(
        event_id=sent.event_id,
        delivery_id=sent.delivery_id,
        event_type=sent.event_type,
        filter_bypassed=sent.filter_bypassed,
    )


@router.get(
    "/v1/destinations/{destination_id}/health",
    summary="A destination's health: failures in a row, last success, last hour's ratio",
    response_model=DestinationHealth,
    responses=errors(404, 422),
    tags=["destinations"],
)
async def destination_health(
    destination_id: uuid.UUID, caller: CallerDep, conn: ConnDep, settings: SettingsDep
) -> DestinationHealth:
    row = await read_health(
        conn, caller.tenant_id, destination_id, HealthConfig.from_settings(settings)
    )
    if row is None:
        raise NotFound("destination")
    return DestinationHealth.model_validate(row)
