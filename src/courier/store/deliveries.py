"""Typed functions over the delivery engine's statements (enqueue, claim, complete,
leases)."""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, LiteralString

import orjson
import psycopg
from psycopg.rows import dict_row

from courier.store.database import HOT_PATH_SETTINGS
from courier.store.pooler import local_settings
from courier.store.queries import query
from courier.store.rows import Row, fetch_all, fetch_all_of


def _hot_path(
    conn: psycopg.AsyncConnection[Any], pooled: bool
) -> contextlib.AbstractAsyncContextManager[None]:
    """Where the worker's statements run: as they are on its own connections, which carry
    HOT_PATH_SETTINGS from the start; through a pooler (`pooled`), in a transaction that
    sets them first, as a pooled connection cannot carry them (see courier.store.pooler)."""
    if pooled:
        return local_settings(conn, HOT_PATH_SETTINGS)
    return contextlib.nullcontext()


# Not frozen: a frozen dataclass's __init__ sets every field through object.__setattr__
# (about 5x slower), and the worker builds several of these per delivery.
@dataclass(slots=True)
class ClaimedDelivery:
    tenant_id: uuid.UUID
    id: uuid.UUID
    event_id: uuid.UUID
    destination_id: uuid.UUID
    attempt_number: int
    created_at: datetime
    payload: bytes
    url: str
    timeout_ms: int
    max_attempts: int
    max_age_seconds: int
    backoff_initial_ms: int
    backoff_max_ms: int
    signing_secrets: list[dict[str, Any]]
    # The kind's adapter and its settings; `config_secrets` maps field -> token.
    kind: str = "webhook"
    event_type: str = ""
    max_in_flight: int = 16
    config: dict[str, Any] = field(default_factory=dict)
    config_secrets: dict[str, str] = field(default_factory=dict)
    # Destination options (courier.destination_options): `option_secrets` maps path -> token.
    options: dict[str, Any] = field(default_factory=dict)
    option_secrets: dict[str, str] = field(default_factory=dict)
    payload_format: str = "raw"
    capture_response_body: bool = False
    event_created_at: datetime | None = None

    @property
    def key(self) -> tuple[uuid.UUID, uuid.UUID]:
        return (self.tenant_id, self.id)


ZERO_UUID = uuid.UUID(int=0)
MAX_DESTINATIONS_PER_CLAIM = 256  # destinations one claim visits at most


@dataclass(slots=True)
class ClaimCursor:
    """Where a worker's walk over destinations resumes: successive claims go round-robin."""

    tenant_id: uuid.UUID = ZERO_UUID
    destination_id: uuid.UUID = ZERO_UUID

    def reset(self) -> None:
        self.tenant_id = self.destination_id = ZERO_UUID

    @property
    def at_start(self) -> bool:
        return self.tenant_id == ZERO_UUID and self.destination_id == ZERO_UUID


@dataclass(slots=True)
class Completion:
    """A finished attempt, waiting to be group-committed."""

    tenant_id: uuid.UUID
    delivery_id: uuid.UUID
    attempt_number: int
    state: str  # delivered | retry_scheduled | failed | dead_lettered
    outcome: str  # succeeded | retryable_failure | permanent_failure
    retry_delay_s: float | None
    http_status: int | None
    error_summary: str | None
    duration_ms: int
    reason: str | None
    response_body_excerpt: str | None = None

    @property
    def key(self) -> tuple[uuid.UUID, uuid.UUID]:
        return (self.tenant_id, self.delivery_id)


@dataclass(slots=True)
class Completed:
    tenant_id: uuid.UUID
    id: uuid.UUID
    state: str
    created_at: datetime
    completed_at: datetime


def _tenant_filter(tenant_ids: Sequence[uuid.UUID] | None) -> dict[str, Any]:
    return {"all_tenants": tenant_ids is None, "tenant_ids": list(tenant_ids or [])}


