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


def _families(metrics: CourierMetrics) -> set[str]:
    return {family.name for family in metrics.registry.collect()}


WORKER_ONLY = {
    "courier_deliveries",
    "courier_attempts",
    "courier_attempt_duration_seconds",
    "courier_worker_in_flight",
    "courier_dead_letters",
    "courier_kind_attempts",
    "courier_kind_attempt_duration_seconds",
    "courier_worker_claims",
    "courier_worker_notifications",
    "courier_worker_deferred_wakeups",
}
API_ONLY = {"courier_stream_clients", "courier_stream_clients_dropped"}
SHARED = {"courier_queue_depth", "courier_oldest_due_seconds"}


def test_each_process_part_exports_only_its_own_families() -> None:
    api, worker, both = (
        CourierMetrics(worker=False),
        CourierMetrics(api=False),
        CourierMetrics(),
    )
    assert _families(api) >= SHARED and _families(worker) >= SHARED
    assert not WORKER_ONLY & _families(api)  # no zero copies of what workers count
    assert _families(api) >= API_ONLY
    assert _families(worker) >= WORKER_ONLY and not API_ONLY & _families(worker)
    assert _families(both) >= WORKER_ONLY | API_ONLY | SHARED
    api.deliveries_total.labels("delivered").inc()  # still usable, just not exported
    assert (
        api.registry.get_sample_value("courier_deliveries_total", {"outcome": "delivered"}) is None
    )


def test_no_created_series_are_exported() -> None:
    from prometheus_client import generate_latest

    metrics = CourierMetrics()
    metrics.attempt(uuid.uuid4(), "succeeded", 0.1)
    metrics.deliveries_total.labels("delivered").inc()
    assert b"_created" not in generate_latest(metrics.registry)


def test_a_broker_attempt_also_counts_by_kind_and_a_webhook_attempt_does_not() -> None:
    metrics = CourierMetrics()
    destination = uuid.uuid4()
    metrics.attempt(destination, "succeeded", 0.01, "nats")
    metrics.attempt(destination, "retryable_failure", 0.02, "nats")
    metrics.attempt(destination, "succeeded", 0.03)
    assert _value(metrics, "courier_attempts_total", {"outcome": "succeeded"}) == 2
    nats_ok = {"kind": "nats", "outcome": "succeeded"}
    assert _value(metrics, "courier_kind_attempts_total", nats_ok) == 1
    webhook_ok = {"kind": "webhook", "outcome": "succeeded"}
    assert _value(metrics, "courier_kind_attempts_total", webhook_ok) == 0
    assert _value(metrics, "courier_kind_attempt_duration_seconds_count", {"kind": "nats"}) == 2
