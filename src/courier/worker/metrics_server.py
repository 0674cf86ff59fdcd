"""A worker's own `/metrics`, `/healthz` and `/readyz` (COURIER_WORKER_METRICS_PORT).

`/healthz` (liveness) answers 503 when one of the worker's loops (listener, heartbeat,
maintenance, completer) has died while the worker runs; `/readyz` (readiness) answers
503 when the database cannot be reached. Neither asks for the metrics token: probes
send none, and the answers reveal nothing.

prometheus_client's ASGI app, served by uvicorn in the worker's event loop, exposes the
worker's registry; with COURIER_METRICS_TOKEN set it asks for
`Authorization: Bearer <token>`, like the API's `/metrics`. While it serves, a
QueueStatsCollector keeps `courier_queue_depth` and `courier_oldest_due_seconds` fresh.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable

import psycopg
from prometheus_client import make_asgi_app
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from courier.background import running
from courier.metrics import CourierMetrics
from courier.queue_stats import QUEUE_STATS_INTERVAL_S, QueueStatsCollector, QueueStatsConfig
from courier.serving import bind, serving
from courier.store.database import ping

logger = logging.getLogger("courier.worker")

METRICS_HOST = "0.0.0.0"  # scraped from other machines


def _problem(status: int, title: str, detail: str, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(
        {"title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


READY_TIMEOUT = 2  # seconds /readyz waits for the database

DeadLoops = Callable[[], "list[str] | None"]  # loops that died; None: not running (yet)


async def _database_reachable(database_url: str) -> bool:
    try:
        async with await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, connect_timeout=READY_TIMEOUT
        ) as conn:
            await ping(conn)
    except (psycopg.Error, OSError):
        return False
    return True


def _health(dead_loops: DeadLoops | None) -> Response:
    dead = dead_loops() if dead_loops is not None else []
    if dead:
        return _problem(503, "Service Unavailable", f"worker loop(s) ended: {', '.join(dead)}", {})
    return JSONResponse({"status": "ok" if dead is not None else "starting"})


async def _ready(database_url: str | None) -> Response:
    if database_url is not None and not await _database_reachable(database_url):
        return _problem(503, "Service Unavailable", "the database cannot be reached", {})
    return JSONResponse({"status": "ready"})


def metrics_app(
    metrics: CourierMetrics,
    token: str | None,
    *,
    dead_loops: DeadLoops | None = None,
    database_url: str | None = None,
) -> ASGIApp:
    """GET /metrics in the Prometheus text format, /healthz and /readyz; else a 404."""
    expected = f"Bearer {token}".encode() if token else None
    exposition = make_asgi_app(metrics.registry)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            await _health(dead_loops)(scope, receive, send)
            return
        if scope["path"] == "/readyz":
            await (await _ready(database_url))(scope, receive, send)
            return
        if scope["path"] != "/metrics":
            await _problem(404, "Not Found", "only /metrics, /healthz and /readyz are served", {})(
                scope, receive, send
            )
            return
        if expected is not None:
            given = Headers(scope=scope).get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                await _problem(
                    401, "Unauthorized", "metrics token required", {"WWW-Authenticate": "Bearer"}
                )(scope, receive, send)
                return
        await exposition(scope, receive, send)

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
    dead_loops: DeadLoops | None = None,
) -> AsyncIterator[int | None]:
    """Serve `/metrics` on `port` (0: any free port) while inside; yields the bound port.

    With `port` None nothing is served and no collector runs (nobody would read it).
    """
    if port is None:
        yield None
        return
    sock = bind(host, port)
    bound: int = sock.getsockname()[1]
    app = metrics_app(metrics, token, dead_loops=dead_loops, database_url=database_url)
    async with serving(app, sock):
        logger.info("worker metrics on http://%s:%d/metrics", host, bound)
        async with _collecting(metrics, database_url, stats_interval_s):
            yield bound


@contextlib.asynccontextmanager
async def _collecting(
    metrics: CourierMetrics, database_url: str, stats_interval_s: float
) -> AsyncIterator[None]:
    collector = QueueStatsCollector(
        QueueStatsConfig(database_url=database_url, interval_s=stats_interval_s), metrics
    )
    async with running(collector.run, "courier-queue-stats"):
        yield
