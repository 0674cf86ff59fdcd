"""The worker's per-attempt metrics: right families, bounded labels."""

from __future__ import annotations

import uuid

from courier.metrics import DESTINATION_LABEL_LIMIT, OTHER_DESTINATION, CourierMetrics


def _value(metrics: CourierMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def test_an_attempt_counts_its_outcome_its_destination_and_its_duration() -> None:
    metrics = CourierMetrics()
    destination = uuid.uuid4()
    metrics.attempt(destination, "succeeded", 0.02)
    metrics.attempt(destination, "succeeded", 0.2)
    metrics.attempt(destination, "retryable_failure", 1.5)
    assert _value(metrics, "courier_attempts_total", {"outcome": "succeeded"}) == 2
    assert _value(metrics, "courier_attempts_total", {"outcome": "retryable_failure"}) == 1
    labels = {"destination_id": str(destination), "outcome": "succeeded"}
    assert _value(metrics, "courier_destination_attempts_total", labels) == 2
    assert _value(metrics, "courier_attempt_duration_seconds_count") == 3
    assert _value(metrics, "courier_attempt_duration_seconds_sum") == 0.02 + 0.2 + 1.5


def test_destinations_past_the_limit_count_as_other_and_are_not_kept() -> None:
    metrics = CourierMetrics()
    destinations = [uuid.uuid4() for _ in range(DESTINATION_LABEL_LIMIT + 3)]
    for destination in destinations:
        metrics.attempt(destination, "succeeded", 0.01)
    for destination in destinations[-3:]:
        metrics.attempt(destination, "succeeded", 0.01)
    other = {"destination_id": OTHER_DESTINATION, "outcome": "succeeded"}
    assert _value(metrics, "courier_destination_attempts_total", other) == 6
    assert (
        _value(metrics, "courier_attempts_total", {"outcome": "succeeded"}) == len(destinations) + 3
    )
    assert len(metrics._attempt_children) == DESTINATION_LABEL_LIMIT
