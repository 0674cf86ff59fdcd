"""Creating, changing and rotating the secret of a destination: what the API's routes and
the console's forms both do, with the same checks and the same audit records.

Each function takes a validated body (courier.api.schemas) and raises `ProblemError` (a
422 naming the field) for what pydantic cannot check: the URL against the settings, a
kind's config, backoff bounds compared with each other. None answers "no such
destination" (missing, deleted or another tenant's).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg.types.json import Jsonb

from courier import filters, recovery
from courier.crypto import SecretBox
from courier.destination_options import OPTION_FIELDS
from courier.destinations import secret_entry
from courier.rotation import rotate_entries
from courier.settings import Settings
from courier.signing import generate_secret
from courier.store import resources
from courier.store.rows import AsyncConn, Row
from courier.web import kind_config, option_fields
from courier.web.destination_input import DestinationCreate
from courier.web.problems import invalid_field


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def _filter_column(document: dict[str, Any] | None) -> Jsonb | None:
    """A valid filter as stored (none for `{}`: it matches every event), else a 422
    naming the first bad place in it, e.g. `filter.data.amount.$gte`."""
    if not document:
        return None
    found = filters.problems(document)
    if found:
        first = found[0]
        raise invalid_field(f"filter.{first.where}" if first.where else "filter", first.message)
    return Jsonb(document, dumps=_dumps)


@dataclass(frozen=True, slots=True)
class Updated:
    row: Row
    missed: recovery.Outage | None  # what it missed, when this change enabled it


@dataclass(frozen=True, slots=True)
class Rotated:
    secret: str  # the new signing secret, shown once
    previous_expires_at: datetime | None


async def create(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    actor: str,
    body: DestinationCreate,
    box: SecretBox,
    settings: Settings,
) -> tuple[Row, str]:
    """The new row and its signing secret (shown to the caller once)."""
    kind_columns = kind_config.for_create(body.kind, body.url, body.config, box, settings)
    if body.backoff_max_ms < body.backoff_initial_ms:
        raise invalid_field("backoff_max_ms", "must be at least backoff_initial_ms")
    secret = generate_secret()
    option_columns = option_fields.columns(
        {f: getattr(body, f) for f in OPTION_FIELDS},
        None,
        kind_columns["url"],
        body.kind,
        box,
        settings,
    )
    # The option fields' plaintext stays out: only their encrypted columns are written.
    fields = {
        **body.model_dump(exclude=set(OPTION_FIELDS)),
        **kind_columns,
        **option_columns,
        "filter": _filter_column(body.filter),
    }
    fields["signing_secrets"] = Jsonb([secret_entry(box, secret)], dumps=_dumps)
    row = await resources.create_destination(conn, tenant_id, actor, fields)
    return row, secret


async def update(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID,
    actor: str,
    changes: dict[str, Any],
    box: SecretBox,
    settings: Settings,
) -> Updated | None:
    """Apply the fields sent (a PATCH's `changes()`), in one transaction."""
    async with conn.transaction():
        current = await resources.lock_destination(conn, tenant_id, destination_id)
        if current is None:
            return None
        merged = {**current, **changes}
        if {"kind", "config", "url"} & changes.keys():
            merged.update(kind_config.for_update(current, changes, box, settings))
        else:  # unchanged: written back as they are
            merged["config"] = Jsonb(current["config"], dumps=_dumps)
            merged["config_secrets"] = Jsonb(current["config_secrets"], dumps=_dumps)
        merged.update(
            option_fields.columns(
                {f: changes[f] for f in OPTION_FIELDS if f in changes},
                current,
                merged["url"],
                merged["kind"],
                box,
                settings,
            )
        )
        if "filter" in changes:
            merged["filter"] = _filter_column(changes["filter"])
        elif current["filter"] is not None:  # unchanged: written back as it is
            merged["filter"] = Jsonb(current["filter"], dumps=_dumps)
        if merged["backoff_max_ms"] < merged["backoff_initial_ms"]:
            field = "backoff_max_ms" if "backoff_max_ms" in changes else "backoff_initial_ms"
            raise invalid_field(field, "backoff_max_ms must be at least backoff_initial_ms")
        row = await resources.update_destination(
            conn, tenant_id, destination_id, actor, merged, sorted(changes)
        )
        if row is None:  # pragma: no cover - the row was locked above
            return None
        missed = None
        if row["enabled"] and not current["enabled"]:
            # enabled again: what it missed while off (see courier.recovery)
            since = current["disabled_at"] or current["created_at"]
            missed = await recovery.outage(conn, tenant_id, destination_id, since)
    return Updated(row, missed)


async def rotate_secret(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID,
    actor: str,
    box: SecretBox,
    grace_seconds: int,
) -> Rotated | None:
    """A new signing secret; the previous one keeps signing for `grace_seconds`; an
    earlier expiry of an older secret is never extended; expired secrets are dropped."""
    secret = generate_secret()
    async with conn.transaction():
        current = await resources.lock_destination(conn, tenant_id, destination_id)
        if current is None:
            return None
        rotated = rotate_entries(
            current["signing_secrets"],
            secret_entry(box, secret),
            now=datetime.now(UTC),
            grace_seconds=grace_seconds,
        )
        await resources.rotate_destination_secret(
            conn,
            tenant_id,
            destination_id,
            actor,
            Jsonb(rotated.entries, dumps=_dumps),
            grace_period_seconds=grace_seconds,
            previous_expires_at=rotated.previous_expires_at,
        )
    return Rotated(secret, rotated.previous_expires_at)
