"""WAL written per event and per delivery: an input of the capacity model in docs/scaling.md.

    python -m bench.wal [--events 5000] [--workers 1]

Enqueues `--events` events for one destination (a local receiver), then lets `courier
worker` processes deliver them all, and reads pg_current_wal_lsn() around each phase.
WAL volume is server-wide: other load on the same server counts too, so run it on a
quiet server (the figure is the median of `--runs`). Uses COURIER_DATABASE_URL, else an
embedded server.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import psycopg

from bench import pg, procs
from bench.contestant import WorkerSpec
from bench.courier_run import Courier
from bench.measure import start_receiver

DRAIN_TIMEOUT_S = 120.0


def _lsn(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    return int(row[0])


async def _one_run(server: str, events: int, workers: int, log_dir: Path) -> tuple[float, float]:
    courier = Courier()
    name, url = await asyncio.to_thread(pg.create_database, server, "wal")
    async with aiohttp.ClientSession() as session:
        receiver = await start_receiver("wal-receiver", 0, log_dir, session)
        children: list[procs.Child] = []
        try:
            await courier.install(url)
            await courier.prepare(url, receiver.url)
            await asyncio.to_thread(pg.checkpoint, url)
            before = _lsn(url)
            await courier.enqueue_bulk(url, events)
            enqueued = _lsn(url)
            commands = courier.workers(url, receiver.url, WorkerSpec(workers, 64, 64))
            children = [
                procs.spawn(f"wal-worker-{i}", c.argv, c.env, log_dir)
                for i, c in enumerate(commands)
            ]
            await asyncio.to_thread(procs.wait_ready, children, courier.ready_marker)
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                while await courier.done_count(conn) < events:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"wal: not all {events} delivered in {DRAIN_TIMEOUT_S}s")
                    await asyncio.sleep(0.05)
            delivered = _lsn(url)
        finally:
            procs.stop(children)
            procs.stop([receiver.child])
            await asyncio.to_thread(pg.drop_database, server, name)
    return (enqueued - before) / events, (delivered - enqueued) / events


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="courier-bench-wal-"))
    with pg.server() as server:
        runs = [
            await _one_run(server, args.events, args.workers, log_dir) for _ in range(args.runs)
        ]
    enqueue = statistics.median(r[0] for r in runs)
    deliver = statistics.median(r[1] for r in runs)
    print(f"events per run: {args.events}, runs: {args.runs} (median)")
    print(f"WAL per event enqueued (event + delivery + lifecycle row): {enqueue:,.0f} bytes")
    print(f"WAL per delivery delivered (claim, attempt, completion): {deliver:,.0f} bytes")
    print(f"WAL per delivered event, end to end: {enqueue + deliver:,.0f} bytes")


if __name__ == "__main__":
    asyncio.run(main())
