"""Ingest rates with no events stored against `--stored` delivered events already stored.

    python -m bench.ingest_growth [--stored 1000000] [--events 3000] [--rounds 3] [--explain]

Two databases on one PostgreSQL server, each with a tenant, one destination matching
every event and its own `courier serve` (no worker runs): one empty, one filled first
with `--stored` delivered events (bench/stored.py). Then, per round, every case runs
against the empty database and against the filled one (which goes first alternates by
round), so load on the machine falls on both alike. Cases, events per second:
  * `enqueue_event`, one event per transaction (BEGIN, the statement, COMMIT);
  * `enqueue_event` in a loop inside one transaction;
  * `enqueue_events`, 1,000-event batches inside one transaction;
  * `POST /v1/events`, one event per request, 16 concurrent clients;
  * `POST /v1/events/batch`, 1,000 events per request, 2 concurrent clients.
Median of `--rounds`; the ratio is the filled database's rate over the empty one's.
PostgreSQL CPU is the whole server's (postmaster, backends, background processes; ended
backends through the postmaster's children times) over the case, per event: it needs
the embedded server or a server on this machine. For the Python cases it prints how
many executions of the enqueue statement on the bench's connection ran a cached
generic plan and how many were planned for their own parameters. `--generic-plans`
measures with plan_cache_mode=force_generic_plan on every connection of the bench and
of the serves (after the fill). `--explain` prints, for both databases, EXPLAIN
(ANALYZE, BUFFERS) of the enqueue statement (1 and 1,000 events) and its generic plan
with costs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import psycopg
from psycopg.conninfo import make_conninfo

from bench import pg, procs, stored
from bench.ingest import (
    BATCH,
    BATCH_CLIENTS,
    RECEIVER,
    SINGLE_CLIENTS,
    _batch_ok,
    _post,
    _single_ok,
)
from bench.payloads import EVENT_TYPE, payload
from courier.crypto import SecretBox, generate_key
from courier.destinations import create_destination
from courier.enqueue import NewEvent, enqueue_event, enqueue_events
from courier.store.migrate import migrate
from courier.tenancy import create_tenant

CASES = {
    "tx": "enqueue_event, one per transaction",
    "loop": "enqueue_event, loop in one transaction",
    "batch": "enqueue_events, 1,000 per call",
    "post": f"POST /v1/events ({SINGLE_CLIENTS} clients)",
    "bpost": f"POST /v1/events/batch ({BATCH_CLIENTS} clients)",
}
Clock = Callable[[], float]


@dataclass
class Target:
    label: str
    dbname: str
    url: str
    tenant: uuid.UUID
    key: str
    base: str = ""
    child: procs.Child | None = None
    rates: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    plans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


def server_clock(url: str) -> Clock | None:
    """CPU seconds used so far by the whole server `url` is on; None if not local."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    try:
        postmaster = psutil.Process(int(row[0]) if row else 0).parent()
    except psutil.Error:
        return None
    if postmaster is None:
        return None

    def clock() -> float:
        t = postmaster.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in postmaster.children():
            try:
                c = child.cpu_times()
            except psutil.Error:
                continue
            total += c.user + c.system
        return float(total)

    return clock


def _python(target: Target, case: str, events: int, tag: str, clock: Clock) -> tuple[float, float]:
    """One Python case on a warm connection: (seconds, server CPU seconds)."""
    items = [NewEvent(EVENT_TYPE, payload(f"{tag}-{n}", n)) for n in range(events)]
    with psycopg.connect(target.url) as conn:
        with conn.transaction():  # warm the connection's prepared statement, off the clock
            for n in range(10):
                enqueue_event(conn, target.tenant, EVENT_TYPE, payload(f"{tag}-w{n}", n))
        cpu, started = clock(), time.perf_counter()
        if case == "tx":
            for item in items:
                with conn.transaction():
                    enqueue_event(conn, target.tenant, item.type, item.payload)
        elif case == "loop":
            with conn.transaction():
                for item in items:
                    enqueue_event(conn, target.tenant, item.type, item.payload)
        else:
            with conn.transaction():
                for at in range(0, events, BATCH):
                    enqueue_events(conn, target.tenant, items[at : at + BATCH])
        seconds, cpu = time.perf_counter() - started, clock() - cpu
        target.plans.setdefault(case, []).append(stored.enqueue_plans(conn))
        return seconds, cpu


