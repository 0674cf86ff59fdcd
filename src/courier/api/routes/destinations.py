"""/v1/destinations: create, list, read, change, delete, the explicit secret read and
secret rotation; recovery after an outage, a test send, and health.

courier.recovery, courier.ping and courier.destination_health do that work (the
operator console calls them too); these routes map their answers and exceptions onto
HTTP and problem documents.

Responses never carry a signing secret, except the create answer, the rotate answer and
`GET /v1/destinations/{id}/secret`.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime
from enum import Enum
from typing import Annotated

from fastapi import APIRouter, Body, Response, status

from courier import ping, recovery
from courier.api.auth import CallerDep
from courier.api.openapi import conflict_response, errors
from courier.api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, after_id, keyset_page
from courier.api.schemas import (
    Destination,
    DestinationCreated,
    DestinationHealth,
    DestinationPatched,
    DestinationRecover,
    DestinationRecovered,
    DestinationSecrets,
    DestinationTestSend,
    DestinationTestSent,
    Page,
    SecretRotate,
    SecretRotated,
    SigningSecret,
)
from courier.destination_health import HealthConfig, read_health
from courier.store import resources
from courier.web import catalog_examples, destination_writes
from courier.web.deps import BoxDep, ConnDep, SettingsDep
from courier.web.destination_input import DestinationCreate, DestinationUpdate
from courier.web.problems import NotFound, conflict, invalid_field

# Tags per route, not per router: recovery, the test send and health are listed under
# operations first.
TAGS: list[str | Enum] = ["destinations"]
OPERATION_TAGS: list[str | Enum] = ["operations", "destinations"]
router = APIRouter(prefix="/v1/destinations")
NOUN = "destination"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a destination (the answer holds its signing secret)",
    response_model=DestinationCreated,
    responses=errors(413, 422),
    tags=TAGS,
)
async def create_destination(
    body: DestinationCreate,
    caller: CallerDep,
    conn: ConnDep,
    settings: SettingsDep,
    box: BoxDep,
) -> DestinationCreated:
    row, secret = await destination_writes.create(
        conn, caller.tenant_id, caller.actor, body, box, settings
    )
    return DestinationCreated.model_validate({**row, "signing_secret": secret})


@router.get(
    "",
    summary="List destinations, newest first",
    response_model=Page[Destination],
    responses=errors(422),
    tags=TAGS,
)
async def list_destinations(
    caller: CallerDep,
    conn: ConnDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[Destination]:
    rows = await resources.list_destinations(
        conn, caller.tenant_id, after=after_id(cursor), limit=limit
    )
    return keyset_page(Destination, rows, limit)


@router.get(
    "/{destination_id}",
    summary="Read a destination",
    response_model=Destination,
    responses=errors(404, 422),
    tags=TAGS,
)
async def get_destination(
    destination_id: uuid.UUID, caller: CallerDep, conn: ConnDep
) -> Destination:
    row = await resources.get_destination(conn, caller.tenant_id, destination_id)
    if row is None:
        raise NotFound(NOUN)
    return Destination.model_validate(row)


@router.patch(
    "/{destination_id}",
    summary="Change a destination: url, enabled, event types, filter, retry policy, timeout",
    response_model=DestinationPatched,
    responses=errors(404, 413, 422),
    tags=TAGS,
)
async def update_destination(
    destination_id: uuid.UUID,
    body: DestinationUpdate,
    caller: CallerDep,
    conn: ConnDep,
    settings: SettingsDep,
    box: BoxDep,
) -> DestinationPatched:
    updated = await destination_writes.update(
        conn, caller.tenant_id, destination_id, caller.actor, body.changes(), box, settings
    )
    if updated is None:
        raise NotFound(NOUN)
    missed = updated.missed
    return DestinationPatched.model_validate(
        {**updated.row, "recovery": asdict(missed) if missed is not None else None}
    )


@router.delete(
    "/{destination_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a destination (its waiting deliveries fail as destination_missing)",
    response_class=Response,
    responses=errors(404, 422),
    tags=TAGS,
)
async def delete_destination(destination_id: uuid.UUID, caller: CallerDep, conn: ConnDep) -> None:
    if not await resources.delete_destination(conn, caller.tenant_id, destination_id, caller.actor):
        raise NotFound(NOUN)


@router.get(
    "/{destination_id}/secret",
    summary="Read a destination's live signing secrets (audited)",
    response_model=DestinationSecrets,
    responses=errors(404, 422),
    tags=TAGS,
)
async def read_destination_secret(
    destination_id: uuid.UUID, caller: CallerDep, conn: ConnDep, box: BoxDep
) -> DestinationSecrets:
    entries = await resources.read_destination_secrets(
        conn, caller.tenant_id, destination_id, caller.actor
    )
    if entries is None:
        raise NotFound(NOUN)
    now = datetime.now().astimezone()
    live = [
        SigningSecret(
            secret=box.decrypt(e["token"]),
            created_at=e.get("created_at"),
            expires_at=e.get("expires_at"),
        )
        for e in entries
        if not e.get("expires_at") or datetime.fromisoformat(e["expires_at"]) > now
    ]
    if not live:  # every secret expired: nothing signs, so nothing to show
        raise NotFound(NOUN)
    return DestinationSecrets(
        destination_id=destination_id, signing_secret=live[0].secret, secrets=live
    )


@router.post(
    "/{destination_id}/rotate-secret",
    summary="Rotate the signing secret; the previous one keeps signing for a grace period",
    response_model=SecretRotated,
    responses=errors(404, 413, 422),
    tags=TAGS,
)
async def rotate_destination_secret(
    destination_id: uuid.UUID,
    caller: CallerDep,
    conn: ConnDep,
    box: BoxDep,
    body: Annotated[SecretRotate | None, Body()] = None,
) -> SecretRotated:
    """During the grace period every request carries one signature per live secret;
    an earlier expiry of an older secret is never extended; expired secrets are dropped."""
    grace = (body or SecretRotate()).grace_period_seconds
    rotated = await destination_writes.rotate_secret(
        conn, caller.tenant_id, destination_id, caller.actor, box, grace
    )
    if rotated is None:
        raise NotFound(NOUN)
    return SecretRotated(
        signing_secret=rotated.secret, previous_expires_at=rotated.previous_expires_at
    )


@router.post(
    "/{destination_id}/recover",
    summary="Deliver what a destination missed while it was disabled",
    response_model=DestinationRecovered,
    responses={
        **errors(404, 413, 422),
        **conflict_response("The destination is disabled: enable it first (a dry run works)"),
    },
    tags=OPERATION_TAGS,
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
        raise conflict(
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
    "/{destination_id}/test",
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
        **conflict_response("The destination is disabled: enable it first"),
    },
    tags=OPERATION_TAGS,
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
        raise conflict(
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
    "/{destination_id}/health",
    summary="A destination's health: failures in a row, last success, last hour's ratio",
    response_model=DestinationHealth,
    responses=errors(404, 422),
    tags=OPERATION_TAGS,
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
