"""/v1/delivery-events: the tenant's lifecycle events as a feed, and as a live stream.

`GET /v1/delivery-events?after=CURSOR&limit=N` answers the next events after the
cursor, in the feed's order, and `next_cursor`: the position to ask from next time (the
same cursor when nothing new is visible yet). A follower that always passes the last
`next_cursor` sees every event exactly once, even when transactions commit out of order
(courier.store.feed explains how).

`GET /v1/delivery-events/stream` sends the same events as Server-Sent Events, each with
its cursor as `id:`; a reconnecting client sends `Last-Event-ID` (or `?after=`) and
resumes right after it. The stream ends when its key is revoked (checked again every
`StreamConfig.auth_recheck_s`), and a tenant holding COURIER_MAX_STREAMS_PER_TENANT open
streams is answered 429 with `Retry-After`. courier.web.event_stream has the mechanics.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from courier.api.auth import Caller, CallerDep, authenticate, still_live
from courier.api.openapi import errors
from courier.api.pagination import DEFAULT_LIMIT, LimitQuery
from courier.api.routes.metrics import pool_conninfo
from courier.background import running
from courier.store.feed import CURSOR_PATTERN, FeedPosition, InvalidCursor, read_feed
from courier.web.deps import POOL_TIMEOUT, ConnDep
from courier.web.event_stream import (
    SLOTS_RETRY_AFTER_S,
    EventStreamResponse,
    FeedHub,
    StreamSlots,
    event_stream,
)
from courier.web.metrics import app_metrics
from courier.web.problems import ProblemError, invalid_field
from courier.web.state import request_state, state_of

EVENT_TYPES = (
    "delivery.created",
    "delivery.delivered",
    "delivery.retry_scheduled",
    "delivery.failed",
    "delivery.dead_lettered",
    "delivery.replayed",
    "destination.disabled",
    "destination.enabled",
)


class DeliveryEvent(BaseModel):
    """A lifecycle event (docs/asyncapi.yaml has one schema per type)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    type: str = Field(description="one of " + ", ".join(f"`{t}`" for t in EVENT_TYPES))
    delivery_id: uuid.UUID | None = Field(description="null for `destination.*` events")
    event_id: uuid.UUID | None = Field(description="null for `destination.*` events")
    destination_id: uuid.UUID
    state: str = Field(
        description="the delivery's state after the transition; for `destination.*` "
        "events the destination's: `enabled` or `disabled`"
    )
    attempt_number: int = Field(description="the attempt that caused it; 0 before any")
    occurred_at: datetime
    data: dict[str, Any] = Field(
        description="type-specific details: outcome, http_status, reason, …"
    )


class DeliveryEventFeed(BaseModel):
    items: list[DeliveryEvent]
    next_cursor: str | None = Field(
        description=(
            "pass as `after` next time; it is the given cursor again when nothing new is "
            "visible yet (poll later), and null only while the tenant has no events at all"
        )
    )


AfterQuery = Annotated[
    str | None,
    Query(
        # checked by _position, which also reads cursors issued before this format
        json_schema_extra={"pattern": CURSOR_PATTERN},
        description="`next_cursor` (or an SSE `id`) to resume after",
    ),
]
CursorAliasQuery = Annotated[
    str | None,
    Query(
        # checked by _position, which also reads cursors issued before this format
        json_schema_extra={"pattern": CURSOR_PATTERN},
        description="the same as `after` (the list convention's name); `after` wins over it",
    ),
]
# SSE clients send the last `id` they saw; an empty one means none (as if not sent).
LAST_EVENT_ID_PATTERN = CURSOR_PATTERN.replace("^", "^(?:").replace("$", ")?$")
# What the stream route's 200 looks like in the OpenAPI document: each Server-Sent Event
# (as OpenAPI 3.1 describes a text/event-stream, one schema per event) carries the
# cursor as `id` and one DeliveryEvent as JSON in `data`.
STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "A Server-Sent Events stream that stays open: first `retry: 2000`, then each "
            "lifecycle event after the cursor as it becomes visible (`id:` its cursor, "
            "`data:` the event as one line of JSON), and a `: heartbeat` comment line "
            "when idle. Reconnect with `Last-Event-ID` (or `after`) set to the last `id`."
        ),
        "content": {
            EventStreamResponse.media_type: {
                "schema": {
                    "type": "object",
                    "required": ["id", "data"],
                    "properties": {
                        "id": {
                            "type": "string",
                            "pattern": CURSOR_PATTERN,
                            "description": "the event's cursor",
                        },
                        "event": {"type": "string", "enum": ["message"]},
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": {"$ref": "#/components/schemas/DeliveryEvent"},
                        },
                        "retry": {"type": "integer"},
                    },
                }
            }
        },
    },
    **errors(422),
}


