"""/v1/event-types: the tenant's event-type catalog.

`PUT /v1/event-types/{name}` creates or replaces a type: a description, optionally a JSON
Schema (2020-12, checked as a schema: an invalid one is a 422 naming where) and an example
payload (which must satisfy the schema). Once a type has a schema, `POST /v1/events`
refuses payloads that fail it (courier.api.payload_schemas).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from courier.api.auth import CallerDep
from courier.api.openapi import errors
from courier.api.pagination import (
    DEFAULT_LIMIT,
    LimitQuery,
    NameCursorQuery,
    after_name,
    name_cursor,
)
from courier.api.payload_schemas import schema_cache
from courier.api.portal_schemas import EventTypeOut, EventTypePut
from courier.api.schemas import Page
from courier.event_schemas import InvalidPayload, InvalidSchema, compile_schema, validate
from courier.store import portal as store
from courier.web.deps import ConnDep
from courier.web.destination_input import EVENT_TYPE_PATTERN
from courier.web.problems import NotFound, invalid_field

router = APIRouter(prefix="/v1/event-types", tags=["event types"])
NOUN = "event type"
TypeName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=255,
        pattern=EVENT_TYPE_PATTERN,
        description="the event type, as `type` in `POST /v1/events`",
        examples=["order.created"],
    ),
]


@router.put(
    "/{name}",
    summary="Create or replace an event type: description, JSON Schema, example",
    response_model=EventTypeOut,
    # 404 never answers a PUT (it creates); listed as on every route with a path id.
    responses={201: {"model": EventTypeOut, "description": "Created"}, **errors(404, 413, 422)},
)
async def put_event_type(
    name: TypeName,
    body: EventTypePut,
    caller: CallerDep,
    conn: ConnDep,
    request: Request,
    response: Response,
) -> EventTypeOut:
    if body.schema_ is not None:
        try:
            validator = compile_schema(body.schema_)
        except InvalidSchema as exc:
            raise invalid_field(exc.path, exc.problem) from None
        if body.example is not None:
            try:
                validate(validator, body.example, "example")
            except InvalidPayload as exc:
                raise invalid_field(exc.path, exc.problem) from None
    row = await store.put_event_type(
        conn,
        caller.tenant_id,
        name,
        description=body.description,
        schema=body.schema_,
        example=body.example,
    )
    schema_cache(request.app).forget(caller.tenant_id, name)
    if row["created"]:
        response.status_code = status.HTTP_201_CREATED
    return EventTypeOut.model_validate(row)


@router.get(
    "",
    summary="List the event types, by name",
    response_model=Page[EventTypeOut],
    responses=errors(422),
)
async def list_event_types(
    caller: CallerDep,
    conn: ConnDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: NameCursorQuery = None,
) -> Page[EventTypeOut]:
    rows = await store.list_event_types(
        conn, caller.tenant_id, after=after_name(cursor), limit=limit
    )
    page = rows[:limit]
    return Page[EventTypeOut](
        items=[EventTypeOut.model_validate(r) for r in page],
        next_cursor=name_cursor(page[-1]["name"]) if len(rows) > limit else None,
    )


@router.get(
    "/{name}",
    summary="Read an event type",
    response_model=EventTypeOut,
    responses=errors(404, 422),
)
async def get_event_type(name: TypeName, caller: CallerDep, conn: ConnDep) -> EventTypeOut:
    row = await store.get_event_type(conn, caller.tenant_id, name)
    if row is None:
        raise NotFound(NOUN)
    return EventTypeOut.model_validate(row)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an event type (its events are no longer validated)",
    responses=errors(404, 422),
)
async def delete_event_type(
    name: TypeName, caller: CallerDep, conn: ConnDep, request: Request
) -> Response:
    if not await store.delete_event_type(conn, caller.tenant_id, name):
        raise NotFound(NOUN)
    schema_cache(request.app).forget(caller.tenant_id, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
