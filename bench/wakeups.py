"""Wake-ups: how many of two workers' claims find nothing, at a steady trickle.

    python -m bench.wakeups [--tree DIR ...] [--rates 50,200] [--seconds 15] [--rounds 1]

Two `courier worker` processes (c64 × b64, the defaults) serve one tenant with one
destination, a loopback receiver (bench/receiver.py); events are enqueued one per
transaction at each rate for `--seconds`. Each `--tree` is a courier checkout (default:
this one) whose `src` the workers run: to compare a change with the code before it, check
the earlier commit out beside this one (`git worktree add /tmp/wake-before <commit>`) and
pass both. The schema comes from this checkout; runs alternate between the trees, so a
busy moment on the machine falls on both.

Per run, from the workers' own `/metrics` (courier_worker_claims_total and
courier_worker_notifications_total, read before the first event and after the last
delivery): NOTIFYs received, claims, empty claims and their share; the CPU of the run
database's PostgreSQL backends other than the enqueuer's (utime + stime from /proc), per
event; p50/p99 from the start of the enqueue call to the receiver's arrival time.
Bounded: a fixed number of events per run, and a deadline for the last deliveries.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from bench import pg, procs
from bench.contestant import WorkerSpec
from bench.courier_run import Courier
from bench.measure import Receiver, backend_cpu, start_receiver

SPEC = WorkerSpec(processes=2, concurrency=64, batch=64)
DRAIN_S = 15.0  # seconds the last deliveries of a run may take
MAX_EVENTS = 20_000  # per run, whatever the rate and duration asked for
# The families read from the workers' /metrics (the parser drops `_total`); a tree
# without the deferred wake-ups simply reports none.
COUNTERS = (
    "courier_worker_claims",
    "courier_worker_notifications",
    "courier_worker_deferred_wakeups",
)
SETTLE_S = 1.0  # after the workers report ready, so their LISTEN is in place
POLL_S = 0.05  # between looks at the receiver's count


def percentiles(values: Sequence[float]) -> tuple[float, float]:
    """p50 and p99."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98]


@dataclass
class Result:
    tree: str
    rate: float
    sent: int
    received: int
    notifications: float
    claims: dict[tuple[str, str], float]  # (trigger, result) -> count
    skipped: float  # NOTIFY wake-ups that looked, found nothing due and did not claim
    pg_cpu_s: float
    p50_ms: float
    p99_ms: float

    @property
    def total(self) -> float:
        return sum(self.claims.values())

    @property
    def empty(self) -> float:
        return sum(n for (_, result), n in self.claims.items() if result == "empty")

    @property
    def empty_share(self) -> float:
        return self.empty / self.total if self.total else 0.0

    def by_trigger(self) -> str:
        triggers = sorted({t for t, _ in self.claims})
        parts = []
        for t in triggers:
            rows, empty = self.claims.get((t, "rows"), 0), self.claims.get((t, "empty"), 0)
            if rows or empty:
                parts.append(f"{t} {rows:.0f}/{empty:.0f}")
        return ", ".join(parts)


async def scrape(session: aiohttp.ClientSession, ports: Sequence[int]) -> dict[str, float]:
    """The claim and notification counters, summed over the workers."""
    totals: dict[str, float] = {}
    for port in ports:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
        for family in text_string_to_metric_families(text):
            if family.name not in COUNTERS:
                continue
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                key = sample.name
                for label in ("trigger", "result"):
                    if label in sample.labels:
                        key += f"|{sample.labels[label]}"
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def worker_env(tree: Path, base: dict[str, str], port: int) -> dict[str, str]:
    return {**base, "PYTHONPATH": str(tree / "src"), "COURIER_WORKER_METRICS_PORT": str(port)}


