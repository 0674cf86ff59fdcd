"""The maintenance pass that turns off destinations that stopped working.

`HealthService.run_once()` disables, with an audit record (`destination.auto_disabled`,
actor `system:health`) and `disabled_reason`, each enabled destination that
courier.destination_health's verdict condemns. One run at a time across all processes
(a session advisory lock); tests call `run_once()` directly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg

from courier.destination_health import (
    REASON_FAILING,
    REASON_GONE,
    HealthConfig,
    health_params,
    read_health,
    verdict,
)
from courier.store import health as store
from courier.store.maintenance import exclusive_pass, tenant_ids

__all__ = [
    "ACTOR",
    "HEALTH_LOCK_KEY",
    "REASON_FAILING",
    "REASON_GONE",
    "Disabled",
    "HealthConfig",
    "HealthRun",
    "HealthService",
    "read_health",
    "verdict",
]

HEALTH_LOCK_KEY = 7_240_314_160  # pg_try_advisory_lock key of the health service
ACTOR = "system:health"


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


def _evidence(row: dict[str, Any]) -> str:
    keys = ("failing_since", "gone_since", "last_success_at", "consecutive_failures")
    return orjson.dumps({k: row[k] for k in keys}).decode("utf-8")


class HealthService:
    def __init__(self, database_url: str, config: HealthConfig | None = None) -> None:
        self.database_url = database_url
        self.config = config or HealthConfig()

    async def run_once(self) -> HealthRun:
        """Judge every enabled destination of every tenant once; returns what it did."""
        async with exclusive_pass(self.database_url, HEALTH_LOCK_KEY) as cur:
            return HealthRun(ran=False) if cur is None else await self._judge(cur)

    async def _judge(self, cur: psycopg.AsyncCursor[dict[str, Any]]) -> HealthRun:
        checked = 0
        disabled: list[Disabled] = []
        for tenant_id in await tenant_ids(cur):
            rows = await store.health_rows(cur, health_params(self.config, tenant_id, None, True))
            checked += len(rows)
            for row in rows:
                reason = verdict(row, self.config)
                if reason is None:
                    continue
                done = await store.disable_destination(
                    cur,
                    {
                        "tenant_id": tenant_id,
                        "destination_id": row["destination_id"],
                        "enabled_at": row["enabled_at"],
                        "reason": reason,
                        "actor": ACTOR,
                        "data": _evidence(row),
                    },
                )
                if done:
                    disabled.append(Disabled(tenant_id, row["destination_id"], reason))
        return HealthRun(ran=True, checked=checked, disabled=disabled)