def _position(cursor: str | None, field: str, location: str) -> FeedPosition:
    # An empty query cursor is refused as its pattern says; an empty Last-Event-ID is
    # documented as "none yet" (SSE clients send it that way).
    if cursor == "" and location == "query":
        raise invalid_field(field, "not a cursor this API issued", location)
    try:
        return FeedPosition.from_cursor(cursor)
    except InvalidCursor as exc:
        raise invalid_field(field, str(exc), location) from None


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One LISTEN connection per app wakes the streams; one slot table caps them.

    The LISTEN connects past any transaction-mode pooler (the state's `direct_url`): a
    NOTIFY reaches only the server session that listens."""
    state = state_of(app)
    hub = FeedHub(state.direct_url or pool_conninfo(app))
    state.feed_hub = hub
    state.stream_slots = StreamSlots(state.settings.max_streams_per_tenant)
    async with running(hub.run, "courier-feed-hub"):
        yield


router = APIRouter(prefix="/v1/delivery-events", tags=["delivery-events"], lifespan=lifespan)


@router.get(
    "",
    summary="Follow the tenant's lifecycle events, oldest first, from a cursor",
    response_model=DeliveryEventFeed,
    responses=errors(422),
)
async def list_delivery_events(
    caller: CallerDep,
    conn: ConnDep,
    after: AfterQuery = None,
    cursor: CursorAliasQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> DeliveryEventFeed:
    # `after` wins when both are sent, but both are checked: a bad value is never ignored.
    alias = _position(cursor, "cursor", "query")
    position = _position(after, "after", "query") if after is not None else alias
    given = after if after is not None else cursor
    events = await read_feed(conn, caller.tenant_id, position, limit)
    return DeliveryEventFeed(
        items=[DeliveryEvent.model_validate(e.to_json()) for e in events],
        next_cursor=events[-1].cursor if events else given or None,
    )


_bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey")


async def stream_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller, authenticated on a connection returned at once (not held by the stream)."""
    async with request_state(request).open_pool().connection(timeout=POOL_TIMEOUT) as conn:
        return await authenticate(request, conn, credentials)


@router.get(
    "/stream",
    summary="Stream the tenant's lifecycle events as Server-Sent Events, from a cursor",
    status_code=200,
    response_class=EventStreamResponse,
    responses=STREAM_RESPONSES,
)
async def stream_delivery_events(
    request: Request,
    caller: Annotated[Caller, Depends(stream_caller)],
    after: AfterQuery = None,
    last_event_id: Annotated[
        str | None,
        Header(
            # checked by _position below, whose 422 names the header as clients write it
            json_schema_extra={"pattern": LAST_EVENT_ID_PATTERN},
            description="the last `id` received (empty: as if not sent); wins over `after`",
        ),
    ] = None,
) -> EventStreamResponse:
    """Server-Sent Events: `id:` is the cursor, `data:` the event JSON (docs/asyncapi.yaml)."""
    # `after` is checked even when Last-Event-ID wins, so a bad value is never ignored.
    from_query = _position(after, "after", "query")
    position = _position(last_event_id, "Last-Event-ID", "header") if last_event_id else from_query
    state = request_state(request)
    slots, hub = state.stream_slots, state.feed_hub
    assert slots is not None and hub is not None, "the router's lifespan sets them up"
    if not slots.acquire(caller.tenant_id):
        raise too_many_streams(slots.per_tenant)
    config = state.event_stream_config

    async def authorized(conn: psycopg.AsyncConnection[Any]) -> bool:
        return await still_live(conn, caller)

    body = event_stream(
        pool=state.open_pool(),
        hub=hub,
        tenant_id=caller.tenant_id,
        after=position,
        config=config,
        authorized=authorized,
    )
    return EventStreamResponse(
        body,
        send_timeout_s=config.send_timeout_s,
        metrics=app_metrics(request.app),
        on_close=lambda: slots.release(caller.tenant_id),
    )


def too_many_streams(cap: int) -> ProblemError:
    return ProblemError(
        429,
        f"This tenant already holds {cap} open event streams (the most allowed); "
        "close one or try again later.",
        slug="too-many-streams",
        headers={"Retry-After": str(SLOTS_RETRY_AFTER_S)},
    )
