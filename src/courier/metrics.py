"""Prometheus metrics (CONTRACT section 6). One registry per process part, no globals.

Labels are bounded: outcomes and states only, never delivery, event or tenant ids.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)  # seconds
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 86400)


class CourierMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.deliveries_total = Counter(
            "courier_deliveries_total",
            "Deliveries that reached a terminal state, by outcome",
            ["outcome"],
            registry=r,
        )
        self.attempts_total = Counter(
            "courier_attempts_total", "Delivery attempts, by outcome", ["outcome"], registry=r
        )
        self.retries_scheduled_total = Counter(
            "courier_retries_scheduled_total", "Retries scheduled", registry=r
        )
        self.dead_letters_total = Counter(
            "courier_dead_letters_total", "Deliveries dead-lettered", registry=r
        )
        self.stale_completions_total = Counter(
            "courier_stale_completions_total",
            "Completions dropped because another worker had taken the lease over",
            registry=r,
        )
        self.database_errors_total = Counter(
            "courier_worker_database_errors_total",
            "Database errors the worker recovered from",
            registry=r,
        )
        self.queue_depth = Gauge(
            "courier_queue_depth", "Deliveries by non-terminal state", ["state"], registry=r
        )
        self.oldest_due_seconds = Gauge(
            "courier_oldest_due_seconds",
            "Age of the oldest delivery that is due and not yet claimed",
            registry=r,
        )
        self.in_flight = Gauge(
            "courier_worker_in_flight", "Deliveries this worker holds", registry=r
        )
        self.attempt_duration_seconds = Histogram(
            "courier_attempt_duration_seconds",
            "Duration of one delivery attempt",
            buckets=ATTEMPT_BUCKETS,
            registry=r,
        )
        self.delivery_latency_seconds = Histogram(
            "courier_delivery_latency_seconds",
            "Time from delivery created to delivered",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
