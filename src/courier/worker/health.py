"""Destination health, and the service that turns off destinations that stopped working.

`read_health` is what `GET /v1/destinations/{id}/health` shows: consecutive failures
(failed attempts since the last success), the last success, the success ratio over the
last hour, and how long the current failure streak or run of `410 Gone` answers lasts.

`HealthService.run_once()` disables, with an audit record (`destination.auto_disabled`,
actor `system:health`) and `disabled_reason`, each enabled destination that

- failed every attempt for `auto_disable_after_seconds` (default 5 days) and has at
  least one dead letter in that time (`auto_disabled_failing`), or
- answered only `410 Gone` for `gone_confirm_seconds` (default 1 day): the receiver
  asks to stop (`auto_disabled_gone`).

Only attempts made since the destination was last enabled count, so re-enabling it
starts a new judgement; a bad hour never disables anything. One run at a time across
all processes (a session advisory lock); tests call `run_once()` directly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row

from courier.settings import Settings
from courier.store.queries import query

HEALTH_LOCK_KEY = 7_240_314_160  # pg_try_advisory_lock key of the health service
ACTOR = "system:health"
REASON_FAILING = "auto_disabled_failing"
REASON_GONE = "auto_disabled_gone"


@dataclass(frozen=True, slots=True)
class HealthConfig:
    auto_disable_after_seconds: float = 5 * 86_400  # every attempt failed this long
    gone_confirm_seconds: float = 86_400  # only 410 Gone answers this long

    @classmethod
    def from_settings(cls, settings: Settings) -> HealthConfig:
        return cls(
            auto_disable_after_seconds=settings.auto_disable_after_seconds,
            gone_confirm_seconds=settings.gone_confirm_seconds,
        )


@dataclass(frozen=True, slots=True)
class Disabled:
    tenant_id: uuid.UUID
    destination_id: uuid.UUID
    reason: str


@dataclass(frozen=True, slots=True)
class HealthRun:
    ran: bool  # False: another process holds the lock
    checked: int = 0
    disabled: list[Disabled] = field(default_factory=list)


def _params(
    config: HealthConfig,
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID | None,
    enabled_only: bool,
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "destination_id": destination_id,
        "enabled_only": enabled_only,
        "failing_seconds": config.auto_disable_after_seconds,
    }


async def read_health(
    conn: psycopg.AsyncConnection[Any],
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID,
    config: HealthConfig | None = None,
) -> dict[str, Any] | None:
    """One destination's health (see the module docstring); None when there is none."""
    cfg = config or HealthConfig()
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            query("destination_health"), _params(cfg, tenant_id, destination_id, False)
        )
        row = await cur.fetchone()
    if row is None:
        return None
    finished = int(row["attempts_last_hour"])
    return {
        **row,
        "attempts_last_hour": finished,
        "success_ratio_last_hour": (
            int(row["successes_last_hour"]) / finished if finished else None
        ),
    }


def verdict(row: dict[str, Any], config: HealthConfig) -> str | None:
    """The reason to disable a destination whose health row this is, or None (pure)."""
    if not row["enabled"]:
        return None
    now: datetime = row["checked_at"]
    gone_since: datetime | None = row["gone_since"]
    if gone_since is not None and now - gone_since >= timedelta(
        seconds=config.gone_confirm_seconds
    ):
        return REASON_GONE
    failing_since: datetime | None = row["failing_since"]
    if (
        failing_since is not None
        and now - failing_since >= timedelta(seconds=config.auto_disable_after_seconds)
        and row["dead_letter_in_streak"]
    ):
        return REASON_FAILING
    return None


def _evidence(row: dict[str, Any]) -> str:
    keys = ("failing_since", "gone_since", "last_success_at", "consecutive_failures")
    return orjson.dumps({k: row[k] for k in keys}).decode("utf-8")


class HealthService:
    def __init__(self, database_url: str, config: HealthConfig | None = None) -> None:
        self.database_url = database_url
        self.config = config or HealthConfig()

    async def run_once(self) -> HealthRun:
        """Judge every enabled destination of every tenant once; returns what it did."""
        async with (
            await psycopg.AsyncConnection.connect(self.database_url, autocommit=True) as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            await cur.execute(query("maintenance_try_lock"), {"key": HEALTH_LOCK_KEY})
            locked = await cur.fetchone()
            if not locked or not locked["locked"]:
                return HealthRun(ran=False)
            try:
                return await self._judge(cur)
            finally:
                await cur.execute(query("maintenance_unlock"), {"key": HEALTH_LOCK_KEY})

    async def _judge(self, cur: psycopg.AsyncCursor[dict[str, Any]]) -> HealthRun:
        checked = 0
        disabled: list[Disabled] = []
        await cur.execute(query("maintenance_tenants"))
        tenants = [r["id"] for r in await cur.fetchall()]
        for tenant_id in tenants:
            await cur.execute(
                query("destination_health"), _params(self.config, tenant_id, None, True)
            )
            rows = await cur.fetchall()
            checked += len(rows)
            for row in rows:
                reason = verdict(row, self.config)
                if reason is None:
                    continue
                await cur.execute(
                    query("health_disable_destination"),
                    {
                        "tenant_id": tenant_id,
                        "destination_id": row["destination_id"],
                        "enabled_at": row["enabled_at"],
                        "reason": reason,
                        "actor": ACTOR,
                        "data": _evidence(row),
                    },
                )
                if await cur.fetchone() is not None:
                    disabled.append(Disabled(tenant_id, row["destination_id"], reason))
        return HealthRun(ran=True, checked=checked, disabled=disabled)
