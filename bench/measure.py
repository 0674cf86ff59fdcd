"""The three measurements: HTTP ceiling, throughput of a drained backlog, latency at a rate.

Throughput: workers are started and idle; N jobs are enqueued and committed at once;
the clock runs from that commit until the contestant's own tables show all N durably
finished (not merely received). A run is bounded by `cap_s`: a contestant still busy
then is scored on what it had finished.

Latency: workers are idle; jobs are enqueued one per transaction at a fixed rate;
latency is the receiver's arrival time minus the time the enqueue call began, both
`time.time()` on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import psutil
import psycopg

from bench import pg, procs
from bench.contestant import Contestant, WorkerSpec

POLL = 0.05  # seconds between progress checks
DRAIN_TIMEOUT = 30.0  # seconds to wait for the last jobs of a latency run
SETTLE = 1.0  # seconds after workers report ready, so their LISTEN is in place
LATENCY_SETTLE_S = 2.0  # seconds of quiet after the checkpoint before a latency run


@dataclass
class Receiver:
    child: procs.Child
    port: int
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def count(self) -> int:
        async with self.session.get(f"http://127.0.0.1:{self.port}/stats") as resp:
            return int((await resp.json())["count"])

    async def reset(self) -> None:
        async with self.session.post(f"http://127.0.0.1:{self.port}/reset") as resp:
            await resp.read()

    async def arrivals(self) -> dict[str, float]:
        """The first arrival time of each webhook-id."""
        async with self.session.get(f"http://127.0.0.1:{self.port}/arrivals") as resp:
            data = orjson.loads(await resp.read())
        first: dict[str, float] = {}
        for key, at in zip(data["ids"], data["times"], strict=True):
            first.setdefault(key, at)
        return first


async def start_receiver(
    name: str, delay_ms: float, log_dir: Path, session: aiohttp.ClientSession
) -> Receiver:
    argv = procs.python_module("bench.receiver", "--delay-ms", str(delay_ms))
    child = procs.spawn(name, argv, {}, log_dir)
    await asyncio.to_thread(procs.wait_ready, [child], "receiver listening on")
    match = re.search(r"listening on 127\.0\.0\.1:(\d+)", child.output())
    assert match is not None
    return Receiver(child, int(match.group(1)), session)


@dataclass
class ThroughputResult:
    contestant: str
    spec: str
    events: int
    done: int
    elapsed_s: float
    enqueue_rate: float
    peak_rss_mb: float
    capped: bool
    worker_cpu_us: float = 0.0  # worker processes' CPU time per finished job
    db_cpu_us: float = 0.0  # CPU time of the workers' PostgreSQL backends per finished job
    note: str = ""

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class LatencyResult:
    contestant: str
    spec: str
    offered_rate: float
    sent: int
    received: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    peak_rss_mb: float


@dataclass
class Setup:
    """What every run shares: the server, the receiver, where logs go."""

    server_url: str
    log_dir: Path
    templates: dict[str, str] = field(default_factory=dict)  # contestant -> template db


async def install_template(setup: Setup, contestant: Contestant) -> None:
    name, url = await asyncio.to_thread(
        pg.create_database, setup.server_url, f"tpl_{contestant.name}"
    )
    await contestant.install(url)
    setup.templates[contestant.name] = name


async def drop_templates(setup: Setup) -> None:
    """Drop the template databases install_template made (on a shared server they stay)."""
    while setup.templates:
        _, name = setup.templates.popitem()
        await asyncio.to_thread(pg.drop_database, setup.server_url, name)


class Workers:
    """Worker processes of one run, with their peak RSS sampled while they live."""

    def __init__(self, children: list[procs.Child]) -> None:
        self.children = children
        self.sampler = procs.RssSampler([c.pid for c in children])

    @classmethod
    async def start(
        cls, setup: Setup, contestant: Contestant, url: str, receiver_url: str, spec: WorkerSpec
    ) -> Workers:
        commands = contestant.workers(url, receiver_url, spec)
        children = [
            procs.spawn(f"{contestant.name}-worker-{i}", c.argv, c.env, setup.log_dir)
            for i, c in enumerate(commands)
        ]
        try:
            await asyncio.to_thread(procs.wait_ready, children, contestant.ready_marker)
        except procs.ChildFailed:
            procs.stop(children)
            raise
        workers = cls(children)
        workers.sampler.__enter__()
        await asyncio.sleep(SETTLE)
        return workers

    def cpu_seconds(self) -> float:
        """User + system CPU the worker processes have used so far."""
        total = 0.0
        for child in self.children:
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(child.pid).cpu_times()
                total += times.user + times.system
        return total

    def check_alive(self) -> None:
        for child in self.children:
            if child.popen.poll() is not None:
                raise procs.ChildFailed(f"{child.name} exited during the run:\n{child.tail()}")

    async def stop(self) -> float:
        """Stop the processes; returns the largest peak RSS of one of them, in MiB."""
        await asyncio.to_thread(procs.stop, self.children)
        self.sampler.__exit__()
        return self.sampler.max_mb


async def fresh_database(
    setup: Setup, contestant: Contestant, receiver: Receiver
) -> tuple[str, str]:
    name, url = await asyncio.to_thread(
        pg.create_database,
        setup.server_url,
        f"run_{contestant.name}",
        setup.templates[contestant.name],
    )
    await contestant.prepare(url, receiver.url)
    return name, url


async def backend_cpu(conn: psycopg.AsyncConnection[Any]) -> dict[int, float]:
    """CPU seconds used so far by each of this database's other backends (the workers')."""
    cur = await conn.execute(
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    found: dict[int, float] = {}
    for (pid,) in await cur.fetchall():
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            found[pid] = times.user + times.system
    return found


async def _wait_received(
    receiver: Receiver, target: int, deadline: float, workers: Workers
) -> None:
    """Until the receiver has `target` requests or the wall clock passes `deadline`."""
    while True:
        if time.time() >= deadline or await receiver.count() >= target:
            return
        workers.check_alive()
        await asyncio.sleep(POLL)


async def throughput(
    setup: Setup,
    contestant: Contestant,
    receiver: Receiver,
    spec: WorkerSpec,
    events: int,
    cap_s: float,
    before: Callable[[str], Awaitable[None]] | None = None,
) -> ThroughputResult:
    name, url = await fresh_database(setup, contestant, receiver)
    try:
        if before is not None:
            await before(url)
        await receiver.reset()
        workers = await Workers.start(setup, contestant, url, receiver.url, spec)
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                already = await contestant.done_count(conn)  # history rows, if any
                worker_cpu = workers.cpu_seconds()
                db_before = await backend_cpu(conn)
                committed_at, enqueue_rate = await contestant.enqueue_bulk(url, events)
                deadline = committed_at + cap_s
                if getattr(contestant, "uses_receiver", True):  # not a broker run
                    await _wait_received(receiver, events, deadline, workers)
                done = await contestant.done_count(conn) - already
                while done < events and time.time() < deadline:
                    await asyncio.sleep(POLL / 5)
                    done = await contestant.done_count(conn) - already
                ended = time.time()
                worker_cpu = workers.cpu_seconds() - worker_cpu
                db_after = await backend_cpu(conn)
                db_cpu = sum(t - db_before.get(pid, 0.0) for pid, t in db_after.items())
        finally:
            rss = await workers.stop()
    finally:
        await asyncio.to_thread(pg.drop_database, setup.server_url, name)
    return ThroughputResult(
        contestant=contestant.name,
        spec=spec.label,
        events=events,
        done=done,
        elapsed_s=ended - committed_at,
        enqueue_rate=enqueue_rate,
        peak_rss_mb=rss,
        capped=done < events,
        worker_cpu_us=worker_cpu / max(done, 1) * 1e6,
        db_cpu_us=db_cpu / max(done, 1) * 1e6,
    )


async def latency(
    setup: Setup,
    contestant: Contestant,
    receiver: Receiver,
    spec: WorkerSpec,
    rate: float,
    duration_s: float,
) -> LatencyResult:
    name, url = await fresh_database(setup, contestant, receiver)
    sent: dict[str, float] = {}
    try:
        # Latency follows runs that leave dirty buffers and busy processes behind; each
        # contestant starts from the same settled server instead of the one before's tail.
        await asyncio.to_thread(pg.checkpoint, setup.server_url)
        await asyncio.sleep(LATENCY_SETTLE_S)
        await receiver.reset()
        workers = await Workers.start(setup, contestant, url, receiver.url, spec)
        try:
            enqueuer = await contestant.open_enqueuer(url)
            try:
                total = int(rate * duration_s)
                started = time.monotonic()
                for n in range(total):
                    delay = started + n / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    at = time.time()
                    sent[await enqueuer.enqueue_one(n)] = at
            finally:
                await enqueuer.close()
            await _wait_received(receiver, len(sent), time.time() + DRAIN_TIMEOUT, workers)
        finally:
            rss = await workers.stop()
    finally:
        await asyncio.to_thread(pg.drop_database, setup.server_url, name)
    arrived = await receiver.arrivals()
    lat = np.array([(arrived[k] - t) * 1000 for k, t in sent.items() if k in arrived])
    pct: Any = np.percentile(lat, [50, 95, 99]) if len(lat) else [float("nan")] * 3
    return LatencyResult(
        contestant=contestant.name,
        spec=spec.label,
        offered_rate=rate,
        sent=len(sent),
        received=len(lat),
        p50_ms=float(pct[0]),
        p95_ms=float(pct[1]),
        p99_ms=float(pct[2]),
        max_ms=float(lat.max()) if len(lat) else float("nan"),
        peak_rss_mb=rss,
    )


async def ceiling(
    receiver: Receiver, log_dir: Path, events: int, concurrency: int
) -> tuple[float, float]:
    """Requests per second of a bare aiohttp client (its own process), and its CPU µs each."""
    await receiver.reset()
    argv = procs.python_module(
        "bench.ceiling", "--url", receiver.url, "--events", str(events),
        "--concurrency", str(concurrency),
    )  # fmt: skip
    child = procs.spawn("ceiling", argv, {}, log_dir)
    code = await asyncio.to_thread(child.popen.wait)
    if code != 0:
        raise procs.ChildFailed(f"the ceiling client failed:\n{child.tail()}")
    last = child.output().strip().splitlines()[-1]
    data = orjson.loads(last)
    return float(data["rate"]), float(data["cpu_us"])


async def enqueue_rate(
    setup: Setup, contestant: Contestant, receiver: Receiver, events: int
) -> float:
    """Jobs per second enqueued one per committed transaction, no workers running."""
    name, url = await fresh_database(setup, contestant, receiver)
    try:
        enqueuer = await contestant.open_enqueuer(url)
        try:
            started = time.perf_counter()
            for n in range(events):
                await enqueuer.enqueue_one(n)
            return events / (time.perf_counter() - started)
        finally:
            await enqueuer.close()
    finally:
        await asyncio.to_thread(pg.drop_database, setup.server_url, name)