async def claim_deliveries(
    conn: psycopg.AsyncConnection[Any],
    *,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    tenant_ids: Sequence[uuid.UUID] | None,
    cursor: ClaimCursor | None = None,
    pooled: bool = False,
) -> list[ClaimedDelivery]:
    """Claim up to `limit` due deliveries, fairly across destinations (see the SQL)."""
    cursor = cursor if cursor is not None else ClaimCursor()
    params = {
        "worker_id": worker_id,
        "limit": limit,
        "lease_seconds": lease_seconds,
        "after_tenant": cursor.tenant_id,
        "after_destination": cursor.destination_id,
        "max_destinations": MAX_DESTINATIONS_PER_CLAIM,
        **_tenant_filter(tenant_ids),
    }
    async with _hot_path(conn, pooled):
        rows = await fetch_all(conn, "claim_deliveries", params)
    secrets_by_text: dict[str, list[dict[str, Any]]] = {}
    configs_by_text: dict[str, dict[str, Any]] = {}
    for r in rows:
        text = r["signing_secrets"]
        parsed = secrets_by_text.get(text)
        if parsed is None:
            parsed = secrets_by_text[text] = orjson.loads(text)
        r["signing_secrets"] = parsed  # rows of one destination share one list
        for column in ("config", "config_secrets", "options", "option_secrets"):
            text = r[column]
            config = configs_by_text.get(text)
            if config is None:
                config = configs_by_text[text] = orjson.loads(text)
            r[column] = config
    if not rows or rows[0]["walk_complete"] or rows[0]["walk_tenant"] is None:
        cursor.reset()
    else:
        cursor.tenant_id = rows[0]["walk_tenant"]
        cursor.destination_id = rows[0]["walk_destination"]
    return [
        ClaimedDelivery(
            tenant_id=r["tenant_id"],
            id=r["id"],
            event_id=r["event_id"],
            destination_id=r["destination_id"],
            attempt_number=r["attempt_count"],
            created_at=r["created_at"],
            payload=r["payload"].encode("utf-8"),
            url=r["url"],
            timeout_ms=r["timeout_ms"],
            max_attempts=r["max_attempts"],
            max_age_seconds=r["max_age_seconds"],
            backoff_initial_ms=r["backoff_initial_ms"],
            backoff_max_ms=r["backoff_max_ms"],
            signing_secrets=r["signing_secrets"],
            kind=r["kind"],
            event_type=r["event_type"],
            max_in_flight=r["max_in_flight"],
            config=r["config"],
            config_secrets=r["config_secrets"],
            options=r["options"],
            option_secrets=r["option_secrets"],
            payload_format=r["payload_format"],
            capture_response_body=r["capture_response_body"],
            event_created_at=r["event_created_at"],
        )
        for r in rows
    ]


def completion_batch(completions: Sequence[Completion]) -> str:
    """The JSON document complete_attempts sends: one object per completion.

    orjson writes each Completion (a dataclass) as an object keyed by its field names,
    which are the columns the statement's json_to_recordset reads.
    """
    return orjson.dumps(list(completions)).decode("utf-8")


async def complete_attempts(
    conn: psycopg.AsyncConnection[Any],
    *,
    worker_id: str,
    completions: Sequence[Completion],
    pooled: bool = False,
) -> list[Completed]:
    """Write a batch of finished attempts in one statement; returns those not fenced out."""
    params = {"worker_id": worker_id, "batch": completion_batch(completions)}
    async with _hot_path(conn, pooled), conn.cursor() as cur:
        await cur.execute(query("complete_attempts"), params)
        rows = await cur.fetchall()
    return [Completed(*row) for row in rows]


async def extend_leases(
    conn: psycopg.AsyncConnection[Any],
    *,
    worker_id: str,
    keys: Sequence[tuple[uuid.UUID, uuid.UUID]],
    lease_seconds: float,
    pooled: bool = False,
) -> int:
    params = {
        "worker_id": worker_id,
        "lease_seconds": lease_seconds,
        "tenant_ids": [k[0] for k in keys],
        "delivery_ids": [k[1] for k in keys],
    }
    async with _hot_path(conn, pooled), conn.cursor() as cur:
        await cur.execute(query("extend_leases"), params)
        return len(await cur.fetchall())