async def one_run(
    server_url: str,
    template: str,
    log_dir: Path,
    courier: Courier,
    receiver: Receiver,
    session: aiohttp.ClientSession,
    tree: Path,
    rate: float,
    seconds: float,
) -> Result:
    name, url = await asyncio.to_thread(pg.create_database, server_url, "run_wake", template)
    sent: dict[str, float] = {}
    try:
        await courier.prepare(url, receiver.url)
        await asyncio.to_thread(pg.checkpoint, server_url)
        await receiver.reset()
        ports = [procs.free_port() for _ in range(SPEC.processes)]
        commands = courier.workers(url, receiver.url, SPEC)
        children = [
            procs.spawn(f"worker-{i}", c.argv, worker_env(tree, c.env, port), log_dir)
            for i, (c, port) in enumerate(zip(commands, ports, strict=True))
        ]
        try:
            await asyncio.to_thread(procs.wait_ready, children, courier.ready_marker)
            await asyncio.sleep(SETTLE_S)
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as watch:
                enqueuer = await courier.open_enqueuer(url)
                try:
                    enqueuer_pid = enqueuer.conn.info.backend_pid
                    before = await scrape(session, ports)
                    cpu_before = await backend_cpu(watch)
                    total = min(MAX_EVENTS, int(rate * seconds))
                    started = time.monotonic()
                    for n in range(total):
                        delay = started + n / rate - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        at = time.time()
                        sent[await enqueuer.enqueue_one(n)] = at
                    deadline = time.time() + DRAIN_S
                    while time.time() < deadline and await receiver.count() < len(sent):
                        for child in children:
                            if child.popen.poll() is not None:
                                raise procs.ChildFailed(f"{child.name} exited:\n{child.tail()}")
                        await asyncio.sleep(POLL_S)
                    # The last completions commit after the receiver saw them.
                    await asyncio.sleep(0.5)
                    cpu_after = await backend_cpu(watch)
                    after = await scrape(session, ports)
                finally:
                    await enqueuer.close()
        finally:
            await asyncio.to_thread(procs.stop, children)
    finally:
        await asyncio.to_thread(pg.drop_database, server_url, name)
    arrived = await receiver.arrivals()
    lat = [(arrived[k] - t) * 1000 for k, t in sent.items() if k in arrived]
    p50, p99 = percentiles(lat)
    delta = {k: v - before.get(k, 0.0) for k, v in after.items()}
    claims: dict[tuple[str, str], float] = {}
    for key, value in delta.items():
        if key.startswith("courier_worker_claims_total|"):
            _, trigger, result = key.split("|")
            claims[(trigger, result)] = value
    pg_cpu = sum(
        t - cpu_before.get(pid, 0.0) for pid, t in cpu_after.items() if pid != enqueuer_pid
    )
    return Result(
        tree=str(tree),
        rate=rate,
        sent=len(sent),
        received=len(lat),
        notifications=delta.get("courier_worker_notifications_total", 0.0),
        skipped=delta.get("courier_worker_deferred_wakeups_total|skipped", 0.0),
        claims=claims,
        pg_cpu_s=pg_cpu,
        p50_ms=p50,
        p99_ms=p99,
    )


def describe(r: Result) -> str:
    return (
        f"{r.tree} @ {r.rate:.0f}/s: {r.received}/{r.sent} delivered, "
        f"{r.notifications:.0f} NOTIFYs, {r.skipped:.0f} skipped after a look, "
        f"{r.total:.0f} claims, {r.empty:.0f} empty "
        f"({r.empty_share:.0%}), PostgreSQL {r.pg_cpu_s * 1e6 / max(1, r.sent):.0f} µs/event, "
        f"p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms; by trigger (rows/empty): "
        f"{r.by_trigger()}"
    )


async def run(
    args: argparse.Namespace, trees: Sequence[Path], server_url: str, log_dir: Path
) -> list[Result]:
    courier = Courier()
    results: list[Result] = []
    async with aiohttp.ClientSession() as session:
        receiver = await start_receiver("receiver", 0, log_dir, session)
        template, template_url = await asyncio.to_thread(pg.create_database, server_url, "tpl_wake")
        try:
            await courier.install(template_url)
            for rate in args.rates:
                for r in range(args.rounds):
                    # Alternate the order too, so neither tree always runs first.
                    order = trees if r % 2 == 0 else list(reversed(trees))
                    for tree in order:
                        result = await one_run(
                            server_url,
                            template,
                            log_dir,
                            courier,
                            receiver,
                            session,
                            tree,
                            rate,
                            args.seconds,
                        )
                        results.append(result)
                        print(describe(result), flush=True)
        finally:
            await asyncio.to_thread(pg.drop_database, server_url, template)
            await asyncio.to_thread(procs.stop, [receiver.child])
    return results


def table(results: Sequence[Result]) -> str:
    """A Markdown table, medians over rounds per (tree, rate)."""
    lines = [
        "| tree | rate | NOTIFYs | skipped | claims | empty | empty share "
        "| PostgreSQL µs/event | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    groups: dict[tuple[str, float], list[Result]] = {}
    for r in results:
        groups.setdefault((r.tree, r.rate), []).append(r)
    for (tree, rate), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):

        def med(pick: Any, rs: list[Result] = rs) -> float:
            return float(statistics.median(pick(r) for r in rs))

        lines.append(
            f"| {Path(tree).name} | {rate:.0f}/s | {med(lambda r: r.notifications):.0f} "
            f"| {med(lambda r: r.skipped):.0f} "
            f"| {med(lambda r: r.total):.0f} | {med(lambda r: r.empty):.0f} "
            f"| {med(lambda r: r.empty_share):.0%} "
            f"| {med(lambda r: r.pg_cpu_s * 1e6 / max(1, r.sent)):.0f} "
            f"| {med(lambda r: r.p50_ms):.1f} | {med(lambda r: r.p99_ms):.1f} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", help="a courier checkout (repeatable)")
    parser.add_argument(
        "--rates",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[50.0, 200.0],
        help="events/s, comma-separated",
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="per run")
    parser.add_argument("--rounds", type=int, default=1, help="runs per tree and rate")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    trees = [Path(t).resolve() for t in args.tree or [Path(__file__).resolve().parents[1]]]
    with pg.server() as server, tempfile.TemporaryDirectory(prefix="courier-wake-") as logs:
        results = asyncio.run(run(args, trees, server, Path(logs)))
    print()
    print(table(results))


if __name__ == "__main__":
    main()
