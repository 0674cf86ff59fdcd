"""Procrastinate as a peer: one job per delivery, POSTed through a shared aiohttp session.

Settings are Procrastinate's documented throughput levers for async tasks: worker
`concurrency` (jobs in flight per process), LISTEN/NOTIFY wake-ups, and a psycopg
pool large enough that fetching and finishing jobs never wait for a connection. Jobs
are kept after success (the default, `delete_jobs="never"`): the durable record.
Procrastinate fetches one job per query, so it has no batch setting.

Worker process: python -m bench.procrastinate_run --dsn DSN --url URL --concurrency 64
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import procrastinate
import psycopg

from bench.contestant import WorkerCommand, WorkerSpec
from bench.payloads import new_id, payload

TASK_NAME = "deliver"
READY = "procrastinate worker ready"
POLL_INTERVAL = 1.0  # seconds: the fallback behind NOTIFY


@dataclass
class _Target:
    session: aiohttp.ClientSession | None = None
    url: str = ""


_target = _Target()


async def deliver(event_id: str, body: dict[str, Any]) -> None:
    assert _target.session is not None
    headers = {"content-type": "application/json", "webhook-id": event_id}
    async with _target.session.post(_target.url, data=orjson.dumps(body), headers=headers) as resp:
        await resp.read()
        resp.raise_for_status()


def build_app(dsn: str, pool_size: int) -> tuple[procrastinate.App, Any]:
    connector = procrastinate.PsycopgConnector(conninfo=dsn, min_size=1, max_size=pool_size)
    app = procrastinate.App(connector=connector)
    task = app.task(name=TASK_NAME)(deliver)
    return app, task


@dataclass
class ProcrastinateEnqueuer:
    app: procrastinate.App
    task: Any

    async def enqueue_one(self, n: int) -> str:
        event_id = new_id()
        await self.task.defer_async(event_id=event_id, body=payload(event_id, n))
        return event_id

    async def close(self) -> None:
        await self.app.close_async()


@dataclass
class ProcrastinateContestant:
    name: str = "procrastinate"
    ready_marker: str = READY

    async def install(self, url: str) -> None:
        app, _ = build_app(url, 2)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()

    async def prepare(self, url: str, receiver_url: str) -> None:
        return None

    async def enqueue_bulk(self, url: str, events: int) -> tuple[float, float]:
        app, task = build_app(url, 2)
        async with app.open_async():
            kwargs = []
            for n in range(events):
                event_id = new_id()
                kwargs.append({"event_id": event_id, "body": payload(event_id, n)})
            started = time.perf_counter()
            await task.batch_defer_async(*kwargs)
            committed_at = time.time()
            rate = events / (time.perf_counter() - started)
        return committed_at, rate

    def workers(self, url: str, receiver_url: str, spec: WorkerSpec) -> list[WorkerCommand]:
        argv = [
            sys.executable, "-m", "bench.procrastinate_run", "--dsn", url, "--url", receiver_url,
            "--concurrency", str(spec.concurrency),
        ]  # fmt: skip
        return [WorkerCommand(argv, {}) for _ in range(spec.processes)]

    async def done_count(self, conn: psycopg.AsyncConnection[Any]) -> int:
        cur = await conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def open_enqueuer(self, url: str) -> ProcrastinateEnqueuer:
        app, task = build_app(url, 2)
        await app.open_async()
        return ProcrastinateEnqueuer(app, task)


async def run_worker(dsn: str, url: str, concurrency: int) -> None:
    app, _ = build_app(dsn, concurrency + 4)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session, app.open_async():
        _target.session = session
        _target.url = url
        print(READY, flush=True)
        await app.run_worker_async(
            concurrency=concurrency,
            listen_notify=True,
            fetch_job_polling_interval=POLL_INTERVAL,
            install_signal_handlers=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="a Procrastinate worker for the benchmark")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    import uvloop

    uvloop.run(run_worker(args.dsn, args.url, args.concurrency))


if __name__ == "__main__":
    main()
