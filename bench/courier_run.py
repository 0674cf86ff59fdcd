"""courier as a contestant: `courier migrate`'s schema, `enqueue_event`, `courier worker`.

Every delivery is the real thing: a signed POST, an attempt row, the state transition
and a lifecycle event, committed with the server's normal synchronous_commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from bench import procs
from bench.contestant import WorkerCommand, WorkerSpec
from bench.payloads import EVENT_TYPE, payload
from courier.crypto import SecretBox, generate_key
from courier.destinations import create_destination
from courier.enqueue import NewEvent, enqueue_event_async, enqueue_events_async
from courier.store.migrate import migrate
from courier.tenancy import create_tenant
from courier.worker.partitions import HistoryPartitions

BULK_BATCH = (
    1_000  # events per enqueue_events call in the bulk enqueue (as /v1/events/batch allows)
)

TENANT_NAME = "bench"
SHUTDOWN_GRACE = "2"  # seconds a stopping worker waits for in-flight deliveries
API_READY_TIMEOUT = 30.0  # seconds
DESTINATION_MAX_IN_FLIGHT = 10_000  # the schema's upper bound

# One statement fills the history: events, their delivered deliveries and attempts.
FILL_HISTORY = """
WITH ev AS (
    INSERT INTO events (tenant_id, type, payload, created_at)
    SELECT %(tenant_id)s, 'order.created',
           json_build_object('id', g, 'type', 'order.created',
                             'data', json_build_object('order', g)),
           now() - interval '1 day'
      FROM generate_series(1, %(rows)s) AS g
    RETURNING tenant_id, id, created_at
), dl AS (
    INSERT INTO deliveries (tenant_id, event_id, destination_id, state, attempt_count,
                            next_attempt_at, created_at, updated_at, delivered_at,
                            last_http_status, line_position)
    SELECT tenant_id, id, %(destination_id)s, 'delivered', 1, NULL, created_at, created_at,
           created_at, 200, 0
      FROM ev
    RETURNING tenant_id, id, event_id, destination_id, created_at
)
INSERT INTO delivery_attempts (tenant_id, delivery_id, event_id, destination_id, attempt_number,
                               worker_id, started_at, finished_at, duration_ms, http_status,
                               retryable, outcome)
SELECT tenant_id, id, event_id, destination_id, 1, 'history', created_at, created_at, 1, 200,
       false, 'succeeded'
  FROM dl
