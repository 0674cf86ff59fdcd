"""Scale: fan-out, 10,000 destinations over 1,000 tenants, and a noisy tenant.

    python -m bench.scale [--quick] [--deliveries 20000] [--runs 3] [--tenants 1000]
                          [--destinations 10] [--backlog 100000] [--quiet-rate 50]
                          [--quiet-seconds 10]

One PostgreSQL server (bench/pg.py), one loopback receiver process (bench/receiver.py),
one `courier worker` (1p × c256 × b128, bench/courier_run.py's worker command). Each
layout's tenants and destinations are built once into a template database; every run
clones it, so runs differ only in what they measure.

Throughput, in rounds (each round runs every layout once, so a busy moment on the
machine falls on all of them; median of --runs): the worker is idle, `--deliveries`
deliveries are enqueued with `enqueue_events` and committed at once, and the clock runs
from that commit until the deliveries table shows all of them delivered. Layouts:
  * one destination (its max_in_flight lifted, as in `make bench`): the reference rate;
  * one tenant, every event fanned out to 10 and to 100 destinations;
  * `--tenants` × `--destinations` destinations, each event for one of them, spread
    evenly (each destination gets deliveries / destinations of them).
Destinations other than the reference keep the default max_in_flight: the claim's
per-destination caps and fairness are part of what is measured. Every destination has
its own URL (a path on the receiver) and its own signing secret, so per-destination
caches in the worker see as many keys as a real installation would.

Noisy tenant: one tenant with a `--backlog` of waiting deliveries (one destination, its
cap lifted: the worst case, it may take every slot) beside `--tenants - 1` quiet
tenants. While the backlog drains, quiet events are enqueued one per transaction at
`--quiet-rate`/s for `--quiet-seconds`, round-robin over the quiet tenants; latency is
the receiver's arrival time minus the start of the enqueue call. The same quiet load
without the backlog, in the same run, is the control.

CPU per delivery, by process (user + system from /proc): the worker, the PostgreSQL
backends of the run's database, the receiver. On 2 cores, 2 s of CPU per second is all
there is, so these say what bounds a rate. Every loop is bounded: counts are capped and
each run ends at a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil
import psycopg
from psycopg.conninfo import make_conninfo

from bench import measure, pg, procs
from bench.contestant import WorkerSpec
from bench.courier_run import DESTINATION_MAX_IN_FLIGHT, Courier
from bench.payloads import EVENT_TYPE, payload
from courier.crypto import SecretBox
from courier.destinations import create_destination
from courier.enqueue import NewEvent, enqueue_event_async, enqueue_events
from courier.tenancy import create_tenant

SPEC = WorkerSpec(processes=1, concurrency=256, batch=128)  # the worker
ENQUEUE_BATCH = 1_000  # events per enqueue_events call
CAP_S = 60.0  # a throughput run still busy after this long is scored on what it finished
QUIET_DRAIN_S = 30.0  # after the quiet load, how long its last events may take to arrive
TARGET = 0.80  # of the one-destination rate, counted in deliveries
DEFAULT_MAX_IN_FLIGHT = 16  # a destination's cap when the API is not told otherwise


@dataclass(frozen=True, slots=True)
class Layout:
    """Tenants and destinations of one measured shape."""

    label: str
    tenants: int
    destinations: int  # per tenant
    fan_out: bool  # True: an event goes to every destination of its tenant; else to one
    cap: int = DEFAULT_MAX_IN_FLIGHT  # max_in_flight of every destination


@dataclass
class Fixture:
    """A layout built once into a template database (cloned for every run)."""

    layout: Layout
    template: str
    tenants: list[uuid.UUID]

    def event_type(self, destination: int) -> str:
        # Spread layouts route an event by its type: destination j takes `order.d<j>`.
        return EVENT_TYPE if self.layout.fan_out else f"order.d{destination}"

    def batches(self, deliveries: int, tag: str) -> list[tuple[uuid.UUID, list[NewEvent]]]:
        """The events that make `deliveries` deliveries, grouped by tenant."""
        lay = self.layout
        if lay.fan_out:
            events = [
                NewEvent(EVENT_TYPE, payload(f"{tag}-{n}", n))
                for n in range(deliveries // lay.destinations)
            ]
            return [(self.tenants[0], events)]
        by_tenant: dict[int, list[NewEvent]] = {}
        for n in range(deliveries):
            # Round-robin over tenants, then over each tenant's destinations: every
            # destination gets the same share, and no two in a row share a tenant.
            t, d = n % lay.tenants, (n // lay.tenants) % lay.destinations
            by_tenant.setdefault(t, []).append(
                NewEvent(self.event_type(d), payload(f"{tag}-{n}", n))
            )
        return [(self.tenants[t], events) for t, events in by_tenant.items()]


@dataclass
class Run:
    """One throughput run: what finished, how fast, and the CPU each process spent."""

    layout: str
    deliveries: int
    done: int
    elapsed_s: float
    cpu_s: dict[str, float] = field(default_factory=dict)  # process group -> CPU seconds

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def us_per_delivery(self, group: str) -> float:
        return self.cpu_s.get(group, 0.0) / max(self.done, 1) * 1e6


@dataclass
class Quiet:
    """Quiet tenants' latency under one condition (with or without the backlog)."""

    label: str
    sent: int
    received: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    backlog_done: int = 0  # backlog deliveries delivered by the end of the quiet load
    window_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)


