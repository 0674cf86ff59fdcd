"""/v1/delivery-events: the tenant's lifecycle events as a feed, and as a live stream.

`GET /v1/delivery-events?after=CURSOR&limit=N` answers the next events after the
cursor, in the feed's order, and `next_cursor`: the position to ask from next time (the
same cursor when nothing new is visible yet). A follower that always passes the last
`next_cursor` sees every event exactly once, even when transactions commit out of order
(courier.store.feed explains how).

`GET /v1/delivery-events/stream` sends the same events as Server-Sent Events, each with
its cursor as `id:`; a reconnecting client sends `Last-Event-ID` (or `?after=`) and
resumes right after it. courier.api.event_stream has the mechanics.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from courier.api.auth import Caller, CallerDep, authenticate
from courier.api.deps import POOL_TIMEOUT, ConnDep
from courier.api.event_stream import EventStreamResponse, FeedHub, StreamConfig, event_stream
from courier.api.openapi import errors
from courier.api.pagination import DEFAULT_LIMIT, LimitQuery
from courier.api.problems import invalid_field
from courier.api.routes.metrics import app_metrics, pool_conninfo
from courier.store.feed import FeedPosition, InvalidCursor, read_feed

EVENT_TYPES = (
    "delivery.created",
    "delivery.delivered",
    "delivery.retry_scheduled",
    "delivery.failed",
    "delivery.dead_lettered",
    "delivery.replayed",
)


class DeliveryEvent(BaseModel):
    """A lifecycle event (CONTRACT section 5; docs/asyncapi.yaml has one schema per type)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    type: str = Field(description="one of " + ", ".join(f"`{t}`" for t in EVENT_TYPES))
    delivery_id: uuid.UUID
    event_id: uuid.UUID
    destination_id: uuid.UUID
    state: str = Field(description="the delivery's state after the transition")
    attempt_number: int = Field(description="the attempt that caused it; 0 before any")
    occurred_at: datetime
    data: dict[str, Any] = Field(description="type-specific details: outcome, http_status, …")


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
    Query(max_length=200, description="`next_cursor` (or an SSE `id`) to resume after"),
]
CursorAliasQuery = Annotated[
    str | None,
    Query(max_length=200, description="the same as `after` (the list convention's name)"),
]


def _position(cursor: str | None, field: str, location: str) -> FeedPosition:
    try:
        return FeedPosition.from_cursor(cursor)
    except InvalidCursor as exc:
        raise invalid_field(field, str(exc), location) from None


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One LISTEN connection per app wakes the streams."""
    hub = FeedHub(pool_conninfo(app))
    app.state.feed_hub = hub
    if not hasattr(app.state, "event_stream_config"):
        app.state.event_stream_config = StreamConfig()
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop), name="courier-feed-hub")
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=10)


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
    field = "after" if after is not None else "cursor"
    given = after if after is not None else cursor
    position = _position(given, field, "query")
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
    async with request.app.state.pool.connection(timeout=POOL_TIMEOUT) as conn:
        return await authenticate(conn, credentials)


@router.get("/stream", include_in_schema=False)
async def stream_delivery_events(
    request: Request,
    caller: Annotated[Caller, Depends(stream_caller)],
    after: AfterQuery = None,
    last_event_id: Annotated[str | None, Header(max_length=200)] = None,
) -> EventStreamResponse:
    """Server-Sent Events: `id:` is the cursor, `data:` the event JSON (docs/asyncapi.yaml)."""
    if last_event_id:
        position = _position(last_event_id, "Last-Event-ID", "header")
    else:
        position = _position(after, "after", "query")
    config: StreamConfig = request.app.state.event_stream_config
    body = event_stream(
        pool=request.app.state.pool,
        hub=request.app.state.feed_hub,
        tenant_id=caller.tenant_id,
        after=position,
        config=config,
    )
    return EventStreamResponse(
        body, send_timeout_s=config.send_timeout_s, metrics=app_metrics(request.app)
    )
