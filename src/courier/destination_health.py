"""Destination health, computed once: what `GET /v1/destinations/{id}/health` shows, what
the console's pages show (`status`, one word), and the verdict that turns a destination
off, all from one store read (`destination_health` in store/sql/health.sql).

`read_health` reads consecutive failures (failed attempts since the last success), the
last success, the success ratio over the last hour, and how long the current failure
streak or run of `410 Gone` answers lasts. `verdict` (pure) says whether an enabled
destination should be disabled:

- it failed every attempt for `auto_disable_after_seconds` (default 5 days) and has at
  least one dead letter in that time (`auto_disabled_failing`), or
- it answered only `410 Gone` for `gone_confirm_seconds` (default 1 day): the receiver
  asks to stop (`auto_disabled_gone`).

Only attempts made since the destination was last enabled count, so re-enabling it starts
a new judgement; a bad hour never disables anything. The worker's maintenance pass
(courier.worker.health) applies the verdict.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import psycopg

from courier.store import health as store

REASON_FAILING = "auto_disabled_failing"
REASON_GONE = "auto_disabled_gone"


class HealthSettings(Protocol):
    """What HealthConfig takes from courier.settings.Settings (the worker never imports it)."""

    @property
    def auto_disable_after_seconds(self) -> float: ...
    @property
    def gone_confirm_seconds(self) -> float: ...


@dataclass(frozen=True, slots=True)
class HealthConfig:
    auto_disable_after_seconds: float = 5 * 86_400  # every attempt failed this long
    gone_confirm_seconds: float = 86_400  # only 410 Gone answers this long

    @classmethod
    def from_settings(cls, settings: HealthSettings) -> HealthConfig:
        return cls(
            auto_disable_after_seconds=settings.auto_disable_after_seconds,
            gone_confirm_seconds=settings.gone_confirm_seconds,
        )


def health_params(
    config: HealthConfig,
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID | None,
    enabled_only: bool,
    *,
    with_day: bool = False,
    scope: Collection[uuid.UUID] | None = None,
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "destination_id": destination_id,
        "enabled_only": enabled_only,
        "failing_seconds": config.auto_disable_after_seconds,
        "with_day": with_day,
        "scope": None if scope is None else list(scope),
    }


async def read_healths(
    conn: psycopg.AsyncConnection[Any],
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID | None = None,
    scope: Collection[uuid.UUID] | None = None,
) -> list[dict[str, Any]]:
    """The console's read: the same rows as `read_health`, of every destination (or one),
    with the last day's counts that `status` judges by."""
    params = health_params(
        HealthConfig(), tenant_id, destination_id, False, with_day=True, scope=scope
    )
    return await store.destination_healths(conn, params)


def day_success_ratio(row: Mapping[str, Any]) -> float | None:
    """Succeeded ÷ finished attempts over the last day; None without any (pure)."""
    finished = int(row.get("attempts_last_day") or 0)
    return int(row.get("successes_last_day") or 0) / finished if finished else None


def status(row: Mapping[str, Any]) -> str:
    """One word for a health row read with the last day's counts (pure): disabled,
    failing (failures since the last success and at most half succeeded), idle (no
    finished attempt in a day), healthy (95% or more succeeded) or degraded."""
    if not row.get("enabled", True):
        return "disabled"
    ratio = day_success_ratio(row)
    if row.get("consecutive_failures") and (ratio is None or ratio < 0.5):
        return "failing"
    if ratio is None:
        return "idle"
    return "healthy" if ratio >= 0.95 else "degraded"


async def read_health(
    conn: psycopg.AsyncConnection[Any],
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID,
    config: HealthConfig | None = None,
) -> dict[str, Any] | None:
    """One destination's health (see the module docstring); None when there is none."""
    cfg = config or HealthConfig()
    row = await store.destination_health(conn, health_params(cfg, tenant_id, destination_id, False))
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