# -- building the templates --------------------------------------------------------------


def build_fixture(
    server_url: str, base_template: str, layout: Layout, receiver: str, box: SecretBox
) -> Fixture:
    """Tenants and destinations in one transaction, in a clone of the migrated template."""
    name, url = pg.create_database(server_url, "tpl_scale", base_template)
    tenants: list[uuid.UUID] = []
    with psycopg.connect(url) as conn, conn.transaction():
        for t in range(layout.tenants):
            tenant_id, _ = create_tenant(conn, f"scale-{t}")
            tenants.append(tenant_id)
            for d in range(layout.destinations):
                create_destination(
                    conn,
                    box,
                    tenant_id,
                    name=f"d{d}",
                    url=f"{receiver}/{t}/{d}",  # its own URL: per-URL caches see every one
                    event_types=[] if layout.fan_out else [f"order.d{d}"],
                    max_in_flight=layout.cap,
                )
    with psycopg.connect(url, autocommit=True) as conn:
        # The tables the fixture filled; deliveries and events stay unanalyzed, as in
        # `make bench` (statistics of an empty deliveries table mislead the planner).
        conn.execute("ANALYZE tenants, api_keys, destinations")
    return Fixture(layout, name, tenants)


# -- measuring -----------------------------------------------------------------------------


