"""Everything one `make bench` measured, in one object the report renders."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.measure import LatencyResult, ThroughputResult


@dataclass
class Plan:
    """Run sizes. The defaults fit a 2-core machine in under 15 minutes."""

    events: int = 20_000  # per main throughput run
    runs: int = 3  # main runs per contestant (the median is reported)
    sweep_events: int = 6_000  # per sweep run (it only picks each contestant's finalists)
    final_runs: int = 2  # runs of each finalist at the main runs' size
    history_events: int = 10_000  # the empty-table and 1,000,000-history runs (N = 10k)
    processes: tuple[int, ...] = (1, 2, 4)
    batches: tuple[int, ...] = (16, 64, 128)
    history_rows: int = 1_000_000
    growth_events: int = 100_000  # 0 skips the large-N run
    latency_rate: float = 200.0  # jobs/s
    latency_s: float = 30.0
    slow_delay_ms: float = 100.0
    slow_events: int = 6_000
    cap_s: float = 20.0  # a throughput run stops after this long, scored on what finished
    enqueue_events: int = 2_000  # for the one-job-per-transaction enqueue rate
    concurrency: int = 64  # in flight per process (HTTP ceiling and default worker)
    skip_peers: bool = False


@dataclass
class Results:
    plan: Plan
    machine: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    ceiling: list[float] = field(default_factory=list)
    ceiling_cpu_us: list[float] = field(default_factory=list)  # client CPU per request
    sweeps: dict[str, list[ThroughputResult]] = field(default_factory=dict)
    # each contestant's two fastest sweep configs, at the main runs' size, alternating
    finals: dict[str, list[ThroughputResult]] = field(default_factory=dict)
    best: dict[str, str] = field(default_factory=dict)  # contestant -> spec label
    main: dict[str, list[ThroughputResult]] = field(default_factory=dict)
    latency: dict[str, LatencyResult] = field(default_factory=dict)
    enqueue_single: dict[str, float] = field(default_factory=dict)
    enqueue_http: float | None = None
    enqueue_http_note: str = ""
    history_fill_s: float = 0.0
    history: list[ThroughputResult] = field(default_factory=list)  # [without, with]
    growth: list[ThroughputResult] = field(default_factory=list)
    slow: list[ThroughputResult] = field(default_factory=list)
    # courier to each broker kind, same worker config as its webhook row, same rounds
    brokers: dict[str, list[ThroughputResult]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    started_at: str = ""
    duration_s: float = 0.0
    command: str = "make bench"

    def broker_rate(self, kind: str) -> float:
        runs = self.brokers.get(kind, [])
        return statistics.median(r.rate for r in runs) if runs else 0.0

    def median_rate(self, contestant: str) -> float:
        runs = self.main.get(contestant, [])
        return statistics.median(r.rate for r in runs) if runs else 0.0

    def rate_range(self, contestant: str) -> tuple[float, float]:
        rates = [r.rate for r in self.main.get(contestant, [])]
        return (min(rates), max(rates)) if rates else (0.0, 0.0)

    def median_enqueue_bulk(self, contestant: str) -> float:
        runs = self.main.get(contestant, [])
        return statistics.median(r.enqueue_rate for r in runs) if runs else 0.0

    def peak_rss(self, contestant: str) -> float:
        """The largest RSS one worker process reached in the main runs, in MiB."""
        return max((r.peak_rss_mb for r in self.main.get(contestant, [])), default=0.0)

    @property
    def ceiling_median(self) -> float:
        return statistics.median(self.ceiling) if self.ceiling else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Results:
        """Rebuild from `as_dict` output (results.json), to re-render a report."""

        def runs(items: list[dict[str, Any]]) -> list[ThroughputResult]:
            return [ThroughputResult(**r) for r in items]

        plan = dict(data["plan"])
        plan["processes"] = tuple(plan["processes"])
        plan["batches"] = tuple(plan["batches"])
        fields = dict(data)
        fields["plan"] = Plan(**plan)
        fields["sweeps"] = {k: runs(v) for k, v in data["sweeps"].items()}
        fields["main"] = {k: runs(v) for k, v in data["main"].items()}
        fields["finals"] = {k: runs(v) for k, v in data.get("finals", {}).items()}
        fields["latency"] = {k: LatencyResult(**v) for k, v in data["latency"].items()}
        for name in ("history", "growth", "slow"):
            fields[name] = runs(data[name])
        fields["brokers"] = {k: runs(v) for k, v in data.get("brokers", {}).items()}
        return cls(**fields)