"""


@dataclass
class CourierEnqueuer:
    conn: psycopg.AsyncConnection[Any]
    tenant_id: uuid.UUID

    async def enqueue_one(self, n: int) -> str:
        result = await enqueue_event_async(
            self.conn, self.tenant_id, EVENT_TYPE, payload(f"lat-{n}", n)
        )
        return str(result.event_id)

    async def close(self) -> None:
        await self.conn.close()


# What the "headers + bearer auth" row's destination carries: two extra headers and a
# Bearer token, each value decrypted by the worker and sent with every request.
OPTIONS_ROW = "courier_options"
BENCH_OPTIONS: dict[str, Any] = {
    "headers": {"X-Api-Key": "bench-api-key-0123456789", "X-Tenant": "bench"},
    "auth": {"type": "bearer", "token": "bench-bearer-token-0123456789"},
}
# Every benchmark payload matches it (amounts start at 1999), so each enqueue evaluates it.
BENCH_FILTER: dict[str, Any] = {"data.amount": {"$gte": 1000}, "data.currency": "EUR"}


@dataclass
class Courier:
    name: str = "courier"
    ready_marker: str = "started: concurrency"
    secret_key: str = field(default_factory=generate_key)
    tenants: dict[str, uuid.UUID] = field(default_factory=dict)  # database url -> tenant
    destinations: dict[str, uuid.UUID] = field(default_factory=dict)
    # Destination options (headers, auth, …) of the benchmark's destination; None: none.
    options: dict[str, Any] | None = None
    filter: dict[str, Any] | None = None  # the destination's payload filter; None: none

    async def install(self, url: str) -> None:
        await asyncio.to_thread(migrate, url)
        # The days of history partitions a running installation has made ahead (the
        # migration makes the first few): else every run's worker makes the rest in its first
        # maintenance pass, taking the history tables' locks while it delivers.
        await HistoryPartitions(url).run_once()

    async def prepare(self, url: str, receiver_url: str) -> None:
        await asyncio.to_thread(self._prepare, url, receiver_url)

    def _prepare(self, url: str, receiver_url: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            tenant_id, _ = create_tenant(conn, TENANT_NAME)
            row, _ = create_destination(
                conn,
                SecretBox(self.secret_key),
                tenant_id,
                name="receiver",
                url=receiver_url,
                options=self.options,
                filter=self.filter,
            )
            _lift_in_flight_cap(conn, tenant_id, row["id"])
        self.tenants[url] = tenant_id
        self.destinations[url] = row["id"]

    async def enqueue_bulk(self, url: str, events: int) -> tuple[float, float]:
        tenant_id = self.tenants[url]
        items = [NewEvent(EVENT_TYPE, payload(f"bulk-{n}", n)) for n in range(events)]
        async with await psycopg.AsyncConnection.connect(url) as conn:
            started = time.perf_counter()
            # courier's batch API, as the peers use theirs: one statement per BULK_BATCH
            for at in range(0, events, BULK_BATCH):
                await enqueue_events_async(conn, tenant_id, items[at : at + BULK_BATCH])
            committed_at = time.time()
            await conn.commit()
            rate = events / (time.perf_counter() - started)
        return committed_at, rate

    def workers(self, url: str, receiver_url: str, spec: WorkerSpec) -> list[WorkerCommand]:
        env = {
            "COURIER_DATABASE_URL": url,
            "COURIER_SECRET_KEY": self.secret_key,
            "COURIER_WORKER_TENANTS": "*",
            "COURIER_ALLOW_PRIVATE_DESTINATIONS": "true",
            "COURIER_WORKER_CONCURRENCY": str(spec.concurrency),
            "COURIER_WORKER_BATCH_SIZE": str(spec.batch),
            "COURIER_WORKER_POLL_INTERVAL": "1.0",
            "COURIER_WORKER_SHUTDOWN_GRACE_SECONDS": SHUTDOWN_GRACE,
            "COURIER_LOG_FORMAT": "json",
        }
        argv = [sys.executable, "-m", "courier", "worker"]
        return [WorkerCommand(argv, env) for _ in range(spec.processes)]

    async def done_count(self, conn: psycopg.AsyncConnection[Any]) -> int:
        cur = await conn.execute("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def open_enqueuer(self, url: str) -> CourierEnqueuer:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        return CourierEnqueuer(conn, self.tenants[url])

    # -- courier only ---------------------------------------------------------------------

    def fill_history(self, url: str, rows: int) -> float:
        """Insert `rows` terminal (delivered) deliveries; returns the seconds it took."""
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            params = {
                "tenant_id": self.tenants[url],
                "destination_id": self.destinations[url],
                "rows": rows,
            }
            conn.execute(FILL_HISTORY, params)
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
        return time.perf_counter() - started

    async def enqueue_rate_http(
        self, url: str, log_dir: Path, events: int, concurrency: int = 16
    ) -> tuple[float | None, str]:
        """POST /v1/events through `courier serve`; (rate, note). None when there is no route."""
        with psycopg.connect(url, autocommit=True) as conn:
            _, key = create_tenant(conn, f"bench-http-{uuid.uuid4().hex[:6]}")
        port = _free_port()
        env = {
            "COURIER_DATABASE_URL": url,
            "COURIER_SECRET_KEY": self.secret_key,
            "COURIER_LOG_FORMAT": "json",
        }
        argv = procs.python_module("courier", "serve", "--port", str(port))
        child = procs.spawn("courier-serve", argv, env, log_dir)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                if not await _wait_http(session, f"{base}/healthz", child):
                    return None, f"`courier serve` did not answer: {child.tail(3)}"
                async with session.get(f"{base}/openapi.json") as resp:
                    spec = await resp.json() if resp.status == 200 else {}
                if "/v1/events" not in spec.get("paths", {}):
                    return None, "`courier serve` has no POST /v1/events route yet"
                headers = {"authorization": f"Bearer {key.key}"}
                events_url = f"{base}/v1/events"
                return await _post_events(session, events_url, headers, events, concurrency)
        finally:
            procs.stop([child])


def _lift_in_flight_cap(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, destination_id: uuid.UUID
) -> None:
    """Let the one benchmark destination take every worker slot.

    Where destinations carry a `max_in_flight` cap (fairness between destinations), its
    default would bound the whole benchmark, which has a single destination, far below
    the worker concurrency under test; the peers have no such cap.
    """
    has_cap = conn.execute(
        "SELECT 1 FROM information_schema.columns "
        "WHERE table_name = 'destinations' AND column_name = 'max_in_flight'"
    ).fetchone()
    if has_cap:
        conn.execute(
            "UPDATE destinations SET max_in_flight = %s WHERE tenant_id = %s AND id = %s",
            (DESTINATION_MAX_IN_FLIGHT, tenant_id, destination_id),
        )


async def _wait_http(session: aiohttp.ClientSession, url: str, child: procs.Child) -> bool:
    deadline = time.monotonic() + API_READY_TIMEOUT
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            return False
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url) as resp:
                if resp.status == 200:
                    return True
        await asyncio.sleep(0.1)
    return False


async def _post_events(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    events: int,
    concurrency: int,
) -> tuple[float | None, str]:
    next_n = 0
    failures: list[int] = []

    async def lane() -> None:
        nonlocal next_n
        while next_n < events:
            n = next_n
            next_n += 1
            body = {"type": EVENT_TYPE, "payload": payload(f"http-{n}", n)}
            async with session.post(url, json=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 202:
                    failures.append(resp.status)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    rate = events / (time.perf_counter() - started)
    if failures:
        return None, f"POST /v1/events failed {len(failures)} times (first: {failures[0]})"
    return rate, f"{concurrency} concurrent clients"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
