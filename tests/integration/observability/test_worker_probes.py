"""A worker's /healthz (its loops alive) and /readyz (database reachable) on its metrics
port, and the families each process part exports."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from courier.metrics import CourierMetrics
from courier.worker.metrics_server import serving_metrics
from courier.worker.worker import LoopDied
from tests.conftest import TEST_SECRET_KEY
from tests.support.engine import make_worker, run_workers

TOKEN = "probe-test-token"


async def _get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


async def test_healthz_fails_when_a_worker_loop_dies_and_readyz_follows_the_database(
    db_url: str,
) -> None:
    worker = make_worker(db_url, TEST_SECRET_KEY)
    with pytest.raises(LoopDied, match="courier-heartbeat"):  # and the worker stops for it
        async with (
            serving_metrics(
                worker.metrics,
                database_url=db_url,
                port=0,
                token=TOKEN,
                host="127.0.0.1",
                dead_loops=worker.dead_loops,
            ) as port,
            run_workers([worker]),
        ):
            assert port is not None
            for _ in range(100):  # until run() has started its loops
                if worker.dead_loops() is not None:
                    break
                await asyncio.sleep(0.05)
            healthy = await _get(port, "/healthz")
            assert (healthy.status_code, healthy.json()) == (200, {"status": "ok"})
            ready = await _get(port, "/readyz")
            assert (ready.status_code, ready.json()) == (200, {"status": "ready"})

            (heartbeat,) = [t for t in worker._loops if t.get_name() == "courier-heartbeat"]
            heartbeat.cancel()  # a side task that dies while the worker runs
            await asyncio.sleep(0.05)
            dead = await _get(port, "/healthz")
            assert dead.status_code == 503
            assert dead.json()["detail"] == "worker loop(s) ended: courier-heartbeat"
            assert (await _get(port, "/metrics")).status_code == 401  # the token still guards it


async def test_readyz_is_503_when_the_database_cannot_be_reached() -> None:
    async with serving_metrics(
        CourierMetrics(api=False),
        database_url="postgresql://postgres@127.0.0.1:1/none",
        port=0,
        token=None,
        host="127.0.0.1",
        dead_loops=lambda: [],
    ) as port:
        assert port is not None
        response = await _get(port, "/readyz")
        assert response.status_code == 503
        assert response.json()["detail"] == "the database cannot be reached"
        assert (await _get(port, "/healthz")).status_code == 200
