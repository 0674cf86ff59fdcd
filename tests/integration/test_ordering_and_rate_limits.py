"""Opt-in FIFO delivery per destination (retries of the head hold the line, also across
a worker kill) and per-destination rate limits enforced across workers."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal

from aiohttp import web

from courier.enqueue import enqueue_event
from tests.support.engine import Engine, make_worker, run_workers, wait_terminal, worker_process
from tests.support.receiver import Receiver


def _first_and_last_arrivals(receiver: Receiver, path: str) -> dict[str, tuple[float, float]]:
    spans: dict[str, tuple[float, float]] = {}
    for hit in receiver.hits(path):
        event_id = hit.headers["webhook-id"]
        first, _ = spans.get(event_id, (hit.at, hit.at))
        spans[event_id] = (first, hit.at)
    return spans


async def test_fifo_destination_delivers_in_order_through_retries_and_a_kill(
    engine: Engine,
) -> None:
    n = 12
    event_ids: list[str] = []
    answers: dict[str, list[int]] = {}
    hung = asyncio.Event()

    async def scripted(request: web.Request) -> web.Response:
        event_id = request.headers["webhook-id"]
        script = answers.get(event_id, [])
        answer = script.pop(0) if script else 200
        if answer == 0:  # hang: the worker holding it is killed meanwhile
            hung.set()
            await asyncio.sleep(30)
            answer = 200
        return web.Response(status=answer)

    engine.make_destination(
        engine.receiver.always("/line", scripted),
        ordering="fifo",
        max_in_flight=16,
        timeout_ms=60_000,
    )
    for i in range(n):
        result = enqueue_event(engine.conn, engine.tenant, "ledger.entry", {"seq": i})
        event_ids.append(str(result.event_id))
    answers[event_ids[2]] = [500, 503]  # the head retries twice; the line must wait
    answers[event_ids[6]] = [0]  # hangs until its worker dies; reclaimed after the lease

    victim = worker_process(engine.db_url, engine.secret_key, COURIER_WORKER_LEASE_SECONDS="2")
    try:
        await asyncio.wait_for(hung.wait(), timeout=60)
        os.kill(victim.pid, signal.SIGKILL)
        await asyncio.to_thread(victim.wait, 10)
    finally:
        if victim.poll() is None:
            victim.kill()
    workers = [make_worker(engine.db_url, engine.secret_key, concurrency=32) for _ in range(2)]
    async with run_workers(workers):
        await wait_terminal(engine.db_url, n, timeout=60)

    spans = _first_and_last_arrivals(engine.receiver, "/line")
    assert list(spans) == event_ids  # first arrivals in enqueue order
    for before, after in itertools.pairwise(event_ids):
        # nothing of the next event went out before the last try of the one before it
        assert spans[after][0] >= spans[before][1], (before, after)
    assert (
        len([h for h in engine.receiver.hits("/line") if h.headers["webhook-id"] == event_ids[2]])
        == 3
    )
    states = engine.conn.execute("SELECT state, count(*) FROM deliveries GROUP BY 1").fetchall()
    assert states == [("delivered", n)]
    abandoned = engine.conn.execute(
        "SELECT count(*) FROM delivery_attempts WHERE outcome = 'abandoned'"
    ).fetchone()
    assert abandoned == (1,)


async def test_rate_limit_holds_across_workers(engine: Engine) -> None:
    rate = 5.0  # requests per second; the bucket holds one second's worth
    engine.make_destination(
        engine.receiver.url("/limited"), rate_limit_per_second=rate, event_types=["r"]
    )
    engine.make_destination(engine.receiver.url("/free"), event_types=["f"])
    with engine.conn.transaction():
        for i in range(20):
            enqueue_event(engine.conn, engine.tenant, "r", {"i": i})
            enqueue_event(engine.conn, engine.tenant, "f", {"i": i})
    workers = [make_worker(engine.db_url, engine.secret_key, concurrency=32) for _ in range(3)]
    async with run_workers(workers):
        await wait_terminal(engine.db_url, 40, timeout=60)
    limited = sorted(h.at for h in engine.receiver.hits("/limited"))
    assert len(limited) == 20 and len(engine.receiver.hits("/free")) == 20
    # Token bucket: in any window of one second at most burst + rate requests went out.
    for i, start in enumerate(limited):
        in_window = sum(1 for t in limited[i:] if t < start + 1.0)
        assert in_window <= 2 * rate + 1, (i, in_window)
    # ... and the unlimited destination was not held back by the limited one
    free_last = max(h.at for h in engine.receiver.hits("/free"))
    assert free_last < limited[-1]