async def _http(
    target: Target, case: str, events: int, tag: str, clock: Clock
) -> tuple[float, float]:
    headers = {"authorization": f"Bearer {target.key}"}
    bodies: list[dict[str, Any]]
    if case == "post":
        url, clients, ok = f"{target.base}/v1/events", SINGLE_CLIENTS, _single_ok
        bodies = [{"type": EVENT_TYPE, "payload": payload(f"{tag}-{n}", n)} for n in range(events)]
    else:
        url, clients, ok = f"{target.base}/v1/events/batch", BATCH_CLIENTS, _batch_ok
        items = [{"type": EVENT_TYPE, "payload": payload(f"{tag}-{n}", n)} for n in range(events)]
        bodies = [{"events": items[at : at + BATCH]} for at in range(0, events, BATCH)]
    async with aiohttp.ClientSession(headers=headers) as session:
        cpu = clock()
        seconds = await _post(session, url, bodies, clients, ok)
        return seconds, clock() - cpu


async def _warm(target: Target) -> None:
    """The server's pool connections and statements, off the clock."""
    headers = {"authorization": f"Bearer {target.key}"}
    bodies = [{"type": EVENT_TYPE, "payload": payload(f"warm-{n}", n)} for n in range(100)]
    async with aiohttp.ClientSession(headers=headers) as session:
        await _post(session, f"{target.base}/v1/events", bodies[:32], SINGLE_CLIENTS, _single_ok)
        await _post(session, f"{target.base}/v1/events/batch", [{"events": bodies}], 1, _batch_ok)


def _measure(target: Target, case: str, events: int, tag: str, clock: Clock) -> None:
    if case in ("post", "bpost"):
        seconds, cpu = asyncio.run(_http(target, case, events, tag, clock))
    else:
        seconds, cpu = _python(target, case, events, tag, clock)
    target.rates.setdefault(case, []).append(events / seconds)
    target.cpu.setdefault(case, []).append(cpu / events * 1e6)


def _prepare(server: str, label: str, secret_key: str) -> Target:
    name, url = pg.create_database(server, f"courier_growth_{label}")
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        tenant, issued = create_tenant(conn, f"bench-growth-{label}")
        create_destination(conn, SecretBox(secret_key), tenant, name="one", url=RECEIVER)
    return Target(label, name, url, tenant, issued.key)


def _start(target: Target, secret_key: str, logs: Path) -> None:
    port = procs.free_port()
    env = {
        "COURIER_DATABASE_URL": target.url,
        "COURIER_SECRET_KEY": secret_key,
        "COURIER_LOG_FORMAT": "json",
        "COURIER_ALLOW_PRIVATE_DESTINATIONS": "true",
    }
    argv = procs.python_module("courier", "serve", "--port", str(port))
    target.child = procs.spawn(f"courier-serve-{target.label}", argv, env, logs)
    target.base = f"http://127.0.0.1:{port}"
    asyncio.run(procs.wait_healthz(target.base, target.child))
    asyncio.run(_warm(target))


def _sizes(target: Target) -> str:
    with psycopg.connect(target.url) as conn:
        rows = conn.execute(
            "SELECT c.relname, pg_size_pretty(pg_relation_size(c.oid)) "
            "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i') "
            "   AND pg_relation_size(c.oid) > 1048576 "
            " ORDER BY pg_relation_size(c.oid) DESC"
        ).fetchall()
        total = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = total.fetchone()
    lines = [f"  {r[0]:48}{r[1]:>12}" for r in rows]
    return f"{target.label}: database {size[0] if size else '?'}\n" + "\n".join(lines)


