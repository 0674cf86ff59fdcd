"""POST /v1/events and /v1/events/batch: write events and their fan-out deliveries;
GET /v1/events and /v1/events/{id}: read them back.

The events, one delivery per enabled destination whose `event_types` match, their
`delivery.created` lifecycle events and the NOTIFY that wakes workers are one
statement (`enqueue_events`), so they commit together. An idempotency key (body
`idempotency_key` or `Idempotency-Key` header) makes a repeat answer 200 with the first
answer's body and write nothing; racing repeats serialise on the unique index. The same
key with another type or payload is a 422 naming `idempotency_key`.

A batch checks each item here, before the statement: a bad item answers its own 422
(fields named `events[3].type`) and the others are written all the same.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, Response, status
from pydantic import TypeAdapter, ValidationError

from courier.api.auth import CallerDep
from courier.api.openapi import errors
from courier.api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, after_id, keyset_page
from courier.api.payload_schemas import check_payload
from courier.api.schemas import (
    BatchEventAccepted,
    BatchEventRefused,
    Event,
    EventAccepted,
    EventBatch,
    EventBatchResults,
    EventCreate,
    EventDelivery,
    Page,
    TimeQuery,
)
from courier.enqueue import (
    EnqueueResult,
    IdempotencyKeyReused,
    NewEvent,
    enqueue_event_async,
    enqueue_events_async,
)
from courier.store import resources
from courier.web.deps import ConnDep, SettingsDep
from courier.web.destination_input import EVENT_TYPE_PATTERN, IdempotencyKey
from courier.web.problems import (
    PROBLEM_TYPE_BASE,
    FieldError,
    NotFound,
    Problem,
    ProblemError,
    invalid_field,
)

router = APIRouter(prefix="/v1/events", tags=["events"])


KEY_REUSED = "reused with another request: the key names an event of another type or payload"
_ITEM = TypeAdapter(EventCreate)


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
    request: Request,
    idempotency_key: Annotated[
        IdempotencyKey | None,
        Header(
            alias="Idempotency-Key",
            description="the same as `idempotency_key` in the body (if both are sent, "
            "they must be equal)",
        ),
    ] = None,
) -> Response:
    key = body.idempotency_key
    if idempotency_key is not None:
        if key is not None and key != idempotency_key:
            raise invalid_field(
                "idempotency_key", "differs from the Idempotency-Key header; send one of them"
            )
        key = idempotency_key
    payload = _payload_bytes(body.payload)
    await check_payload(request.app, conn, caller.tenant_id, body.type, body.payload)
    try:
        # One statement on an autocommit connection commits everything it writes together;
        # a BEGIN and COMMIT around it would add two round trips and no guarantee.
        result = await enqueue_event_async(conn, caller.tenant_id, body.type, payload, key)
    except IdempotencyKeyReused:
        raise invalid_field("idempotency_key", KEY_REUSED) from None
    # The answer is encoded here, once: through the response model FastAPI would validate
    # again what it was just built from, then encode it field by field. Its shape is
    # still EventAccepted's, as documented.
    return Response(
        orjson.dumps(_accepted_json(result)),
        status_code=status.HTTP_202_ACCEPTED if result.created else status.HTTP_200_OK,
        media_type="application/json",
    )


def _accepted_json(result: EnqueueResult) -> dict[str, Any]:
    """EventAccepted as JSON (see _accepted)."""
    return {
        "id": str(result.event_id),
        "deliveries": [
            {
                "id": str(d.id),
                "destination_id": str(d.destination_id),
                "state": d.state if result.created else "pending",
            }
            for d in result.deliveries
        ],
    }


def _accepted(result: EnqueueResult) -> EventAccepted:
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


@router.post(
    "/batch",
    summary="Send up to 1,000 events; each is answered on its own",
    response_model=EventBatchResults,
    response_description="One result per event, in request order",
    responses={
        **errors(413, 422),
        413: {"model": Problem, "description": "Request body larger than COURIER_MAX_BATCH_BYTES"},
        422: {
            "model": Problem,
            "description": 'The body is not `{"events": [...]}` of at '
            "most 1,000 items; a bad item is answered in its own result",
        },
    },
)
async def create_events(
    body: EventBatch, caller: CallerDep, conn: ConnDep, settings: SettingsDep, request: Request
) -> EventBatchResults:
    results: list[BatchEventAccepted | BatchEventRefused | None] = [None] * len(body.events)
    positions: list[int] = []
    items: list[NewEvent] = []
    for index, raw in enumerate(body.events):
        checked = _batch_item(index, raw, settings.max_payload_bytes)
        if not isinstance(checked, BatchEventRefused):
            try:
                # the item's payload against its type's schema, as POST /v1/events checks it
                await check_payload(
                    request.app, conn, caller.tenant_id, checked.type, raw["payload"]
                )
            except ProblemError as exc:
                checked = _refused(index, [(e.field, e.message) for e in exc.errors])
        if isinstance(checked, BatchEventRefused):
            results[index] = checked
        else:
            positions.append(index)
            items.append(checked)
    if items:
        # one statement, committed on its own (see create_event)
        outcomes = await enqueue_events_async(conn, caller.tenant_id, items)
        for index, outcome in zip(positions, outcomes, strict=True):
            if isinstance(outcome, EnqueueResult):
                results[index] = BatchEventAccepted(
                    status=202 if outcome.created else 200, event=_accepted(outcome)
                )
            else:
                results[index] = _refused(index, [("idempotency_key", KEY_REUSED)])
    return EventBatchResults(results=[r for r in results if r is not None])


def _batch_item(index: int, raw: Any, max_payload_bytes: int) -> NewEvent | BatchEventRefused:
    """One item checked as POST /v1/events checks its body, or its 422."""
    if not isinstance(raw, dict):
        return _refused(index, [("", "must be an object with `type` and `payload`")])
    try:
        item = _ITEM.validate_python(raw)
    except ValidationError as exc:
        return _refused(index, [(_path(error["loc"]), str(error["msg"])) for error in exc.errors()])
    try:
        payload = _payload_bytes(item.payload)
    except ProblemError as exc:
        return _refused(index, [(e.field, e.message) for e in exc.errors])
    if len(payload) > max_payload_bytes:
        return _refused(index, [("payload", f"is larger than {max_payload_bytes} bytes")])
    return NewEvent(item.type, payload, item.idempotency_key)


def _path(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def _refused(index: int, failures: list[tuple[str, str]]) -> BatchEventRefused:
    """A 422 problem for item `index`; each failure is (path within the item, message)."""
    found = [
        FieldError(
            field=f"events[{index}]" + (path if path[:1] in ("", ".", "[") else f".{path}"),
            location="body",
            message=message,
        )
        for path, message in failures
    ]
    return BatchEventRefused(
        status=422,
        problem=Problem(
            type=PROBLEM_TYPE_BASE + "validation-error",
            title="Request validation failed",
            status=422,
            detail="; ".join(f"{e.field}: {e.message}" for e in found),
            errors=found,
        ),
    )


@router.get(
    "",
    summary="List events, newest first, by type and time",
    response_model=Page[Event],
    responses=errors(422),
)
async def list_events(
    caller: CallerDep,
    conn: ConnDep,
    event_type: Annotated[
        str | None,
        Query(alias="type", max_length=255, pattern=EVENT_TYPE_PATTERN, description="exact type"),
    ] = None,
    since: Annotated[TimeQuery | None, Query(description="created at or after this time")] = None,
    until: Annotated[
        TimeQuery | None,
        Query(description="created before this time (not after `since`: nothing)"),
    ] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[Event]:
    rows = await resources.list_events(
        conn,
        caller.tenant_id,
        event_type=event_type,
        since=since,
        until=until,
        after=after_id(cursor),
        limit=limit,
    )
    return keyset_page(Event, rows, limit)


@router.get(
    # only an id matches, so `/v1/events/batch` stays POST only (its 405 says so)
    "/{event_id:uuid}",
    summary="Read an event, with its payload and the ids of its deliveries",
    response_model=Event,
    responses=errors(404, 422),
)
async def get_event(event_id: uuid.UUID, caller: CallerDep, conn: ConnDep) -> Event:
    row = await resources.get_event(conn, caller.tenant_id, event_id)
    if row is None:
        raise NotFound("event")
    return Event.model_validate(row)
