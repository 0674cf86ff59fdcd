"""Fairness between destinations: a slow destination's backlog holds at most its
in-flight cap, and another destination's deliveries flow past it."""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web

from courier.enqueue import enqueue_event
from tests.support.engine import Engine, make_worker, run_workers


async def test_backlog_of_a_slow_destination_does_not_delay_another(engine: Engine) -> None:
    in_flight_a = 0
    peak_a = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal in_flight_a, peak_a
        in_flight_a += 1
        peak_a = max(peak_a, in_flight_a)
        try:
            await asyncio.sleep(0.5)
        finally:
            in_flight_a -= 1
        return web.Response(status=200)

    a, _ = engine.make_destination(
        engine.receiver.always("/a", slow), event_types=["a.*"], max_in_flight=16, timeout_ms=5000
    )
    b, _ = engine.make_destination(engine.receiver.url("/b"), event_types=["b.*"])
    with engine.conn.transaction():
        for i in range(5000):
            enqueue_event(engine.conn, engine.tenant, "a.tick", {"i": i})
    b_ids = []
    with engine.conn.transaction():
        for i in range(50):  # enqueued after A's whole backlog, so due later
            b_ids += [
                d.id
                for d in enqueue_event(engine.conn, engine.tenant, "b.tick", {"i": i}).deliveries
            ]

    def delivered(destination_id: uuid.UUID) -> int:
        row = engine.conn.execute(
            "SELECT count(*) FROM deliveries WHERE destination_id = %s AND state = 'delivered'",
            (destination_id,),
        ).fetchone()
        return int(row[0]) if row else 0

    workers = [
        make_worker(engine.db_url, engine.secret_key, concurrency=64, batch_size=32)
        for _ in range(2)
    ]
    async with run_workers(workers):
        for _ in range(600):  # bounded: 60 s at most
            if delivered(b["id"]) == 50:
                break
            await asyncio.sleep(0.1)
        a_done_when_b_finished = delivered(a["id"])
    assert delivered(b["id"]) == 50
    # A drains at about 16 / 0.5 s; B did not wait for A's backlog (5,000) to go first.
    assert a_done_when_b_finished < 500, a_done_when_b_finished
    # The cap held A's share of the slots (a racing claim may add one batch share).
    assert peak_a <= 16 + 32, peak_a
    assert len(engine.receiver.hits("/b")) == 50
