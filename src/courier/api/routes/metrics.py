"""GET /metrics: the API process's Prometheus metrics (docs/observability.md).

The queue gauges are refreshed by one QueueStatsCollector that this router's lifespan
runs in the background, so a scrape only reads memory. When COURIER_METRICS_TOKEN is
set, a scrape must send `Authorization: Bearer <token>`; otherwise it answers 401.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from courier.background import running
from courier.queue_stats import QueueStatsCollector, QueueStatsConfig
from courier.web.metrics import app_metrics
from courier.web.problems import ProblemError
from courier.web.state import state_of


def pool_conninfo(app: FastAPI) -> str:
    conninfo = state_of(app).open_pool().conninfo
    assert isinstance(conninfo, str)
    return conninfo


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the queue-gauge collector for as long as the app runs."""
    state = state_of(app)
    collector = QueueStatsCollector(
        QueueStatsConfig(database_url=pool_conninfo(app), interval_s=state.queue_stats_interval_s),
        app_metrics(app),
    )
    state.queue_stats = collector
    async with running(collector.run, "courier-queue-stats"):
        yield


router = APIRouter(tags=["health"], lifespan=lifespan)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    settings = state_of(request.app).settings
    if settings.metrics_token is not None:
        expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise ProblemError(
                401,
                "A valid metrics token is required: send `Authorization: Bearer <token>`.",
                slug="unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
    body = generate_latest(app_metrics(request.app).registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
