"""A worker's own `/metrics` (COURIER_WORKER_METRICS_PORT), and its queue-gauge collector.

A small aiohttp server in the worker's event loop serves the worker's registry in the
Prometheus text format; with COURIER_METRICS_TOKEN set it asks for
`Authorization: Bearer <token>`, like the API's `/metrics`. While it serves, a
QueueStatsCollector keeps `courier_queue_depth` and `courier_oldest_due_seconds` fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from courier.metrics import CourierMetrics
from courier.queue_stats import QUEUE_STATS_INTERVAL_S, QueueStatsCollector, QueueStatsConfig

logger = logging.getLogger("courier.worker")

METRICS_HOST = "0.0.0.0"  # scraped from other machines


def metrics_app(metrics: CourierMetrics, token: str | None) -> web.Application:
    expected = f"Bearer {token}".encode() if token else None

    async def handle(request: web.Request) -> web.Response:
        if expected is not None:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return web.json_response(
                    {"title": "Unauthorized", "status": 401, "detail": "metrics token required"},
                    status=401,
                    content_type="application/problem+json",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    return app


@contextlib.asynccontextmanager
async def serving_metrics(
    metrics: CourierMetrics,
    *,
    database_url: str,
    port: int | None,
    token: str | None,
    host: str = METRICS_HOST,
    stats_interval_s: float = QUEUE_STATS_INTERVAL_S,
) -> AsyncIterator[int | None]:
    """Serve `/metrics` on `port` (0: any free port) while inside; yields the bound port.

    With `port` None nothing is served and no collector runs (nobody would read it).
    """
    if port is None:
        yield None
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound: int = sock.getsockname()[1]
    runner = web.AppRunner(metrics_app(metrics, token), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    logger.info("worker metrics on http://%s:%d/metrics", host, bound)
    collector = QueueStatsCollector(
        QueueStatsConfig(database_url=database_url, interval_s=stats_interval_s), metrics
    )
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop), name="courier-queue-stats")
    try:
        yield bound
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=10)
        await runner.cleanup()
