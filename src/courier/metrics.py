"""Prometheus metrics. One registry per process part, no globals.

Labels are bounded: outcomes and states, and destination ids up to a fixed number per
process (the rest count as `other`); never delivery, event or tenant ids.

A process exports the families of the parts it runs: a worker its delivery families,
the API its stream families, both the queue gauges. A family of a part the process does
not run still exists (code may touch it) but is in no registry, so it is never exported
as a zero that looks like a measurement. `courier up` runs both parts on one registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import disable_created_metrics as _disable_created

ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)  # seconds
DESTINATION_LABEL_LIMIT = 500  # distinct destination_id label values per process
OTHER_DESTINATION = "other"  # the label value past the limit
# What made a worker run its claim statement (`courier_worker_claims_total{trigger}`):
#   start    the first claim after the worker starts
#   notify   a NOTIFY (or the LISTEN being (re)established, to catch up)
#   retry    a retry this worker scheduled (its idle wait re-reads the next due time)
#   due      the idle wait ended at the next due time
#   poll     the idle wait ended at the poll interval
#   capped   due work was held back by in-flight caps: the short re-claim
#   more     the previous claim filled its limit, or its walk stopped early
#   refill   slots freed (or the ready rows ran low) while the worker was busy
#   error    after a database error
CLAIM_TRIGGERS = ("start", "notify", "retry", "due", "poll", "capped", "more", "refill", "error")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 86400)


class CourierMetrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, *, worker: bool = True, api: bool = True
    ) -> None:
        # `*_created` series (a timestamp per counter and histogram) double the samples
        # and no dashboard of ours reads them. The switch is process-wide.
        _disable_created()  # type: ignore[no-untyped-call]
        self.registry = registry or CollectorRegistry()
        w = self.registry if worker else None  # the worker's families
        a = self.registry if api else None  # the API's families
        r = self.registry  # both
        self.deliveries_total = Counter(
            "courier_deliveries_total",
            "Deliveries that reached a terminal state, by outcome",
            ["outcome"],
            registry=w,
        )
        self.attempts_total = Counter(
            "courier_attempts_total", "Delivery attempts, by outcome", ["outcome"], registry=w
        )
        self.retries_scheduled_total = Counter(
            "courier_retries_scheduled_total", "Retries scheduled", registry=w
        )
        self.dead_letters_total = Counter(
            "courier_dead_letters_total", "Deliveries dead-lettered", registry=w
        )
        self.destination_attempts_total = Counter(
            "courier_destination_attempts_total",
            "Delivery attempts by destination and outcome (at most "
            f"{DESTINATION_LABEL_LIMIT} destinations per process; the rest count as `other`)",
            ["destination_id", "outcome"],
            registry=w,
        )
        # Broker kinds (not the webhook, whose series above stay as they were) also count
        # by kind: the families above cannot take a label only some of their series have.
        self.kind_attempts_total = Counter(
            "courier_kind_attempts_total",
            "Delivery attempts through adapters other than the webhook, by kind and outcome",
            ["kind", "outcome"],
            registry=w,
        )
        self.kind_attempt_duration_seconds = Histogram(
            "courier_kind_attempt_duration_seconds",
            "Duration of one delivery attempt through an adapter other than the webhook",
            ["kind"],
            buckets=ATTEMPT_BUCKETS,
            registry=w,
        )
        self._destination_labels: set[str] = set()
        # labels() costs a lock and a lookup per call; a worker calls it per attempt, so
        # it keeps the children of (destination, outcome) pairs that have their own label.
        self._attempt_children: dict[tuple[object, str], tuple[Counter, Counter]] = {}
        self._other_children: dict[str, tuple[Counter, Counter]] = {}
        self.stale_completions_total = Counter(
            "courier_stale_completions_total",
            "Completions dropped because another worker had taken the lease over",
            registry=w,
        )
        self.secret_decrypt_failures_total = Counter(
            "courier_secret_decrypt_failures_total",
            "Claimed deliveries handed back unattempted: their destination's signing "
            "secret does not decrypt with COURIER_SECRET_KEY",
            registry=r,
        )
        self.database_errors_total = Counter(
            "courier_worker_database_errors_total",
            "Database errors the worker recovered from",
            registry=w,
        )
        # Why the worker ran its claim statement, and whether it got anything: empty
        # claims are PostgreSQL work spent for nothing (the `trigger` values are a fixed
        # set, see CLAIM_TRIGGERS).
        self.claims_total = Counter(
            "courier_worker_claims_total",
            "Claim statements the worker ran, by what started them and by result",
            ["trigger", "result"],
            registry=w,
        )
        self.notifications_total = Counter(
            "courier_worker_notifications_total",
            "NOTIFYs received for the tenants this worker serves (wake-ups)",
            registry=w,
        )
        self.deferred_wakeups_total = Counter(
            "courier_worker_deferred_wakeups_total",
            "NOTIFY wake-ups of a worker that lost the last race for one: it looked first, "
            "then claimed (something was due) or skipped the claim (nothing was)",
            ["result"],
            registry=w,
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
            "courier_worker_in_flight", "Deliveries this worker holds", registry=w
        )
        self.stream_clients = Gauge(
            "courier_stream_clients",
            "Clients connected to the lifecycle-event stream (SSE)",
            registry=a,
        )
        self.stream_clients_dropped_total = Counter(
            "courier_stream_clients_dropped_total",
            "Stream clients dropped because they did not keep up",
            registry=a,
        )
        self.attempt_duration_seconds = Histogram(
            "courier_attempt_duration_seconds",
            "Duration of one delivery attempt",
            buckets=ATTEMPT_BUCKETS,
            registry=w,
        )
        self.delivery_latency_seconds = Histogram(
            "courier_delivery_latency_seconds",
            "Time from delivery created to delivered",
            buckets=LATENCY_BUCKETS,
            registry=w,
        )

    def _destination_label(self, destination_id: object) -> str:
        """The destination's own label, or `other` once the limit is reached."""
        label = str(destination_id)
        if label not in self._destination_labels:
            if len(self._destination_labels) >= DESTINATION_LABEL_LIMIT:
                return OTHER_DESTINATION
            self._destination_labels.add(label)
        return label

    def _children(self, label: str, outcome: str) -> tuple[Counter, Counter]:
        return (
            self.attempts_total.labels(outcome),
            self.destination_attempts_total.labels(label, outcome),
        )

    def attempt(
        self, destination_id: object, outcome: str, duration_s: float, kind: str = "webhook"
    ) -> None:
        """One finished attempt: its outcome, its destination's count and its duration."""
        key = (destination_id, outcome)
        children = self._attempt_children.get(key)
        if children is None:
            label = self._destination_label(destination_id)
            if label != OTHER_DESTINATION:  # bounded: at most the limit's destinations
                children = self._attempt_children[key] = self._children(label, outcome)
            else:  # past the limit: one shared pair per outcome, looked up once
                children = self._other_children.get(outcome)
                if children is None:
                    children = self._other_children[outcome] = self._children(label, outcome)
        children[0].inc()
        children[1].inc()
        self.attempt_duration_seconds.observe(duration_s)
        if kind != "webhook":  # a handful of kinds: the label stays bounded
            self.kind_attempts_total.labels(kind, outcome).inc()
            self.kind_attempt_duration_seconds.labels(kind).observe(duration_s)
