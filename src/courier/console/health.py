"""Destination health for the integrations page, from a few grouped counts.

The numbers come from console.sql (deliveries by state, finished attempts of the last
24 hours by outcome, failed attempts since the last success); `build_health` merges
them per destination. Pure.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from courier.states import DeliveryState

HEALTH_WINDOW = timedelta(hours=24)  # the success ratio's window
# The console lists states in the order a delivery meets them.
_S = DeliveryState
_SHOWN = (_S.PENDING, _S.DELIVERING, _S.RETRY_SCHEDULED, _S.DELIVERED, _S.FAILED, _S.DEAD_LETTERED)
STATES: tuple[str, ...] = tuple(state.value for state in _SHOWN)


@dataclass
class DestinationHealth:
    destination: Mapping[str, Any]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    last_success_at: datetime | None = None
    succeeded_recent: int = 0  # finished attempts in the window that succeeded
    finished_recent: int = 0  # finished attempts in the window (abandoned ones excluded)
    consecutive_failures: int = 0  # failed attempts since the last success

    @property
    def id(self) -> uuid.UUID:
        value: uuid.UUID = self.destination["id"]
        return value

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def success_ratio(self) -> float | None:
        if not self.finished_recent:
            return None
        return self.succeeded_recent / self.finished_recent

    @property
    def status(self) -> str:
        """One word: disabled, failing, degraded, healthy or idle."""
        if not self.destination.get("enabled", True):
            return "disabled"
        ratio = self.success_ratio
        if self.consecutive_failures and (ratio is None or ratio < 0.5):
            return "failing"
        if ratio is None:
            return "idle"
        return "healthy" if ratio >= 0.95 else "degraded"


def build_health(
    destinations: Iterable[Mapping[str, Any]],
    state_counts: Iterable[Mapping[str, Any]],
    recent_outcomes: Iterable[Mapping[str, Any]],
    consecutive: Iterable[Mapping[str, Any]],
) -> list[DestinationHealth]:
    by_id = {d["id"]: DestinationHealth(d) for d in destinations}
    for row in state_counts:
        health = by_id.get(row["destination_id"])
        if health is None:
            continue
        health.counts[row["state"]] = int(row["n"])
        last = row.get("last_delivered_at")
        if last is not None and (health.last_success_at is None or last > health.last_success_at):
            health.last_success_at = last
    for row in recent_outcomes:
        health = by_id.get(row["destination_id"])
        if health is None or row["outcome"] == "abandoned":
            continue
        health.finished_recent += int(row["n"])
        if row["outcome"] == "succeeded":
            health.succeeded_recent += int(row["n"])
    for row in consecutive:
        health = by_id.get(row["destination_id"])
        if health is not None:
            health.consecutive_failures = int(row["n"])
    return list(by_id.values())


def totals(healths: Iterable[DestinationHealth]) -> dict[str, int]:
    """Deliveries by state over all the given destinations."""
    summed = dict.fromkeys(STATES, 0)
    for health in healths:
        for state, n in health.counts.items():
            summed[state] = summed.get(state, 0) + n
    return summed
