"""Hostile receivers through a real worker: a slow-drip answer and a 10 MB answer on
their destinations do not hold up deliveries to another destination."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
from aiohttp import web

from courier.enqueue import enqueue_event
from tests.support.database import direct
from tests.support.engine import Engine, attempts, delivery, make_worker, run_workers, wait_terminal

TEN_MB = 10 * 1024 * 1024
DRIP_TIMEOUT_MS = 6_000  # the hostile attempt's whole budget
NORMAL_EVENTS = 30


async def _drip(request: web.Request) -> web.StreamResponse:
    """200, then one byte every 100 ms for a minute: only the attempt timeout ends it."""
    response = web.StreamResponse(status=200)
    await response.prepare(request)
    try:
        for _ in range(600):
            await response.write(b"x")
            await asyncio.sleep(0.1)
    except (ConnectionError, RuntimeError):
        pass  # the worker hung up at its timeout
    return response


async def _huge(request: web.Request) -> web.StreamResponse:
    return web.Response(status=500, body=b"E" * TEN_MB)


async def _count_unfinished(db_url: str, ids: list[uuid.UUID]) -> int:
    async with await psycopg.AsyncConnection.connect(direct(db_url), autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM delivery_attempts WHERE delivery_id = ANY(%s) "
            "AND finished_at IS NULL",
            (ids,),
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _wait_delivered(db_url: str, ids: list[uuid.UUID], timeout: float) -> None:
    async with await psycopg.AsyncConnection.connect(direct(db_url), autocommit=True) as conn:
        for _ in range(int(timeout / 0.02)):
            cur = await conn.execute(
                "SELECT count(*) FROM deliveries WHERE id = ANY(%s) AND state = 'delivered'",
                (ids,),
            )
            row = await cur.fetchone()
            if row and int(row[0]) == len(ids):
                return
            await asyncio.sleep(0.02)
    raise AssertionError("the normal destination's deliveries did not all complete")


async def test_slow_drip_and_huge_answers_do_not_stall_another_destination(engine: Engine) -> None:
    engine.make_destination(
        engine.receiver.always("/drip", _drip),
        event_types=["hostile.drip"],
        timeout_ms=DRIP_TIMEOUT_MS,
        max_attempts=1,
    )
    engine.make_destination(
        engine.receiver.always("/huge", _huge), event_types=["hostile.huge"], max_attempts=1
    )
    engine.make_destination(engine.receiver.url("/normal"), event_types=["normal.event"])

    def enqueue(event_type: str) -> uuid.UUID:
        (only,) = enqueue_event(
            engine.conn, engine.tenant, event_type, {"t": event_type}
        ).deliveries
        return only.id

    hostile = [enqueue("hostile.drip") for _ in range(3)] + [enqueue("hostile.huge")]
    drips = hostile[:3]
    normal = [enqueue("normal.event") for _ in range(NORMAL_EVENTS)]

    async with run_workers([make_worker(engine.db_url, engine.secret_key, concurrency=8)]):
        await engine.receiver.wait_for(3, "/drip", timeout=30)  # the drips hold 3 of 8 slots
        # Every normal delivery completes well inside the drips' timeout ...
        await _wait_delivered(engine.db_url, normal, timeout=DRIP_TIMEOUT_MS / 1000 - 1)
        # ... while the drips are still being read.
        assert await _count_unfinished(engine.db_url, drips) == 3
        await wait_terminal(engine.db_url, len(hostile) + NORMAL_EVENTS, timeout=60)

    assert len(engine.receiver.hits("/normal")) == NORMAL_EVENTS
    for delivery_id in drips:
        (attempt,) = attempts(engine.conn, delivery_id)
        assert attempt["outcome"] == "retryable_failure"
        assert attempt["error_summary"] == f"timeout after {DRIP_TIMEOUT_MS / 1000:g}s"
        assert delivery(engine.conn, delivery_id)["state"] == "dead_lettered"
    huge = delivery(engine.conn, hostile[3])
    assert huge["state"] == "dead_lettered"
    assert huge["last_error"].startswith("HTTP 500: EEE") and len(huge["last_error"]) <= 512
