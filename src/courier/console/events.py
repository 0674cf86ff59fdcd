"""The tenant's events as the console shows them: the event-type catalog (names,
descriptions, example payloads, schemas) and the live lifecycle stream the pages
re-render on (SSE, authenticated by the session cookie).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from courier.console.auth import current_operator, live_session, signer_of, to_sign_in
from courier.console.inputs import text_field
from courier.console.rendering import PAGE_SIZE, pretty, render
from courier.console.session import SESSION_COOKIE
from courier.store import console as store
from courier.store import portal as portal_store
from courier.store.feed import LifecycleEvent
from courier.web import catalog_examples
from courier.web.deps import POOL_TIMEOUT, ConnDep
from courier.web.event_stream import (
    SLOTS_RETRY_AFTER_S,
    EventStreamResponse,
    event_stream,
)
from courier.web.metrics import app_metrics
from courier.web.state import request_state

router = APIRouter(prefix="/console", include_in_schema=False)

EVENT_TYPE_MAX_CHARS = 255  # the longest event type name


@router.get("/event-types")
async def event_types_page(request: Request, conn: ConnDep, after: str | None = None) -> Response:
    """The tenant's event-type catalog: names, descriptions, example payloads, schemas."""
    operator = await current_operator(request, conn)
    if operator is None:
        return to_sign_in(request)
    after = text_field("after", after, EVENT_TYPE_MAX_CHARS)
    rows = await portal_store.list_event_types(
        conn, operator.tenant_id, after=after, limit=PAGE_SIZE
    )
    shown = rows[:PAGE_SIZE]
    return render(
        "event_types.html",
        operator=operator,
        nav="event-types",
        types=shown,
        next_after=shown[-1]["name"] if len(rows) > PAGE_SIZE else None,
        pretty=pretty,
        examples_of=catalog_examples.examples_of,
    )


@router.get("/events")
async def console_events(request: Request) -> Response:
    """The tenant's lifecycle events from now on, as SSE; the pages re-render on each."""
    state = request_state(request)
    hub, slots = state.feed_hub, state.stream_slots
    signer = signer_of(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if hub is None or slots is None or signer is None:
        return Response(status_code=503)
    async with state.open_pool().connection(timeout=POOL_TIMEOUT) as conn:
        operator = await current_operator(request, conn)
        if operator is None or cookie is None:
            return Response(status_code=401)
        head = await store.feed_head(conn, operator.tenant_id)
    if not slots.acquire(operator.tenant_id):
        return Response(status_code=429, headers={"Retry-After": str(SLOTS_RETRY_AFTER_S)})
    config = state.event_stream_config

    async def still_signed_in(conn: store.AsyncConn) -> bool:
        # The session may expire or its key be revoked while the stream runs.
        return await live_session(signer, cookie, conn) is not None

    def visible(event: LifecycleEvent) -> bool:
        return operator.sees(event.destination_id)

    body = event_stream(
        pool=state.open_pool(),
        hub=hub,
        tenant_id=operator.tenant_id,
        after=head,
        config=config,
        authorized=still_signed_in,
        visible=visible if operator.scope is not None else None,
    )
    return EventStreamResponse(
        body,
        send_timeout_s=config.send_timeout_s,
        metrics=app_metrics(request.app),
        on_close=lambda: slots.release(operator.tenant_id),
    )