def _report(targets: list[Target], stored_n: int, rounds: int, events: int) -> None:
    empty, full = targets
    print(f"\nevents/s, median of {rounds} x {events} events, one destination")
    head = f"{'':42}{'0 stored':>10}{f'{stored_n:,} stored':>18}{'ratio':>7}"
    print(f"{head}{'PG µs/ev at 0':>15}{'at N':>8}")
    for case, label in CASES.items():
        zero, n = (statistics.median(t.rates[case]) for t in (empty, full))
        cpu0, cpun = (statistics.median(t.cpu[case]) for t in (empty, full))
        line = f"{label:42}{zero:>10,.0f}{n:>18,.0f}{n / zero:>7.2f}"
        print(f"{line}{cpu0:>15,.0f}{cpun:>8,.0f}")
    for case in CASES:
        rounds_ = ", ".join(
            f"{t.label} " + "/".join(f"{r:,.0f}" for r in t.rates[case]) for t in targets
        )
        print(f"  {case}: {rounds_}")
    print("enqueue statement plans of the bench's connection, generic/custom per round:")
    for case in ("tx", "loop", "batch"):
        plans = ", ".join(
            f"{t.label} " + " ".join(f"{g}/{c}" for g, c in t.plans[case]) for t in targets
        )
        print(f"  {case}: {plans}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=1_000_000, help="events stored first")
    parser.add_argument("--events", type=int, default=3_000, help="events per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each case")
    parser.add_argument("--explain", action="store_true", help="print the enqueue's plans")
    parser.add_argument(
        "--generic-plans",
        action="store_true",
        help="measure with plan_cache_mode=force_generic_plan (bench and serve connections)",
    )
    args = parser.parse_args()
    if not 1_000 <= args.stored <= 5_000_000 or args.stored % stored.BATCH:
        parser.error("--stored must be a multiple of 1000 in 1000..5000000")
    if not 1_000 <= args.events <= 100_000 or not 1 <= args.rounds <= 10:
        parser.error("--events must be 1000..100000 and --rounds 1..10")
    secret_key = generate_key()
    with pg.server() as server, tempfile.TemporaryDirectory(prefix="courier-growth-") as logs:
        print(pg.server_facts(server))
        targets: list[Target] = []
        try:
            for label in ("empty", "stored"):
                targets.append(_prepare(server, label, secret_key))
            print(f"filling {args.stored:,} delivered events …")
            fill_s = stored.fill(targets[1].url, targets[1].tenant, args.stored)
            print(f"filled {args.stored:,} delivered events in {fill_s:.0f} s")
            print(_sizes(targets[1]))
            if args.generic_plans:
                for target in targets:
                    mode = "-c plan_cache_mode=force_generic_plan"
                    target.url = make_conninfo(target.url, options=mode)
            clock = server_clock(server)
            if clock is None:
                raise SystemExit("PostgreSQL's processes are not on this machine")
            for target in targets:
                _start(target, secret_key, Path(logs))
            pg.checkpoint(server)
            for r in range(args.rounds):
                for case in CASES:
                    order = targets if r % 2 == 0 else targets[::-1]
                    for target in order:
                        _measure(target, case, args.events, f"{case}{r}{target.label}", clock)
                print(f"round {r + 1}/{args.rounds} done", flush=True)
            _report(targets, args.stored, args.rounds, args.events)
            if args.explain:
                for target in targets:
                    for n in (1, BATCH):
                        print(f"\n--- {target.label}, enqueue_events of {n} event(s)")
                        print(stored.explain_enqueue(target.url, target.tenant, n))
                    print(f"\n--- {target.label}, enqueue_events, generic plan")
                    print(stored.explain_generic(target.url))
        finally:
            procs.stop([t.child for t in targets if t.child is not None])
            for target in targets:
                pg.drop_database(server, target.dbname)


if __name__ == "__main__":
    main()
