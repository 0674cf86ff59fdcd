"""A worker whose loop dies stops and says so, instead of delivering half-blind."""

from __future__ import annotations

import asyncio

import pytest

from courier.enqueue import enqueue_event
from courier.worker.worker import LoopDied
from tests.support.engine import Engine, make_worker, wait_terminal


@pytest.mark.parametrize("loop", ["courier-listen", "courier-heartbeat", "completer"])
async def test_a_dead_loop_stops_the_worker_with_an_error(engine: Engine, loop: str) -> None:
    engine.make_destination(engine.receiver.url("/ok"))
    worker = make_worker(engine.db_url, engine.secret_key)
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    enqueue_event(engine.conn, engine.tenant, "order.created", {"n": 1})
    await wait_terminal(engine.db_url, 1)  # running and delivering
    (task,) = [t for t in worker._loops if t.get_name() == loop]
    task.cancel()
    with pytest.raises(LoopDied, match=loop):
        await asyncio.wait_for(run, timeout=30)
    assert not stop.is_set()  # nobody asked it to stop
    assert worker.dead_loops() == [loop]  # liveness keeps naming it while the process exits


async def test_a_requested_stop_is_not_a_death(engine: Engine) -> None:
    worker = make_worker(engine.db_url, engine.secret_key)
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.wait_for(run, timeout=30)  # returns, raises nothing
