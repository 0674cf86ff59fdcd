"""Destination health as the console shows it (the shared health rows joined with counts by
state), its one-word status, and the attempts chart."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from courier import destination_health
from courier.console.chart import HEIGHT, HOURS, attempt_chart
from courier.console.health import build_health, totals

NOW = datetime(2025, 1, 1, 12, 30, tzinfo=UTC)


def test_health_joins_counts_with_the_shared_health_rows() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    destinations = [
        {"id": a, "enabled": True},
        {"id": b, "enabled": True},
        {"id": c, "enabled": False, "disabled_reason": "failing for 3 days"},
    ]
    counts = [
        {"destination_id": a, "state": "delivered", "n": 9},
        {"destination_id": a, "state": "retry_scheduled", "n": 1},
        {"destination_id": b, "state": "dead_lettered", "n": 2},
        {"destination_id": uuid.uuid4(), "state": "delivered", "n": 5},
    ]
    rows = [
        _row(a, last_success_at=NOW, consecutive_failures=1, finished=20, succeeded=19),
        _row(b, consecutive_failures=6, finished=6, succeeded=0),
        _row(uuid.uuid4(), consecutive_failures=99, finished=1, succeeded=0),  # not listed
    ]
    ha, hb, hc = build_health(destinations, counts, rows)
    assert (ha.total, ha.counts["delivered"], ha.last_success_at) == (10, 9, NOW)
    assert ha.success_ratio == 0.95 and ha.status == "healthy"
    assert (hb.success_ratio, hb.consecutive_failures, hb.status) == (0.0, 6, "failing")
    # no health row (no attempt ever): no ratio; the destination's own flag decides
    assert (hc.success_ratio, hc.consecutive_failures, hc.status) == (None, 0, "disabled")
    assert totals([ha, hb, hc])["delivered"] == 9  # the unknown destination is not counted


def _row(
    destination_id: uuid.UUID,
    *,
    last_success_at: datetime | None = None,
    consecutive_failures: int = 0,
    finished: int = 0,
    succeeded: int = 0,
    enabled: bool = True,
) -> dict[str, object]:
    """A destination_health row as the shared read returns it, with the day's counts."""
    return {
        "destination_id": destination_id,
        "enabled": enabled,
        "last_success_at": last_success_at,
        "consecutive_failures": consecutive_failures,
        "attempts_last_day": finished,
        "successes_last_day": succeeded,
    }


RANK = {"failing": 0, "degraded": 1, "healthy": 2}  # worse to better


@given(
    finished=st.integers(min_value=0, max_value=10_000),
    share=st.fractions(min_value=0, max_value=1),
    more=st.fractions(min_value=0, max_value=1),
    failures=st.integers(min_value=0, max_value=50),
)
def test_status_never_worsens_as_more_attempts_succeed(
    finished: int, share: Fraction, more: Fraction, failures: int
) -> None:
    succeeded = int(finished * share)
    better = succeeded + int((finished - succeeded) * more)
    word, ratio = _judge(finished, succeeded, failures)
    better_word, _ = _judge(finished, better, failures)
    assert (ratio is None) == (finished == 0)
    if finished == 0:
        assert word == better_word == ("failing" if failures else "idle")
        return
    assert RANK[better_word] >= RANK[word]
    if ratio is not None and ratio >= 0.95:
        assert word == "healthy"  # a streak of failures does not outweigh a good day
    if not failures:
        assert word != "failing"  # failing needs failures since the last success
    assert _judge(finished, succeeded, failures, enabled=False)[0] == "disabled"


def _judge(
    finished: int, succeeded: int, failures: int, *, enabled: bool = True
) -> tuple[str, float | None]:
    row = _row(
        uuid.uuid4(),
        consecutive_failures=failures,
        finished=finished,
        succeeded=succeeded,
        enabled=enabled,
    )
    return destination_health.status(row), destination_health.day_success_ratio(row)


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
