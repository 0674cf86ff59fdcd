"""Ingest throughput: batches against one event at a time, from Python and over HTTP.

    python -m bench.ingest [--events 3000] [--rounds 3]

Four figures, events per second, median of `--rounds`:
  * `enqueue_event` called in a loop inside one transaction;
  * `enqueue_events` with 1,000-event batches inside one transaction;
  * `POST /v1/events`, one event per request, 16 concurrent clients;
  * `POST /v1/events/batch`, 1,000 events per request, 2 concurrent clients;
each against a real `courier serve` on 127.0.0.1 and a fresh database with one
destination that matches every event (no worker runs, so nothing is sent). Every
count is bounded; the PostgreSQL server is COURIER_DATABASE_URL's or an embedded one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from bench import pg, procs
from bench.payloads import EVENT_TYPE, payload
from courier.crypto import SecretBox, generate_key
from courier.destinations import create_destination
from courier.enqueue import NewEvent, enqueue_event, enqueue_events
from courier.store.migrate import migrate
from courier.tenancy import create_tenant

BATCH = 1_000  # events per enqueue_events call and per POST /v1/events/batch
SINGLE_CLIENTS = 16  # concurrent POST /v1/events clients
BATCH_CLIENTS = 2  # concurrent POST /v1/events/batch clients
RECEIVER = "http://127.0.0.1:9/hook"  # never called: no worker runs


def _loop(url: str, tenant: uuid.UUID, events: int, tag: str) -> float:
    with psycopg.connect(url) as conn:
        with conn.transaction():  # warm the connection's prepared statement, off the clock
            for n in range(10):
                enqueue_event(conn, tenant, EVENT_TYPE, payload(f"{tag}-w{n}", n))
        started = time.perf_counter()
        with conn.transaction():
            for n in range(events):
                enqueue_event(conn, tenant, EVENT_TYPE, payload(f"{tag}-{n}", n))
        return events / (time.perf_counter() - started)


def _batches(url: str, tenant: uuid.UUID, events: int, tag: str) -> float:
    items = [NewEvent(EVENT_TYPE, payload(f"{tag}-{n}", n)) for n in range(events)]
    with psycopg.connect(url) as conn:
        with conn.transaction():
            enqueue_events(conn, tenant, [NewEvent(EVENT_TYPE, {"warm": n}) for n in range(100)])
        started = time.perf_counter()
        with conn.transaction():
            for at in range(0, events, BATCH):
                enqueue_events(conn, tenant, items[at : at + BATCH])
        return events / (time.perf_counter() - started)


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    bodies: list[dict[str, Any]],
    clients: int,
    expected: Callable[[Any], bool],
) -> float:
    queue = list(reversed(bodies))

    async def lane() -> None:
        while queue:
            body = queue.pop()
            async with session.post(url, json=body) as resp:
                answer = await resp.json()
                if not expected((resp.status, answer)):
                    raise RuntimeError(f"{url} answered {resp.status}: {str(answer)[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(clients)))
    return time.perf_counter() - started


def _single_ok(answer: Any) -> bool:
    return bool(answer[0] == 202)


def _batch_ok(answer: Any) -> bool:
    status, body = answer
    return status == 200 and all(r["status"] == 202 for r in body["results"])


async def _http(base: str, key: str, events: int, tag: str) -> tuple[float, float]:
    headers = {"authorization": f"Bearer {key}"}
    singles = [{"type": EVENT_TYPE, "payload": payload(f"{tag}-s{n}", n)} for n in range(events)]
    items = [{"type": EVENT_TYPE, "payload": payload(f"{tag}-b{n}", n)} for n in range(events)]
    batches = [{"events": items[at : at + BATCH]} for at in range(0, events, BATCH)]
    warm_up = [{"type": EVENT_TYPE, "payload": payload(f"{tag}-w{n}", n)} for n in range(100)]
    async with aiohttp.ClientSession(headers=headers) as session:
        # Warm the server's pool connections and statements, off the clock.
        await _post(session, f"{base}/v1/events", warm_up[:32], SINGLE_CLIENTS, _single_ok)
        await _post(session, f"{base}/v1/events/batch", [{"events": warm_up}], 1, _batch_ok)
        single_s = await _post(session, f"{base}/v1/events", singles, SINGLE_CLIENTS, _single_ok)
        batch_s = await _post(session, f"{base}/v1/events/batch", batches, BATCH_CLIENTS, _batch_ok)
    return events / single_s, events / batch_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3_000, help="events per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each kind")
    args = parser.parse_args()
    if not 1_000 <= args.events <= 100_000 or not 1 <= args.rounds <= 10:
        parser.error("--events must be 1000..100000 and --rounds 1..10")
    secret_key = generate_key()
    with pg.server() as server, tempfile.TemporaryDirectory(prefix="courier-ingest-") as logs:
        name, url = pg.create_database(server, "courier_ingest")
        try:
            migrate(url)
            with psycopg.connect(url, autocommit=True) as conn:
                tenant, issued = create_tenant(conn, "bench-ingest")
                create_destination(conn, SecretBox(secret_key), tenant, name="one", url=RECEIVER)
            port = procs.free_port()
            env = {
                "COURIER_DATABASE_URL": url,
                "COURIER_SECRET_KEY": secret_key,
                "COURIER_LOG_FORMAT": "json",
                "COURIER_ALLOW_PRIVATE_DESTINATIONS": "true",
            }
            argv = procs.python_module("courier", "serve", "--port", str(port))
            child = procs.spawn("courier-serve", argv, env, Path(logs))
            base = f"http://127.0.0.1:{port}"
            figures: dict[str, list[float]] = {k: [] for k in ("loop", "batch", "post", "bpost")}
            try:
                asyncio.run(procs.wait_healthz(base, child))
                for r in range(args.rounds):
                    figures["loop"].append(_loop(url, tenant, args.events, f"l{r}"))
                    figures["batch"].append(_batches(url, tenant, args.events, f"b{r}"))
                    post, bpost = asyncio.run(_http(base, issued.key, args.events, f"h{r}"))
                    figures["post"].append(post)
                    figures["bpost"].append(bpost)
            finally:
                procs.stop([child])
        finally:
            pg.drop_database(server, name)
    m = {k: statistics.median(v) for k, v in figures.items()}
    print(f"events/s, median of {args.rounds} x {args.events} events, one destination")
    print(f"{'':38}{'one at a time':>16}{'1,000 per call':>16}{'ratio':>8}")
    rows = (
        ("Python, one transaction", m["loop"], m["batch"]),
        (
            f"HTTP ({SINGLE_CLIENTS} / {BATCH_CLIENTS} clients)",
            m["post"],
            m["bpost"],
        ),
    )
    for label, one, many in rows:
        print(f"{label:38}{one:>16,.0f}{many:>16,.0f}{many / one:>7.1f}x")


if __name__ == "__main__":
    main()
