"""Destination health as the integrations pages show it.

The verdict is courier.destination_health's, the same read and rules as
`GET /v1/destinations/{id}/health` (consecutive failures, last success) plus the last
day's counts its `status` judges by; this module only joins that row with the
destination's deliveries by state. Pure.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from courier import destination_health
from courier.states import DeliveryState

# The console lists states in the order a delivery meets them.
_S = DeliveryState
_SHOWN = (_S.PENDING, _S.DELIVERING, _S.RETRY_SCHEDULED, _S.DELIVERED, _S.FAILED, _S.DEAD_LETTERED)
STATES: tuple[str, ...] = tuple(state.value for state in _SHOWN)


@dataclass
class DestinationHealth:
    destination: Mapping[str, Any]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    health: Mapping[str, Any] = field(default_factory=dict)  # its destination_health row

    @property
    def id(self) -> uuid.UUID:
        value: uuid.UUID = self.destination["id"]
        return value

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def last_success_at(self) -> datetime | None:
        value: datetime | None = self.health.get("last_success_at")
        return value

    @property
    def consecutive_failures(self) -> int:
        return int(self.health.get("consecutive_failures") or 0)

    @property
    def finished_recent(self) -> int:
        """Finished attempts of the last day (abandoned ones excluded)."""
        return int(self.health.get("attempts_last_day") or 0)

    @property
    def success_ratio(self) -> float | None:
        return destination_health.day_success_ratio(self.health)

    @property
    def status(self) -> str:
        """One word: disabled, failing, degraded, healthy or idle."""
        return destination_health.status(
            {**self.health, "enabled": self.destination.get("enabled", True)}
        )


def build_health(
    destinations: Iterable[Mapping[str, Any]],
    state_counts: Iterable[Mapping[str, Any]],
    health_rows: Iterable[Mapping[str, Any]],
) -> list[DestinationHealth]:
    by_id = {d["id"]: DestinationHealth(d) for d in destinations}
    for row in state_counts:
        found = by_id.get(row["destination_id"])
        if found is not None:
            found.counts[row["state"]] = int(row["n"])
    for row in health_rows:
        found = by_id.get(row["destination_id"])
        if found is not None:
            found.health = row
    return list(by_id.values())


def totals(healths: Iterable[DestinationHealth]) -> dict[str, int]:
    """Deliveries by state over all the given destinations."""
    summed = dict.fromkeys(STATES, 0)
    for health in healths:
        for state, n in health.counts.items():
            summed[state] = summed.get(state, 0) + n
    return summed
