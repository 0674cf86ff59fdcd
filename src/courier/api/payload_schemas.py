"""The check `POST /v1/events` makes: a payload against its type's schema, if it has one.

`check_payload` is the one hook; a route that accepts several events calls it per event
with `root` naming where the payload sits (e.g. `events[2].payload`). Validators are
compiled once per (tenant, type, version) and cached in this process (see
courier.event_schemas); catalog routes call `forget` when they change a type.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI

from courier.event_schemas import InvalidPayload, SchemaCache, validate
from courier.store import portal as store
from courier.store.rows import AsyncConn
from courier.web.problems import invalid_field
from courier.web.state import state_of


def schema_cache(app: FastAPI) -> SchemaCache:
    return state_of(app).own(SchemaCache, SchemaCache)


async def check_payload(
    app: FastAPI,
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    event_type: str,
    payload: Any,
    root: str = "payload",
) -> None:
    """Raise a 422 problem naming the failing path when the type's schema refuses it."""

    async def read_version(tenant: uuid.UUID, name: str) -> int | None:
        return await store.event_type_version(conn, tenant, name)

    async def read_schema(tenant: uuid.UUID, name: str) -> tuple[int, Any] | None:
        row = await store.event_type_schema(conn, tenant, name)
        return None if row is None else (int(row["version"]), row["schema"])

    validator = await schema_cache(app).validator(tenant_id, event_type, read_version, read_schema)
    if validator is None:
        return
    try:
        validate(validator, payload, root)
    except InvalidPayload as exc:
        raise invalid_field(exc.path, exc.problem) from None
