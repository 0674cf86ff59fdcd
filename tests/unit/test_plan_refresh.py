"""PlanRefresh: when a hot-path connection re-plans (pure schedule, no database)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from courier.store.database import PlanRefresh


def test_plans_are_refreshed_each_time_the_rows_handled_double() -> None:
    plans = PlanRefresh(first_at=1_000, max_interval_s=3600)
    due_at = [n for n in range(0, 20_001, 50) if plans.due(n)]
    assert due_at == [1_000, 2_000, 4_000, 8_000, 16_000]


def test_a_new_connection_starts_the_schedule_from_where_it_is() -> None:
    plans = PlanRefresh(first_at=1_000, max_interval_s=3600)
    plans.reset(5_000)  # reconnected after 5,000 rows: its plans are fresh for 5,000
    assert not plans.due(9_999)
    assert plans.due(10_000)


def test_an_idle_or_slow_connection_still_refreshes_after_the_interval() -> None:
    plans = PlanRefresh(first_at=1_000, max_interval_s=0)
    assert plans.due(1)
    assert plans.due(1)


@given(st.lists(st.integers(min_value=1, max_value=10_000), max_size=200))
def test_refreshes_stay_logarithmic_in_the_rows_handled(steps: list[int]) -> None:
    plans = PlanRefresh(first_at=1, max_interval_s=3600)
    handled, refreshes = 0, 0
    for step in steps:
        handled += step
        refreshes += plans.due(handled)
    assert refreshes <= max(1, handled).bit_length() + 1
