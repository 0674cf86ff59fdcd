"""The worker's own /metrics server, in process: the port it binds, the token, the one
path it serves, and that it leaves the worker's signal handlers alone."""

from __future__ import annotations

import signal

import httpx
import pytest

from courier.metrics import CourierMetrics
from courier.worker.metrics_server import serving_metrics

TOKEN = "scrape-token"


async def test_serves_the_registry_behind_the_token_on_one_path(db_url: str) -> None:
    metrics = CourierMetrics()
    metrics.dead_letters_total.inc()
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    async with serving_metrics(
        metrics, database_url=db_url, port=0, token=TOKEN, host="127.0.0.1"
    ) as port:
        assert port is not None and port > 0
        # uvicorn would install its own handlers; the worker's must stay in place
        assert {sig: signal.getsignal(sig) for sig in before} == before
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=10) as client:
            refused = await client.get(f"{base}/metrics")
            wrong = await client.get(f"{base}/metrics", headers={"authorization": "Bearer x"})
            scraped = await client.get(
                f"{base}/metrics", headers={"authorization": f"Bearer {TOKEN}"}
            )
            elsewhere = await client.get(
                f"{base}/other", headers={"authorization": f"Bearer {TOKEN}"}
            )
    assert refused.status_code == wrong.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 401
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    assert "courier_dead_letters_total 1.0" in scraped.text
    assert elsewhere.status_code == 404
    async with httpx.AsyncClient(timeout=2) as client:
        with pytest.raises(httpx.ConnectError):  # stopped with the block
            await client.get(f"{base}/metrics")


async def test_no_port_serves_nothing(db_url: str) -> None:
    metrics = CourierMetrics()
    async with serving_metrics(metrics, database_url=db_url, port=None, token=None) as port:
        assert port is None
