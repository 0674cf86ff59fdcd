"""A worker killed after the receiver answered 2xx but before the result committed:
the delivery is sent once more with the same webhook-id (at-least-once), nothing is
lost, and the lost attempt is recorded as `abandoned`."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from aiohttp import web

from courier.enqueue import enqueue_event
from tests.support.engine import (
    Engine,
    attempts,
    delivery,
    make_worker,
    run_workers,
    wait_terminal,
    worker_process,
)

pytestmark = pytest.mark.delivery_retry


async def test_kill_after_2xx_before_commit_duplicates_once_and_loses_nothing(
    engine: Engine,
) -> None:
    answered = asyncio.Event()

    async def ok(request: web.Request) -> web.Response:
        answered.set()
        return web.Response(status=200)

    engine.make_destination(engine.receiver.always("/hook", ok))
    result = enqueue_event(engine.conn, engine.tenant, "order.paid", {"order": 7})
    (d,) = result.deliveries
    # A one-second group-commit window keeps the answered attempt uncommitted long
    # enough for the kill to land between "receiver said 200" and "result written".
    victim = worker_process(
        engine.db_url,
        engine.secret_key,
        COURIER_WORKER_LEASE_SECONDS="2",
        COURIER_WORKER_COMPLETION_INTERVAL_MS="1000",
    )
    try:
        await asyncio.wait_for(answered.wait(), timeout=30)
        await asyncio.sleep(0.1)
        os.kill(victim.pid, signal.SIGKILL)
        await asyncio.to_thread(victim.wait, 10)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert (
        delivery(engine.conn, d.id)["state"] == "delivering"
    )  # the 200 never reached the database

    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        await wait_terminal(engine.db_url, 1, timeout=30)

    hits = engine.receiver.hits("/hook")
    assert len(hits) == 2  # exactly one duplicate
    assert hits[0].headers["webhook-id"] == hits[1].headers["webhook-id"] == str(result.event_id)
    row = delivery(engine.conn, d.id)
    assert row["state"] == "delivered" and row["attempt_count"] == 2
    first, second = attempts(engine.conn, d.id)
    assert (first["outcome"], first["http_status"]) == ("abandoned", None)
    assert (second["outcome"], second["http_status"]) == ("succeeded", 200)
