"""The attempts chart: attempts by outcome per hour over the last 24 hours, as SVG shapes.

`attempt_chart` turns grouped counts into stacked bars with coordinates, so the template
only draws `<rect>`s (inline SVG, no script, no library). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from courier.states import OUTCOME_NAMES

HOURS = 24
WIDTH = 480  # SVG user units
HEIGHT = 120
BAR_GAP = 2
OUTCOMES = (*OUTCOME_NAMES, "in_flight")  # an attempt still running has no outcome yet


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    outcome: str
    count: int
    hour: datetime


@dataclass(frozen=True, slots=True)
class Chart:
    bars: list[Bar]
    totals: dict[str, int]
    peak: int  # the tallest hour's attempts
    start: datetime
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def total(self) -> int:
        return sum(self.totals.values())


def attempt_chart(rows: Iterable[Mapping[str, Any]], now: datetime) -> Chart:
    """Rows of (hour, outcome, n) → stacked bars for the 24 hours ending with `now`'s hour."""
    last_hour = now.replace(minute=0, second=0, microsecond=0)
    start = last_hour - timedelta(hours=HOURS - 1)
    grid: dict[int, dict[str, int]] = {i: {} for i in range(HOURS)}
    totals = dict.fromkeys(OUTCOMES, 0)
    for row in rows:
        index = int((row["hour"] - start).total_seconds() // 3600)
        if not 0 <= index < HOURS:
            continue
        outcome = row["outcome"] or "in_flight"
        grid[index][outcome] = grid[index].get(outcome, 0) + int(row["n"])
        totals[outcome] = totals.get(outcome, 0) + int(row["n"])
    peak = max((sum(h.values()) for h in grid.values()), default=0)
    slot = WIDTH / HOURS
    bars: list[Bar] = []
    for index, counts in grid.items():
        y = float(HEIGHT)
        for outcome in OUTCOMES:
            n = counts.get(outcome, 0)
            if not n:
                continue
            height = max(1.0, HEIGHT * n / peak)
            y -= height
            bars.append(
                Bar(
                    x=round(index * slot + BAR_GAP / 2, 2),
                    y=round(y, 2),
                    width=round(slot - BAR_GAP, 2),
                    height=round(height, 2),
                    outcome=outcome,
                    count=n,
                    hour=start + timedelta(hours=index),
                )
            )
    return Chart(bars=bars, totals=totals, peak=peak, start=start)
