"""docs/benchmarks.md and docs/benchmarks.png from one run's Results.

Re-render from a run's raw results: python -m bench.report RESULTS_JSON [OUTPUT_MD]
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Final

from bench.measure import ThroughputResult
from bench.results import Results

PEERS = ("pgqueuer", "procrastinate")
TITLES = {
    "courier": "courier",
    "courier_options": "courier, headers + bearer auth + a filter",
    "pgqueuer": "PgQueuer",
    "procrastinate": "Procrastinate",
}
OPTIONS_TARGET = 0.9  # the options row's rate, at least this share of the plain row's
BROKER_TITLES = {
    "rabbitmq": "RabbitMQ (persistent, publisher confirms, durable queue)",
    "nats": "NATS JetStream (file stream, Nats-Msg-Id)",
    "redis_stream": "Redis Streams (XADD)",
}
RSS_TARGET_MB = 150.0
P50_TARGET_MS = 15.0


def _n(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _x(value: float) -> str:
    return f"{value:.2f}×" if value and not math.isnan(value) else "n/a"


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def main_table(results: Results) -> list[str]:
    courier = results.median_rate("courier")
    ceiling = results.ceiling_median
    rows = [
        [
            "HTTP ceiling (bare aiohttp, no database)",
            f"1p × c{results.plan.concurrency}",
            _n(ceiling),
            f"{_n(min(results.ceiling, default=0))}–{_n(max(results.ceiling, default=0))}",
            "100%",
            _x(_ratio(courier, ceiling)),
            "–",
            "–",
            "–",
            "–",
        ]
    ]
    for name in ("courier", "courier_options", *PEERS):
        if name not in results.main:
            continue
        rate = results.median_rate(name)
        low, high = results.rate_range(name)
        capped = any(r.capped for r in results.main[name])
        lat = results.latency.get(name)
        latency = f"{lat.p50_ms:.1f} / {lat.p95_ms:.1f} / {lat.p99_ms:.1f}" if lat else "n/a"
        rows.append(
            [
                TITLES[name] + (" (capped)" if capped else ""),
                results.best.get(name, results.best.get("courier", "")),
                _n(rate),
                f"{_n(low)}–{_n(high)}",
                f"{_ratio(rate, ceiling):.0%}" if ceiling else "n/a",
                "–" if name == "courier" else _x(_ratio(courier, rate)),
                _n(results.median_enqueue_bulk(name)),
                _n(results.enqueue_single.get(name)),
                latency,
                _n(results.peak_rss(name)),
            ]
        )
    header = [
        "contestant",
        "best config",
        "deliveries/s (median)",
        "range",
        "of ceiling",
        "courier ×",
        "enqueue/s, bulk",
        "enqueue/s, 1 per txn",
        "p50 / p95 / p99 ms",
        "worker peak RSS MiB",
    ]
    return _table(header, rows)


def broker_table(results: Results) -> list[str]:
    """courier to each broker kind, beside its webhook row of the same rounds."""
    webhook = results.median_rate("courier")
    rows = [
        [
            "webhook (signed POST to the loopback receiver)",
            results.best.get("courier", ""),
            _n(webhook),
            "{}–{}".format(*map(_n, results.rate_range("courier"))),
            "1.00×",
            _n(_median_cpu(results.main.get("courier", []), "worker_cpu_us")),
            _n(_median_cpu(results.main.get("courier", []), "db_cpu_us")),
        ]
    ]
    for kind, runs in results.brokers.items():
        rate = results.broker_rate(kind)
        rates = [r.rate for r in runs]
        capped = " (capped)" if any(r.capped for r in runs) else ""
        rows.append(
            [
                BROKER_TITLES.get(kind, kind) + capped,
                runs[0].spec if runs else "",
                _n(rate),
                f"{_n(min(rates, default=0))}–{_n(max(rates, default=0))}",
                _x(_ratio(rate, webhook)),
                _n(_median_cpu(runs, "worker_cpu_us")),
                _n(_median_cpu(runs, "db_cpu_us")),
            ]
        )
    header = [
        "courier to",
        "config",
        "deliveries/s (median)",
        "range",
        "× webhook",
        "worker CPU µs/job",
        "PostgreSQL CPU µs/job",
    ]
    return _table(header, rows)


def _median_cpu(runs: list[ThroughputResult], name: str) -> float | None:
    done = [getattr(r, name) for r in runs if r.done]
    return statistics.median(done) if done else None


def targets(results: Results) -> list[tuple[str, str, bool | None]]:
    courier = results.median_rate("courier")
    found: list[tuple[str, str, bool | None]] = []
    share = _ratio(courier, results.ceiling_median)
    found.append(("courier ≥ 65% of the HTTP ceiling", f"{share:.0%}", share >= 0.65))
    for name, wanted in (("pgqueuer", 1.25), ("procrastinate", 8.0)):
        peer = results.median_rate(name)
        if name not in results.main:
            found.append((f"≥ {wanted}× {TITLES[name]}", "not run", None))
            continue
        ratio = _ratio(courier, peer)
        capped = " (peer capped)" if any(r.capped for r in results.main[name]) else ""
        found.append((f"≥ {wanted}× {TITLES[name]}", f"{ratio:.2f}×{capped}", ratio >= wanted))
    if "courier_options" in results.main:
        share = _ratio(results.median_rate("courier_options"), courier)
        found.append(
            (
                f"headers + bearer auth + a filter ≥ {OPTIONS_TARGET:.0%} of the plain row",
                f"{share:.0%}",
                share >= OPTIONS_TARGET,
            )
        )
    lat = results.latency.get("courier")
    if lat:
        found.append(
            (
                f"p50 enqueue → delivered ≤ {P50_TARGET_MS:.0f} ms at {lat.offered_rate:.0f}/s",
                f"{lat.p50_ms:.1f} ms",
                lat.p50_ms <= P50_TARGET_MS,
            )
        )
    rss = results.peak_rss("courier")
    found.append((f"worker RSS ≤ {RSS_TARGET_MB:.0f} MB", f"{rss:.0f} MiB", rss <= RSS_TARGET_MB))
    slow = [r for r in results.slow if r.contestant == "courier" and "c64 " in r.spec + " "]
    if slow:
        found.append(
            (
                "100 ms receiver: 1 worker × 64 in flight ≈ 600/s",
                f"{slow[0].rate:,.0f}/s",
                slow[0].rate >= 0.9 * 64 / (results.plan.slow_delay_ms / 1000),
            )
        )
    return found


def summary(results: Results) -> str:
    lines = ["", *main_table(results), ""]
    if results.brokers:
        lines += [*broker_table(results), ""]
    for target, measured, met in targets(results):
        mark = {True: "met", False: "NOT met", None: "–"}[met]
        lines.append(f"  {mark:8} {target}: {measured}")
    return "\n".join(lines)


def _throughput_rows(runs: list[ThroughputResult], label: str | None = None) -> list[list[str]]:
    rows = []
    for r in runs:
        rows.append(
            [
                label or TITLES.get(r.contestant, r.contestant),
                r.spec,
                _n(r.events),
                _n(r.rate)
                + (f" (capped at {r.elapsed_s:.0f}s: {r.done:,} done)" if r.capped else ""),
                _n(r.enqueue_rate),
                _n(r.peak_rss_mb),
                _n(r.worker_cpu_us),
                _n(r.db_cpu_us),
            ]
        )
    return rows


THROUGHPUT_HEADER = [
    "contestant",
    "config",
    "events",
    "deliveries/s",
    "enqueue/s",
    "peak RSS MiB",
    "worker CPU µs/job",
    "PostgreSQL CPU µs/job",
]


def cpu_table(results: Results) -> list[str]:
    """CPU per delivery: what bounds throughput when the cores, not waiting, run out."""
    rows = []
    if results.ceiling_cpu_us:
        client = statistics.median(results.ceiling_cpu_us)
        rows.append(["HTTP ceiling client", _n(client), "0", _n(client), "–"])
    courier_total: float | None = None
    for name in ("courier", *PEERS):
        runs = [r for r in results.main.get(name, []) if r.done]
        if not runs:
            continue
        worker = statistics.median(r.worker_cpu_us for r in runs)
        db = statistics.median(r.db_cpu_us for r in runs)
        total = worker + db
        if name == "courier":
            courier_total = total
        # How many times cheaper a delivery is in courier than in this peer.
        cheaper = "–" if name == "courier" or not courier_total else _x(total / courier_total)
        rows.append([TITLES[name], _n(worker), _n(db), _n(total), cheaper])
    header = ["", "worker µs/job", "PostgreSQL µs/job", "total µs/job", "courier ×, by CPU"]
    return _table(header, rows)


def markdown(results: Results, plot_name: str) -> str:
    plan = results.plan
    out = [
        "# Benchmarks",
        "",
        f"The last `{results.command}` run ({results.started_at}, "
        f"{results.duration_s / 60:.1f} minutes). Rerun with `make bench`; "
        "`make bench-quick` is a two-minute smoke version. The harness lives in `bench/`.",
        "",
        f"![throughput and latency]({plot_name})",
        "",
        "## Result",
        "",
        *main_table(results),
        "",
        f"Deliveries per second: {plan.events:,} jobs enqueued and committed at once into "
        "idle workers; the clock stops when the queue's own tables show all of them "
        f"durably finished. Median of {plan.runs} runs, interleaved across contestants. "
        f"A run still busy after {plan.cap_s:.0f} s is scored on what it had finished "
        "(marked capped). *courier ×* is courier's median over that row's. Latency: "
        f"{plan.latency_rate:.0f} jobs/s for {plan.latency_s:.0f} s, one per transaction, "
        "from the start of the enqueue call to the receiver's arrival time. "
        "*bulk* enqueue: each uses its batch API inside one transaction: courier "
        "`enqueue_events` with 1,000 events a call, PgQueuer and Procrastinate one "
        "statement for all. *1 per txn*: each "
        "job its own committed transaction, one connection.",
        "",
        "## Where the CPU goes",
        "",
        *cpu_table(results),
        "",
        "CPU time per finished job in the main runs (user + system, from /proc): the worker "
        "processes, and the PostgreSQL backends serving them (the enqueuing connection, "
        "WAL writer and checkpointer are not counted). The receiver's share is the same for "
        "every contestant. On 2 cores, 2 s of CPU per second is all there is: a total of "
        "T µs per job caps throughput near 2,000,000 / (T + receiver) jobs/s, however the "
        "waiting is arranged. These figures hold even when other load shares the machine, "
        "where rates do not. *courier ×, by CPU* is the peer's total over courier's: how "
        "many of courier's deliveries fit in the CPU one of the peer's takes (the receiver "
        "and the load generator, the same for all, not included).",
        "",
        "## Targets",
        "",
        *_table(
            ["target", "measured", "met"],
            [
                [t, m, {True: "yes", False: "**no**", None: "–"}[ok]]
                for t, m, ok in targets(results)
            ],
        ),
        "",
    ]
    if results.brokers:
        out += [
            "## Broker destinations",
            "",
            *broker_table(results),
            "",
            "The same `courier worker` configuration as the webhook row, in the same "
            "rounds (each round: the webhook run, then one run per broker kind), "
            f"{plan.events:,} events each, median of {plan.runs}. The destination is a "
            "broker on this machine instead of the receiver: a delivery is done when the "
            "deliveries table shows it delivered, i.e. the broker confirmed the publish "
            "(RabbitMQ), the stream acknowledged it (NATS) or returned the entry id "
            "(Redis). The worker's claim, attempt rows and group commit are the same as "
            "for a webhook; only the adapter differs. The broker's own CPU (RabbitMQ "
            "writes each persistent message to disk before confirming it) runs on the "
            "same cores and is not in the CPU columns; the worker column includes the "
            "broker client library's.",
            "",
        ]
    if results.enqueue_http is not None:
        out.append(
            f"Enqueue over the HTTP API (`POST /v1/events`, {results.enqueue_http_note}): "
            f"{_n(results.enqueue_http)}/s."
        )
    else:
        out.append(f"Enqueue over the HTTP API: not measured ({results.enqueue_http_note}).")
    out += ["", "## Sweeps (each contestant's best configuration is used above)", ""]
    sweep_rows: list[list[str]] = []
    for runs in results.sweeps.values():
        sweep_rows += _throughput_rows(runs)
    out += _table(THROUGHPUT_HEADER, sweep_rows)
    if results.finals:
        out += [
            "",
            "Finals: each contestant's two fastest sweep configs, "
            f"{plan.final_runs} runs each of {plan.events:,} events, alternating; the higher "
            "median is the config of the main rounds (one short sweep run per config moves "
            "±30% on a shared machine).",
            "",
        ]
        final_rows: list[list[str]] = []
        for runs in results.finals.values():
            final_rows += _throughput_rows(runs)
        out += _table(THROUGHPUT_HEADER, final_rows)
    out += [
        "",
        "Config `Np × cC × bB`: N worker processes, C jobs in flight per process, "
        "B jobs claimed per fetch (courier `COURIER_WORKER_BATCH_SIZE`, PgQueuer "
        "`batch_size`; Procrastinate fetches one job per query).",
        "",
        "## Cost growth",
        "",
    ]
    growth_rows = _throughput_rows(results.history[:1], "courier, empty table")
    growth_rows += _throughput_rows(
        results.history[1:], f"courier, {plan.history_rows:,} terminal deliveries"
    )
    growth_rows += _throughput_rows(results.main.get("courier", [])[:1], "courier")
    growth_rows += _throughput_rows(results.growth, "courier")
    out += _table(THROUGHPUT_HEADER, growth_rows)
    for note in growth_notes(results):
        out += ["", note]
    out += ["", "## A receiver that answers after 100 ms", ""]
    out += _table(THROUGHPUT_HEADER, _throughput_rows(results.slow))
    out += [
        "",
        f"With a {plan.slow_delay_ms:.0f} ms receiver, throughput is in-flight jobs ÷ "
        f"{plan.slow_delay_ms / 1000:g} s: 64 in flight bounds one process at "
        f"{64 / (plan.slow_delay_ms / 1000):,.0f}/s, whatever the queue.",
        "",
        "## What each contestant does per delivery",
        "",
        "- **courier**: `courier worker` processes; claim (one statement, `FOR UPDATE SKIP "
        "LOCKED`, inserts the attempt row), a Standard Webhooks signed POST over courier's "
        "own keep-alive HTTP/1.1 client (asyncio and httptools, SSRF-guarded, bounded "
        "reads; `courier/adapters/http1.py`), then a group-committed completion (state "
        "transition, attempt "
        "outcome, `delivery.delivered` lifecycle event). Enqueue also writes the event and "
        "a `delivery.created` lifecycle event. The benchmark's one destination has its "
        "`max_in_flight` raised to 10,000 (where the schema has that per-destination cap), "
        "so the cap does not stand in for the worker concurrency under test.",
        "- **PgQueuer**: `QueueManager` on an asyncpg pool; a job is one row, dequeued in "
        "batches; completion deletes it and logs `successful` in `pgqueuer_log` (batched).",
        "- **Procrastinate**: `App.run_worker_async` with a psycopg pool; one job row, "
        "fetched one per query; completion updates its status (jobs are kept).",
        "",
        "All three run under uvloop, POST the same ~200-byte JSON body to the same "
        "receiver process, and commit with the server's normal `synchronous_commit`. "
        "The peers POST through a shared aiohttp session (one task per job), as the HTTP "
        "ceiling's client does; courier's client costs less CPU per request than that "
        "ceiling client, which is why courier can come close to the ceiling.",
        "",
        "## Machine and versions",
        "",
    ]
    out += _table(["", ""], [[k, v] for k, v in results.machine.items()])
    out += [""]
    out += _table(["package", "version"], [[k, v] for k, v in results.versions.items()])
    out += [
        "",
        f"Plan: events {plan.events:,}, runs {plan.runs}, sweep events "
        f"{plan.sweep_events:,}, history {plan.history_rows:,} rows and "
        f"{plan.history_events:,} events, large N "
        f"{plan.growth_events:,}, latency {plan.latency_rate:.0f}/s × {plan.latency_s:.0f} s, "
        f"cap {plan.cap_s:.0f} s.",
    ]
    if results.notes:
        out += ["", "## Notes", "", *[f"- {n}" for n in results.notes]]
    return "\n".join(out) + "\n"


def growth_notes(results: Results) -> list[str]:
    notes: list[str] = []
    if len(results.history) == 2:
        base, hist = results.history
        notes.append(
            f"History: with {results.plan.history_rows:,} terminal deliveries (and their "
            f"events and attempts) already in the tables, courier delivers "
            f"{_ratio(hist.rate, base.rate):.0%} of its empty-table rate "
            f"({_n(hist.rate)} vs {_n(base.rate)}/s; filling took "
            f"{results.history_fill_s:.0f} s). The claim reads only the partial index "
            "`deliveries_waiting` (rows waiting), so its cost does not depend on terminal rows; "
            "what history costs is larger primary-key and foreign-key indexes for the "
            "inserts and updates to walk, and more of them outside shared_buffers."
        )
    main = results.main.get("courier", [])
    if results.growth and main:
        big = results.growth[0]
        notes.append(
            f"Large N: {big.events:,} events deliver at {_n(big.rate)}/s against "
            f"{_n(main[0].rate)}/s for {main[0].events:,} "
            f"({_ratio(big.rate, main[0].rate):.0%}). A backlog that large sits in the due "
            "index and in shared_buffers at once; as it drains, claimed rows leave the "
            "partial index but stay in it as dead entries until vacuum, and the claim's index "
            "scan steps over them: the cost that can grow with N. Differences within the "
            "run-to-run range of the main runs are noise."
        )
    return notes


def plot(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.8))
    names = ["HTTP ceiling"] + [TITLES[n] for n in ("courier", *PEERS) if n in results.main]
    keys = [n for n in ("courier", *PEERS) if n in results.main]
    medians = [results.ceiling_median] + [results.median_rate(n) for n in keys]
    lows = [min(results.ceiling, default=0)] + [results.rate_range(n)[0] for n in keys]
    highs = [max(results.ceiling, default=0)] + [results.rate_range(n)[1] for n in keys]
    errors = [[m - lo for m, lo in zip(medians, lows, strict=True)],
              [hi - m for m, hi in zip(medians, highs, strict=True)]]  # fmt: skip
    colors = ["#999999", "#1f77b4", "#ff7f0e", "#2ca02c"][: len(names)]
    ax1.bar(names, medians, yerr=errors, capsize=4, color=colors)
    ax1.set_title(f"deliveries/s, {results.plan.events:,} jobs (median, range)")
    for i, value in enumerate(medians):
        ax1.text(i, value, f"{value:,.0f}", ha="center", va="bottom", fontsize=9)

    lat_keys = [n for n in ("courier", *PEERS) if n in results.latency]
    width = 0.25
    for j, (label, attr) in enumerate((("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"))):
        values = [getattr(results.latency[n], attr) for n in lat_keys]
        ax2.bar([i + (j - 1) * width for i in range(len(lat_keys))], values, width, label=label)
    ax2.set_xticks(range(len(lat_keys)), [TITLES[n] for n in lat_keys])
    ax2.set_ylabel("ms (log scale)")
    ax2.set_yscale("log")
    ax2.set_title(f"enqueue → delivered at {results.plan.latency_rate:.0f}/s")
    ax2.legend()

    sweep = results.sweeps.get("courier", [])
    batches = sorted({r.spec.split("× b")[1] for r in sweep}, key=int)
    for batch in batches:
        points = [r for r in sweep if r.spec.endswith(f"b{batch}")]
        xs = [int(r.spec.split("p")[0]) for r in points]
        ax3.plot(xs, [r.rate for r in points], marker="o", label=f"batch {batch}")
    ax3.axhline(results.ceiling_median, color="#999999", linestyle="--", label="HTTP ceiling")
    ax3.set_xticks(sorted({int(r.spec.split("p")[0]) for r in sweep}) or [1])
    ax3.set_xlabel("courier worker processes")
    ax3.set_ylabel("deliveries/s")
    ax3.set_title(f"courier sweep, {results.plan.sweep_events:,} jobs")
    ax3.set_ylim(bottom=0)
    ax3.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


KEPT: Final = "<!-- measured by other targets: kept when make bench rewrites this page -->"


def kept_tail(page: Path) -> str:
    """The part of an existing page that other benchmark targets wrote (from KEPT on)."""
    try:
        text = page.read_text("utf-8")
    except OSError:
        return ""
    at = text.find(KEPT)
    return "" if at == -1 else "\n" + text[at:]


def main() -> None:
    import sys

    import orjson

    source = Path(sys.argv[1])
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("docs/benchmarks.md")
    results = Results.from_dict(orjson.loads(source.read_bytes()))
    page = markdown(results, target.with_suffix(".png").name) + kept_tail(target)
    target.write_text(page, "utf-8")
    plot(results, target.with_suffix(".png"))
    print(summary(results))


if __name__ == "__main__":
    main()