def process_cpu(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


@dataclass
class CpuMeter:
    """CPU seconds of the worker, the run database's backends and the receiver, between
    `start` and `stop` (the backends are found at each reading: the claim, completer and
    listener connections are opened before the clock starts and live through it)."""

    workers: measure.Workers
    receiver: measure.Receiver
    conn: psycopg.AsyncConnection[Any]
    before: dict[str, float] = field(default_factory=dict)
    backends: dict[int, float] = field(default_factory=dict)

    async def start(self) -> None:
        self.before = {
            "worker": self.workers.cpu_seconds(),
            "receiver": process_cpu([self.receiver.child.pid]),
        }
        self.backends = await measure.backend_cpu(self.conn)

    async def stop(self) -> dict[str, float]:
        after = await measure.backend_cpu(self.conn)
        return {
            "worker": self.workers.cpu_seconds() - self.before["worker"],
            "postgres": sum(t - self.backends.get(pid, 0.0) for pid, t in after.items()),
            "receiver": process_cpu([self.receiver.child.pid]) - self.before["receiver"],
        }


def enqueue(url: str, batches: list[tuple[uuid.UUID, list[NewEvent]]]) -> float:
    """Enqueue every batch in one transaction; returns the commit's wall-clock time."""
    with psycopg.connect(url) as conn:
        with conn.transaction():
            for tenant_id, events in batches:
                for at in range(0, len(events), ENQUEUE_BATCH):
                    enqueue_events(conn, tenant_id, events[at : at + ENQUEUE_BATCH])
        return time.time()


async def delivered(conn: psycopg.AsyncConnection[Any], tenant: uuid.UUID | None = None) -> int:
    if tenant is None:
        cur = await conn.execute("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
    else:
        cur = await conn.execute(
            "SELECT count(*) FROM deliveries WHERE tenant_id = %s AND state = 'delivered'",
            (tenant,),
        )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


@dataclass
class Bench:
    setup: measure.Setup
    courier: Courier
    receiver: measure.Receiver
    custom_plans: bool = False  # workers plan every statement per call
    warm: bool = False  # one untimed delivery to every destination before the clock starts

    async def clone(self, fixture: Fixture) -> tuple[str, str]:
        return await asyncio.to_thread(
            pg.create_database, self.setup.server_url, "run_scale", fixture.template
        )

    async def workers(self, url: str) -> measure.Workers:
        if self.custom_plans:
            # The generic plan PostgreSQL may settle on after five runs of the prepared
            # claim reaches a busy destination's rows by (tenant, destination) alone
            # (docs/benchmarks.md, "Scale"): the one-destination reference then falls
            # to 400-500/s in some runs. Planning each claim costs more PostgreSQL CPU
            # where claims are small (capped destinations), so it is not the default.
            url = make_conninfo(url, options="-c plan_cache_mode=force_custom_plan")
        return await measure.Workers.start(self.setup, self.courier, url, self.receiver.url, SPEC)

    async def throughput(self, fixture: Fixture, deliveries: int, tag: str) -> Run:
        batches = fixture.batches(deliveries, tag)
        expected = sum(len(e) for _, e in batches) * (
            fixture.layout.destinations if fixture.layout.fan_out else 1
        )
        name, url = await self.clone(fixture)
        try:
            await self.receiver.reset()
            workers = await self.workers(url)
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    warmed = (
                        await self._warm_up(fixture, url, conn, workers, tag) if self.warm else 0
                    )
                    meter = CpuMeter(workers, self.receiver, conn)
                    await meter.start()
                    committed_at = await asyncio.to_thread(enqueue, url, batches)
                    deadline = committed_at + CAP_S
                    while await self.receiver.count() < expected and time.time() < deadline:
                        workers.check_alive()
                        await asyncio.sleep(measure.POLL)
                    done = await delivered(conn) - warmed
                    while done < expected and time.time() < deadline:
                        await asyncio.sleep(measure.POLL / 5)
                        done = await delivered(conn) - warmed
                    ended = time.time()
                    cpu = await meter.stop()
            finally:
                await workers.stop()
        finally:
            await asyncio.to_thread(pg.drop_database, self.setup.server_url, name)
        return Run(fixture.layout.label, expected, done, ended - committed_at, cpu)

    async def _warm_up(
        self,
        fixture: Fixture,
        url: str,
        conn: psycopg.AsyncConnection[Any],
        workers: measure.Workers,
        tag: str,
    ) -> int:
        """Deliver once to every destination, so the worker holds a keep-alive connection
        and warm caches for each (as it does when its destinations are busy), then forget
        those deliveries at the receiver; returns how many were delivered."""
        lay = fixture.layout
        count = lay.tenants * lay.destinations
        # one delivery per destination: the layouts' own round-robin covers each once
        await asyncio.to_thread(enqueue, url, fixture.batches(count, f"{tag}-w"))
        deadline = time.time() + CAP_S
        while (done := await delivered(conn)) < count and time.time() < deadline:
            workers.check_alive()
            await asyncio.sleep(measure.POLL)
        if done < count:  # late warm-up deliveries would be counted as the run's
            raise SystemExit(
                f"bench.scale: warm-up delivered {done:,} of {count:,} in {CAP_S:.0f} s"
            )
        await self.receiver.reset()
        return done

    async def noisy(
        self, fixture: Fixture, backlog: int, rate: float, seconds: float, tag: str
    ) -> Quiet:
        """Quiet tenants' latency, with `backlog` deliveries waiting for tenant 0 (or none)."""
        noisy, quiet = fixture.tenants[0], fixture.tenants[1:]
        name, url = await self.clone(fixture)
        sent: dict[str, float] = {}
        try:
            await asyncio.to_thread(pg.checkpoint, self.setup.server_url)
            await self.receiver.reset()
            workers = await self.workers(url)
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    meter = CpuMeter(workers, self.receiver, conn)
                    await meter.start()
                    if backlog:
                        events = [
                            NewEvent(EVENT_TYPE, payload(f"{tag}-n{n}", n)) for n in range(backlog)
                        ]
                        await asyncio.to_thread(enqueue, url, [(noisy, events)])
                    started = time.monotonic()
                    await self._quiet_load(url, quiet, rate, seconds, tag, sent)
                    window = time.monotonic() - started
                    backlog_done = await delivered(conn, noisy) if backlog else 0
                    cpu = await meter.stop()
                    deadline = time.time() + QUIET_DRAIN_S
                    while time.time() < deadline and await self._arrived(sent) < len(sent):
                        workers.check_alive()
                        await asyncio.sleep(measure.POLL * 4)
            finally:
                await workers.stop()
        finally:
            await asyncio.to_thread(pg.drop_database, self.setup.server_url, name)
        arrived = await self.receiver.arrivals()
        lat = np.array([(arrived[k] - t) * 1000 for k, t in sent.items() if k in arrived])
        pct: Any = np.percentile(lat, [50, 95, 99]) if len(lat) else [float("nan")] * 3
        label = f"{backlog:,} waiting for one tenant" if backlog else "no backlog (control)"
        return Quiet(
            label,
            len(sent),
            len(lat),
            float(pct[0]),
            float(pct[1]),
            float(pct[2]),
            float(lat.max()) if len(lat) else float("nan"),
            backlog_done,
            window,
            cpu,
        )

    async def _arrived(self, sent: dict[str, float]) -> int:
        arrived = await self.receiver.arrivals()
        return sum(1 for k in sent if k in arrived)

    @staticmethod
    async def _quiet_load(
        url: str,
        quiet: list[uuid.UUID],
        rate: float,
        seconds: float,
        tag: str,
        sent: dict[str, float],
    ) -> None:
        """One event per transaction at `rate`/s, round-robin over the quiet tenants."""
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            started = time.monotonic()
            for n in range(int(rate * seconds)):
                delay = started + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                at = time.time()
                tenant = quiet[n % len(quiet)]
                result = await enqueue_event_async(
                    conn, tenant, EVENT_TYPE, payload(f"{tag}-q{n}", n)
                )
                sent[str(result.event_id)] = at


# -- the run -------------------------------------------------------------------------------


@dataclass
class Plan:
    deliveries: int = 20_000
    runs: int = 3
    tenants: int = 1_000
    destinations: int = 10  # per tenant, in the spread layout
    backlog: int = 100_000
    quiet_rate: float = 50.0
    quiet_seconds: float = 10.0
    custom_plans: bool = False
    only_noisy: bool = False
    warm: bool = False

    def layouts(self) -> list[Layout]:
        if self.only_noisy:
            return []
        spread = self.tenants * self.destinations
        return [
            Layout("1 destination", 1, 1, fan_out=True, cap=DESTINATION_MAX_IN_FLIGHT),
            Layout("fan-out to 10", 1, 10, fan_out=True),
            Layout("fan-out to 100", 1, 100, fan_out=True),
            Layout(
                f"{spread:,} destinations, {self.tenants:,} tenants",
                self.tenants,
                self.destinations,
                fan_out=False,
            ),
        ]

    def noisy_layouts(self) -> tuple[Layout, Layout]:
        """The noisy tenant (cap lifted) and the quiet ones (default cap), one template."""
        return (
            Layout("noisy", 1, 1, fan_out=True, cap=DESTINATION_MAX_IN_FLIGHT),
            Layout("quiet", self.tenants - 1, 1, fan_out=True),
        )


def parse_args(argv: Sequence[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="small counts, a smoke run (~30 s)")
    parser.add_argument("--deliveries", type=int, help="per throughput run (20,000)")
    parser.add_argument("--runs", type=int, help="rounds; medians are reported (3)")
    parser.add_argument("--tenants", type=int, help="of the spread and noisy layouts (1,000)")
    parser.add_argument("--destinations", type=int, help="per tenant, spread layout (10)")
    parser.add_argument("--backlog", type=int, help="the noisy tenant's backlog (100,000; 0 skips)")
    parser.add_argument("--quiet-rate", type=float, help="quiet events/s (50)")
    parser.add_argument("--quiet-seconds", type=float, help="length of the quiet load (10)")
    parser.add_argument(
        "--only-noisy",
        action="store_true",
        help="run only the noisy-tenant scenario (no throughput layouts)",
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="deliver once to every destination before each throughput run's clock starts "
        "(keep-alive connections and caches warm, as under steady traffic)",
    )
    parser.add_argument(
        "--custom-plans",
        action="store_true",
        help="workers plan each statement per call (plan_cache_mode=force_custom_plan)",
    )
    args = parser.parse_args(argv)
    plan = Plan()
    if args.quick:
        plan = Plan(
            deliveries=2_000,
            runs=1,
            tenants=100,
            destinations=10,
            backlog=10_000,
            quiet_rate=20.0,
            quiet_seconds=4.0,
        )
    for name in (
        "deliveries",
        "runs",
        "tenants",
        "destinations",
        "backlog",
        "quiet_rate",
        "quiet_seconds",
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(plan, name, value)
    plan.custom_plans = args.custom_plans
    plan.only_noisy = args.only_noisy
    plan.warm = args.warm
    if not 100 <= plan.deliveries <= 200_000 or not 1 <= plan.runs <= 10:
        parser.error("--deliveries must be 100..200000 and --runs 1..10")
    if not 2 <= plan.tenants <= 10_000 or not 1 <= plan.destinations <= 100:
        parser.error("--tenants must be 2..10000 and --destinations 1..100")
    if not 0 <= plan.backlog <= 1_000_000:
        parser.error("--backlog must be 0..1000000")
    if not 1 <= plan.quiet_rate <= 1_000 or not 1 <= plan.quiet_seconds <= 120:
        parser.error("--quiet-rate must be 1..1000 and --quiet-seconds 1..120")
    return plan


def say(started: float, message: str) -> None:
    print(f"[{time.monotonic() - started:6.0f}s] {message}", flush=True)


def describe(r: Run) -> str:
    capped = f" (capped: {r.done:,}/{r.deliveries:,})" if r.done < r.deliveries else ""
    cores = sum(r.cpu_s.values()) / r.elapsed_s if r.elapsed_s > 0 else 0.0
    return (
        f"{r.rate:,.0f}/s{capped}; CPU µs/delivery: worker {r.us_per_delivery('worker'):.0f}, "
        f"postgres {r.us_per_delivery('postgres'):.0f}, receiver "
        f"{r.us_per_delivery('receiver'):.0f}; {cores:.2f} cores busy"
    )


def median_of(runs: list[Run], pick: Any) -> float:
    return float(statistics.median(pick(r) for r in runs))


def _report_throughput(plan: Plan, runs: dict[str, list[Run]]) -> None:
    warm = ", warm (one delivery to every destination first)" if plan.warm else ""
    print()
    print(
        f"Throughput: {plan.deliveries:,} deliveries per run, worker {SPEC.label}, median of "
        f"{plan.runs}{warm}; CPU µs per delivery (user + system, /proc)"
    )
    head = ("layout", "deliv/s", "range", "× 1 dest", "worker", "postgres", "receiver", "total")
    print(
        f"{head[0]:42}{head[1]:>9}{head[2]:>15}{head[3]:>10}"
        f"{head[4]:>8}{head[5]:>10}{head[6]:>10}{head[7]:>7}"
    )
    reference = median_of(next(iter(runs.values())), lambda r: r.rate)
    for label, rs in runs.items():
        rate = median_of(rs, lambda r: r.rate)
        lo, hi = min(r.rate for r in rs), max(r.rate for r in rs)
        cpu = [
            median_of(rs, lambda r, g=g: r.us_per_delivery(g))
            for g in ("worker", "postgres", "receiver")
        ]
        print(
            f"{label:42}{rate:>9,.0f}{f'{lo:,.0f}–{hi:,.0f}':>15}{rate / reference:>9.0%} "
            f"{cpu[0]:>8.0f}{cpu[1]:>10.0f}{cpu[2]:>10.0f}{sum(cpu):>7.0f}"
        )
    print()
    for label, rs in list(runs.items())[1:]:
        ratio = median_of(rs, lambda r: r.rate) / reference
        verdict = "met" if ratio >= TARGET else "NOT met"
        print(f"target: {label} ≥ {TARGET:.0%} of 1 destination: {ratio:.0%}, {verdict}")


def report(plan: Plan, runs: dict[str, list[Run]], quiet: list[Quiet]) -> None:
    if runs:
        _report_throughput(plan, runs)
    if quiet:
        print()
        print(
            f"Noisy tenant: quiet events at {plan.quiet_rate:g}/s for {plan.quiet_seconds:g} s, "
            f"one per transaction, over {plan.tenants - 1:,} quiet tenants"
        )
        print(
            f"{'condition':34}{'received':>12}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}"
            f"{'backlog done':>14}{'worker µs':>11}{'pg µs':>8}"
        )
        for q in quiet:
            done = q.backlog_done + q.received
            print(
                f"{q.label:34}{f'{q.received}/{q.sent}':>12}{q.p50_ms:>8.1f}{q.p95_ms:>8.1f}"
                f"{q.p99_ms:>8.1f}{q.max_ms:>8.1f}{q.backlog_done:>14,}"
                f"{q.cpu_s.get('worker', 0) / max(done, 1) * 1e6:>11.0f}"
                f"{q.cpu_s.get('postgres', 0) / max(done, 1) * 1e6:>8.0f}"
            )
        if len(quiet) == 2 and quiet[0].window_s > 0:
            q = quiet[1]
            print(
                f"backlog drained at {q.backlog_done / q.window_s:,.0f}/s during the quiet load "
                f"({q.backlog_done:,} of {plan.backlog:,} in {q.window_s:.1f} s); "
                f"quiet p99 {q.p99_ms / quiet[0].p99_ms:.1f}× the control's"
            )


async def run(plan: Plan, server_url: str, log_dir: Path) -> None:
    started = time.monotonic()
    courier = Courier()
    box = SecretBox(courier.secret_key)
    setup = measure.Setup(server_url, log_dir)
    async with aiohttp.ClientSession() as session:
        receiver = await measure.start_receiver("receiver", 0, log_dir, session)
        bench = Bench(setup, courier, receiver, plan.custom_plans, plan.warm)
        base = receiver.url  # http://127.0.0.1:PORT/hook
        fixtures: list[Fixture] = []
        runs: dict[str, list[Run]] = {}
        quiet: list[Quiet] = []
        try:
            await measure.install_template(setup, courier)
            tpl = setup.templates[courier.name]
            for layout in plan.layouts():
                fixtures.append(
                    await asyncio.to_thread(build_fixture, server_url, tpl, layout, base, box)
                )
                say(started, f"built {layout.label}")
            noisy_fixture = None
            if plan.backlog:
                noisy_fixture = await asyncio.to_thread(
                    build_noisy, server_url, tpl, plan, base, box
                )
                fixtures.append(noisy_fixture)
                say(started, "built the noisy-tenant layout")
            runs.update({f.layout.label: [] for f in fixtures[: len(plan.layouts())]})
            for r in range(plan.runs):
                for fixture in fixtures[: len(plan.layouts())]:
                    result = await bench.throughput(fixture, plan.deliveries, f"r{r}")
                    runs[fixture.layout.label].append(result)
                    say(started, f"round {r + 1}: {fixture.layout.label}: {describe(result)}")
            if noisy_fixture is not None:
                for backlog in (0, plan.backlog):
                    q = await bench.noisy(
                        noisy_fixture, backlog, plan.quiet_rate, plan.quiet_seconds, f"n{backlog}"
                    )
                    quiet.append(q)
                    say(
                        started,
                        f"noisy: {q.label}: quiet p50 {q.p50_ms:.1f} ms, p99 {q.p99_ms:.1f} ms, "
                        f"{q.received}/{q.sent}, backlog done {q.backlog_done:,}",
                    )
        finally:
            for fixture in fixtures:
                await asyncio.to_thread(pg.drop_database, server_url, fixture.template)
            await measure.drop_templates(setup)
            await asyncio.to_thread(procs.stop, [receiver.child])
    report(plan, runs, quiet)
    say(started, "done")


def build_noisy(
    server_url: str, base_template: str, plan: Plan, receiver: str, box: SecretBox
) -> Fixture:
    """One template: tenant 0 is the noisy one (cap lifted), the others quiet (default cap)."""
    loud, calm = plan.noisy_layouts()
    first = build_fixture(server_url, base_template, loud, receiver, box)
    # The quiet tenants join the same database: build them into the noisy template.
    url = pg.with_dbname(server_url, first.template)
    with psycopg.connect(url) as conn, conn.transaction():
        for t in range(calm.tenants):
            tenant_id, _ = create_tenant(conn, f"quiet-{t}")
            create_destination(conn, box, tenant_id, name="q", url=f"{receiver}/q/{t}")
            first.tenants.append(tenant_id)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE tenants, api_keys, destinations")
    return Fixture(
        Layout("noisy tenant", plan.tenants, 1, fan_out=True), first.template, first.tenants
    )


def main() -> None:
    plan = parse_args()
    with pg.server() as server, tempfile.TemporaryDirectory(prefix="courier-scale-") as logs:
        asyncio.run(run(plan, server, Path(logs)))


if __name__ == "__main__":
    main()
