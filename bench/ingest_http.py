"""`POST /v1/events` one event per request: events/s and CPU per request, by process.

    python -m bench.ingest_http [--tree DIR[@N] ...] [--requests 4000] [--clients 32]
                                [--rounds 3]

Each `--tree` is a courier checkout (default: this one); `DIR@N` runs its
`courier serve --workers N` (give no `@N` to a checkout without the flag). To compare a
change with the code before it in one run, check the earlier commit out beside this one
(`git worktree add /tmp/ingest-before <commit>`) and pass both trees. Every tree gets a
fresh database migrated by its own code, a tenant, one destination that matches every
event (no worker runs, so nothing is sent) and its own `courier serve`; the rounds
alternate between the trees, so a busy moment on the machine falls on both.

Per round: `--requests` requests from `--clients` concurrent aiohttp clients (after a
warm-up off the clock); the rate is requests/s, and the CPU each process spent during
the round (utime + stime from /proc: the `courier serve` process and its children, the
database's server processes for that database, this load generator) divided by the
requests. Medians of `--rounds` are printed. Bounded: every count has a ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
import psycopg

from bench import pg, procs
from bench.payloads import EVENT_TYPE, payload
from courier.crypto import generate_key

RECEIVER = "http://127.0.0.1:9/hook"  # never called: no worker runs
WARM_UP = 200  # requests per server before the first round, off the clock


@dataclass
class Target:
    tree: Path
    label: str
    workers: int | None = None
    base: str = ""
    key: str = ""
    dbname: str = ""
    child: procs.Child | None = None
    rates: list[float] = field(default_factory=list)
    cpu: dict[str, list[float]] = field(default_factory=dict)  # ms per request


def _env(tree: Path, url: str, secret_key: str) -> dict[str, str]:
    return {
        "PYTHONPATH": str(tree / "src"),
        "COURIER_DATABASE_URL": url,
        "COURIER_SECRET_KEY": secret_key,
        "COURIER_LOG_FORMAT": "json",
        "COURIER_LOG_LEVEL": "warning",
        "COURIER_ALLOW_PRIVATE_DESTINATIONS": "true",
    }


def _courier(tree: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "courier", *args],
        env={**os.environ, **env},
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"courier {' '.join(args)} in {tree}: {done.stderr.strip()[-500:]}")
    return done.stdout


async def _destination(base: str, key: str) -> None:
    headers = {"authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        body = {"name": "one", "url": RECEIVER}
        async with session.post(f"{base}/v1/destinations", json=body) as resp:
            if resp.status != 201:
                raise RuntimeError(f"creating a destination: {resp.status} {await resp.text()}")


def _cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _groups(target: Target, admin: str) -> dict[str, list[int]]:
    assert target.child is not None
    server = psutil.Process(target.child.pid)
    serve = [server.pid, *(c.pid for c in server.children(recursive=True))]
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (target.dbname,)
        ).fetchall()
    return {"serve": serve, "postgres": [int(r[0]) for r in rows], "client": [os.getpid()]}


async def _post_all(target: Target, requests: int, clients: int, tag: str) -> float:
    headers = {"authorization": f"Bearer {target.key}"}
    bodies = [{"type": EVENT_TYPE, "payload": payload(f"{tag}-{n}", n)} for n in range(requests)]
    bodies.reverse()
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:

        async def lane() -> None:
            while bodies:
                body = bodies.pop()
                async with session.post(f"{target.base}/v1/events", json=body) as resp:
                    await resp.read()
                    if resp.status != 202:
                        raise RuntimeError(f"POST /v1/events answered {resp.status}")

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(clients)))
        return time.perf_counter() - started


def _round(target: Target, admin: str, requests: int, clients: int, tag: str) -> None:
    groups = _groups(target, admin)
    before = {name: _cpu_s(pids) for name, pids in groups.items()}
    before["client"] = sum(os.times()[:2])
    elapsed = asyncio.run(_post_all(target, requests, clients, tag))
    after = {name: _cpu_s(pids) for name, pids in groups.items()}
    after["client"] = sum(os.times()[:2])
    target.rates.append(requests / elapsed)
    for name in groups:
        ms = (after[name] - before[name]) * 1000 / requests
        target.cpu.setdefault(name, []).append(ms)


def _start(
    target: Target, server_url: str, secret_key: str, workers: int | None, logs: Path
) -> str:
    name, url = pg.create_database(server_url, "courier_ingest_http")
    target.dbname = name
    env = _env(target.tree, url, secret_key)
    _courier(target.tree, env, "migrate")
    created = _courier(target.tree, env, "tenants", "create", f"bench-{name}")
    found = re.search(r"api_key:\s+(\S+)", created)
    assert found is not None, created
    target.key = found.group(1)
    port = procs.free_port()
    argv = procs.python_module("courier", "serve", "--port", str(port))
    if workers is not None:
        argv += ["--workers", str(workers)]
    target.child = procs.spawn(f"serve-{target.label}", argv, env, logs)
    target.base = f"http://127.0.0.1:{port}"
    asyncio.run(procs.wait_healthz(target.base, target.child))
    asyncio.run(_destination(target.base, target.key))
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", help="a courier checkout[@workers]")
    parser.add_argument("--requests", type=int, default=4_000, help="requests per round")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per tree")
    args = parser.parse_args()
    if not 500 <= args.requests <= 100_000 or not 1 <= args.rounds <= 10:
        parser.error("--requests must be 500..100000 and --rounds 1..10")
    if not 1 <= args.clients <= 512:
        parser.error("--clients must be 1..512")
    targets = []
    for n, spec in enumerate(args.tree or [str(Path(__file__).resolve().parents[1])]):
        path, _, workers = spec.partition("@")
        tree = Path(path).resolve()
        targets.append(Target(tree, f"{n}-{tree.name}", int(workers) if workers else None))
    secret_key = generate_key()
    with pg.server() as server, tempfile.TemporaryDirectory(prefix="courier-ingest-") as logs:
        admin = pg.admin_url(server)
        try:
            for target in targets:
                _start(target, server, secret_key, target.workers, Path(logs))
                asyncio.run(_warm(target))
            for r in range(args.rounds):
                for target in targets:
                    _round(target, admin, args.requests, args.clients, f"r{r}")
        finally:
            procs.stop([t.child for t in targets if t.child is not None])
            for target in targets:
                if target.dbname:
                    pg.drop_database(server, target.dbname)
    print(
        f"POST /v1/events, one event per request, {args.clients} clients, "
        f"median of {args.rounds} x {args.requests} requests; CPU ms per request"
    )
    print(f"{'tree':40}{'req/s':>9}{'serve':>9}{'postgres':>10}{'client':>9}")
    for t in targets:
        cpu = {k: statistics.median(v) for k, v in t.cpu.items()}
        rate = statistics.median(t.rates)
        name = f"{t.tree}" + (f"@{t.workers}" if t.workers else "")
        print(
            f"{name:40}{rate:>9,.0f}{cpu['serve']:>9.2f}"
            f"{cpu['postgres']:>10.2f}{cpu['client']:>9.2f}"
        )
    first = targets[0]
    for t in targets[1:]:
        ratio = statistics.median(t.rates) / statistics.median(first.rates)
        total = sum(statistics.median(v) for v in t.cpu.values())
        first_total = sum(statistics.median(v) for v in first.cpu.values())
        print(
            f"{t.label} vs {first.label}: {ratio:.2f}x the rate, "
            f"{total / first_total:.2f}x the CPU per request (all processes)"
        )


async def _warm(target: Target) -> None:
    await _post_all(target, WARM_UP, 16, "warm")


if __name__ == "__main__":
    main()
