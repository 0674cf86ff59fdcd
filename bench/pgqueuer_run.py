"""PgQueuer as a peer: one job per delivery, POSTed through a shared aiohttp session.

Settings are PgQueuer's documented throughput levers: the asyncpg pool driver (no
per-query lock), `batch_size` jobs per dequeue, `max_concurrent_tasks` in flight per
process (at least twice the batch, as PgQueuer requires), LISTEN/NOTIFY wake-ups.
A job's completion is a durable write (the job leaves `pgqueuer` and a `successful`
row lands in `pgqueuer_log`), batched by PgQueuer's status buffer.

Worker process: python -m bench.pgqueuer_run --dsn DSN --url URL --batch 50 --concurrency 128
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import psycopg
from pgqueuer import AsyncpgDriver, AsyncpgPoolDriver, Job, QueueManager
from pgqueuer.queries import Queries

from bench.contestant import WorkerCommand, WorkerSpec
from bench.payloads import body, new_id

ENTRYPOINT = "deliver"
READY = "pgqueuer worker ready"
POOL_SIZE = 10  # asyncpg connections per worker process
DEQUEUE_TIMEOUT = timedelta(seconds=1)  # the poll fallback behind NOTIFY


def _dsn(url: str) -> str:
    """asyncpg wants a URL; psycopg's conninfo may be key=value."""
    if url.startswith(("postgresql://", "postgres://")):
        return url
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    host = params.get("host", "")
    user = params.get("user", "postgres")
    password = params.get("password")
    auth = f"{user}:{password}@" if password else f"{user}@"
    port = params.get("port", "5432")
    dbname = params.get("dbname", "postgres")
    if host.startswith("/"):
        return f"postgresql://{auth}/{dbname}?host={host}&port={port}"
    return f"postgresql://{auth}{host}:{port}/{dbname}"


@dataclass
class PgQueuerEnqueuer:
    conn: asyncpg.Connection
    queries: Queries

    async def enqueue_one(self, n: int) -> str:
        event_id = new_id()
        await self.queries.enqueue(ENTRYPOINT, body(event_id, n))
        return event_id

    async def close(self) -> None:
        await self.conn.close()


@dataclass
class PgQueuerContestant:
    name: str = "pgqueuer"
    ready_marker: str = READY

    async def install(self, url: str) -> None:
        conn = await asyncpg.connect(_dsn(url))
        try:
            await Queries(AsyncpgDriver(conn)).install()
        finally:
            await conn.close()

    async def prepare(self, url: str, receiver_url: str) -> None:
        return None

    async def enqueue_bulk(self, url: str, events: int) -> tuple[float, float]:
        conn = await asyncpg.connect(_dsn(url))
        try:
            queries = Queries(AsyncpgDriver(conn))
            payloads: list[bytes | None] = [body(new_id(), n) for n in range(events)]
            started = time.perf_counter()
            await queries.enqueue([ENTRYPOINT] * events, payloads, [0] * events)
            committed_at = time.time()
            rate = events / (time.perf_counter() - started)
        finally:
            await conn.close()
        return committed_at, rate

    def workers(self, url: str, receiver_url: str, spec: WorkerSpec) -> list[WorkerCommand]:
        argv = [
            sys.executable, "-m", "bench.pgqueuer_run", "--dsn", _dsn(url), "--url", receiver_url,
            "--batch", str(spec.batch), "--concurrency", str(spec.concurrency),
        ]  # fmt: skip
        return [WorkerCommand(argv, {}) for _ in range(spec.processes)]

    async def done_count(self, conn: psycopg.AsyncConnection[Any]) -> int:
        cur = await conn.execute("SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'")
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def open_enqueuer(self, url: str) -> PgQueuerEnqueuer:
        conn = await asyncpg.connect(_dsn(url))
        return PgQueuerEnqueuer(conn, Queries(AsyncpgDriver(conn)))


async def run_worker(dsn: str, url: str, batch: int, concurrency: int) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=POOL_SIZE)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session, pool:
        qm = QueueManager(Queries(AsyncpgPoolDriver(pool)))

        @qm.entrypoint(ENTRYPOINT)
        async def deliver(job: Job) -> None:
            data = job.payload or b"{}"
            event_id = orjson.loads(data)["id"]
            headers = {"content-type": "application/json", "webhook-id": event_id}
            async with session.post(url, data=data, headers=headers) as resp:
                await resp.read()
                resp.raise_for_status()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, qm.shutdown.set)
        print(READY, flush=True)
        await qm.run(
            batch_size=batch,
            max_concurrent_tasks=max(concurrency, 2 * batch),
            dequeue_timeout=DEQUEUE_TIMEOUT,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="a PgQueuer worker for the benchmark")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=128)
    args = parser.parse_args()
    import uvloop

    uvloop.run(run_worker(args.dsn, args.url, args.batch, args.concurrency))


if __name__ == "__main__":
    main()
