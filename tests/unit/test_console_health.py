"""Destination health and the attempts chart, from grouped counts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from courier.console.chart import HEIGHT, HOURS, attempt_chart
from courier.console.health import build_health, totals

NOW = datetime(2025, 1, 1, 12, 30, tzinfo=UTC)


def test_health_merges_counts_outcomes_and_streaks() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    destinations = [
        {"id": a, "enabled": True},
        {"id": b, "enabled": True},
        {"id": c, "enabled": False, "disabled_reason": "failing for 3 days"},
    ]
    counts = [
        {"destination_id": a, "state": "delivered", "n": 9, "last_delivered_at": NOW},
        {"destination_id": a, "state": "retry_scheduled", "n": 1, "last_delivered_at": None},
        {"destination_id": b, "state": "dead_lettered", "n": 2, "last_delivered_at": None},
        {"destination_id": uuid.uuid4(), "state": "delivered", "n": 5, "last_delivered_at": NOW},
    ]
    outcomes = [
        {"destination_id": a, "outcome": "succeeded", "n": 19},
        {"destination_id": a, "outcome": "retryable_failure", "n": 1},
        {"destination_id": a, "outcome": "abandoned", "n": 7},  # not a verdict on the receiver
        {"destination_id": b, "outcome": "retryable_failure", "n": 6},
    ]
    streaks = [{"destination_id": b, "n": 6}]
    ha, hb, hc = build_health(destinations, counts, outcomes, streaks)
    assert (ha.total, ha.counts["delivered"], ha.last_success_at) == (10, 9, NOW)
    assert ha.success_ratio == 0.95 and ha.status == "healthy"
    assert (hb.success_ratio, hb.consecutive_failures, hb.status) == (0.0, 6, "failing")
    assert (hc.success_ratio, hc.status) == (None, "disabled")
    assert totals([ha, hb, hc])["delivered"] == 9  # the unknown destination is not counted


def test_the_chart_stacks_outcomes_per_hour() -> None:
    hour = NOW.replace(minute=0)
    rows = [
        {"hour": hour, "outcome": "succeeded", "n": 3},
        {"hour": hour, "outcome": "retryable_failure", "n": 1},
        {"hour": hour - timedelta(hours=2), "outcome": None, "n": 2},
        {"hour": hour - timedelta(hours=HOURS), "outcome": "succeeded", "n": 50},  # too old
    ]
    chart = attempt_chart(rows, NOW)
    assert chart.peak == 4 and chart.total == 6
    assert chart.totals["in_flight"] == 2
    latest = [b for b in chart.bars if b.hour == hour]
    assert [b.outcome for b in latest] == ["succeeded", "retryable_failure"]
    assert latest[0].height == HEIGHT * 3 / 4 and latest[0].y == HEIGHT / 4
    assert latest[1].y + latest[1].height == latest[0].y  # stacked
    assert all(0 <= b.x < chart.width for b in chart.bars)


def test_an_empty_chart_has_no_bars() -> None:
    chart = attempt_chart([], NOW)
    assert chart.bars == [] and chart.total == 0
