"""POST /v1/events: write an event and its fan-out deliveries, idempotently.

The event, one delivery per enabled destination whose `event_types` match, their
`delivery.created` lifecycle events and the NOTIFY that wakes workers are one
statement (`enqueue_event`), so they commit together. An idempotency key (body
`idempotency_key` or `Idempotency-Key` header) makes a repeat answer 200 with the first
answer's body and write nothing; racing repeats serialise on the unique index.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status

from courier.api.auth import CallerDep
from courier.api.deps import ConnDep
from courier.api.openapi import errors
from courier.api.problems import invalid_field
from courier.api.schemas import EventAccepted, EventCreate, EventDelivery, IdempotencyKey
from courier.enqueue import enqueue_event_async

router = APIRouter(prefix="/v1/events", tags=["events"])


def _payload_bytes(payload: Any) -> bytes:
    """The payload as compact JSON; refuses what JSON (and PostgreSQL's json) cannot hold."""
    try:
        text = json.dumps(payload, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise invalid_field(
            "payload", "must be valid JSON (no NaN or Infinity, no lone surrogates)"
        ) from None


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send an event: one delivery per subscribed destination",
    response_model=EventAccepted,
    response_description="The event and its deliveries are stored",
    responses={
        200: {
            "model": EventAccepted,
            "description": "A repeated idempotency key: the first answer",
        },
        **errors(413, 422),
    },
)
async def create_event(
    body: EventCreate,
    caller: CallerDep,
    conn: ConnDep,
    response: Response,
    idempotency_key: Annotated[
        IdempotencyKey | None,
        Header(alias="Idempotency-Key", description="the same as `idempotency_key` in the body"),
    ] = None,
) -> EventAccepted:
    key = body.idempotency_key
    if idempotency_key is not None:
        if key is not None and key != idempotency_key:
            raise invalid_field(
                "idempotency_key", "differs from the Idempotency-Key header; send one of them"
            )
        key = idempotency_key
    payload = _payload_bytes(body.payload)
    async with conn.transaction():
        result = await enqueue_event_async(conn, caller.tenant_id, body.type, payload, key)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    # A repeat answers as the first did: every delivery as it was created, pending,
    # whatever progress the deliveries have made since.
    return EventAccepted(
        id=result.event_id,
        deliveries=[
            EventDelivery.model_validate(
                {
                    "id": d.id,
                    "destination_id": d.destination_id,
                    "state": d.state if result.created else "pending",
                }
            )
            for d in result.deliveries
        ],
    )