async def release_leases(
    conn: psycopg.AsyncConnection[Any],
    *,
    worker_id: str,
    keys: Sequence[tuple[uuid.UUID, uuid.UUID]],
    pooled: bool = False,
) -> int:
    params = {
        "worker_id": worker_id,
        "tenant_ids": [k[0] for k in keys],
        "delivery_ids": [k[1] for k in keys],
    }
    async with _hot_path(conn, pooled), conn.cursor() as cur:
        await cur.execute(query("release_leases"), params)
        return len(await cur.fetchall())


async def next_due_at(
    conn: psycopg.AsyncConnection[Any], *, tenant_ids: Sequence[uuid.UUID] | None
) -> datetime | None:
    async with conn.cursor() as cur:
        await cur.execute(query("next_due_at"), _tenant_filter(tenant_ids))
        row = await cur.fetchone()
    return row[0] if row else None


def secret_samples(
    conn: psycopg.Connection[Any], *, tenant_ids: Sequence[uuid.UUID] | None
) -> list[tuple[uuid.UUID, str]]:
    """(tenant id, encrypted token): one signing secret per tenant (see the SQL)."""
    rows = conn.execute(query("secret_samples"), _tenant_filter(tenant_ids)).fetchall()
    return [(row[0], row[1]) for row in rows]


async def hand_back_unsignable(
    conn: psycopg.AsyncConnection[Any],
    *,
    worker_id: str,
    claimed: Sequence[ClaimedDelivery],
    delay_s: float,
) -> int:
    """Undo the claims of rows this worker cannot sign; returns how many it handed back."""
    params = {
        "worker_id": worker_id,
        "tenant_ids": [c.tenant_id for c in claimed],
        "delivery_ids": [c.id for c in claimed],
        "attempt_numbers": [c.attempt_number for c in claimed],
        "delay_s": delay_s,
    }
    async with conn.cursor() as cur:
        await cur.execute(query("hand_back_unsignable"), params)
        return len(await cur.fetchall())


_ITEM_ARRAYS: Final = ("types", "payloads", "keys")  # enqueue_events' per-item parameters


@functools.cache
def _one_event_statement() -> LiteralString:
    """`enqueue_events` for a batch of one, each item array written `ARRAY[$x]`.

    The same statement (one fan-out definition), but its plan knows the batch holds one
    item. Given arrays of unknown length, a cached plan assumes ten items, so ten
    idempotency-key probes: once stored events carry keys, that plan looks dearer than
    planning each call, and PostgreSQL planned every single-event enqueue afresh (about
    1 ms of its CPU per event with 20,000 keyed events stored; bench/ingest_growth.py).
    """
    statement = query("enqueue_events")
    for name in _ITEM_ARRAYS:
        array = f"%({name})s::text[]"
        if array not in statement:
            raise RuntimeError(f"enqueue_events no longer takes {array}")
        statement = statement.replace(array, f"ARRAY[%({name})s::text]")
    return statement


def _enqueue_statement(params: dict[str, Any]) -> tuple[LiteralString, dict[str, Any]]:
    if len(params["types"]) != 1:
        return query("enqueue_events"), params
    one = {name: (value[0] if name in _ITEM_ARRAYS else value) for name, value in params.items()}
    return _one_event_statement(), one


def enqueue_rows(conn: psycopg.Connection[Any], params: dict[str, Any]) -> list[Row]:
    """One round of `enqueue_events`: a row per item and delivery (see deliveries.sql)."""
    statement, params = _enqueue_statement(params)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(statement, params).fetchall()


async def enqueue_rows_async(
    conn: psycopg.AsyncConnection[Any], params: dict[str, Any]
) -> list[Row]:
    """`enqueue_rows` on an asyncio connection."""
    statement, params = _enqueue_statement(params)
    return await fetch_all_of(conn, statement, params)


def events_by_idempotency_keys(conn: psycopg.Connection[Any], params: dict[str, Any]) -> list[Row]:
    """The committed events (and their deliveries) of the keys in `params`."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query("events_by_idempotency_keys"), params).fetchall()


async def events_by_idempotency_keys_async(
    conn: psycopg.AsyncConnection[Any], params: dict[str, Any]
) -> list[Row]:
    """`events_by_idempotency_keys` on an asyncio connection."""
    return await fetch_all(conn, "events_by_idempotency_keys", params)
