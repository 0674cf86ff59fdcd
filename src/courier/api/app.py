"""create_app(settings, database_url): the FastAPI application.

Nothing is built at import time. The lifespan opens an async connection pool (without
waiting for the database: an outage answers 503, it does not stop the server), and the
routers, problem handlers and the request body cap are registered here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool

from courier import __version__, console
from courier.api import problems
from courier.api.body_limit import BodyLimitMiddleware
from courier.api.openapi import build_openapi, errors
from courier.api.routes import audit, deliveries, destinations, events, operations
from courier.api.routes import observability as observability_routes
from courier.api.schemas import Health
from courier.crypto import SecretBox
from courier.settings import Settings
from courier.store import migrate as migrations
from courier.store.queries import query

POOL_MAX_SIZE = 10  # connections per API process
READY_TIMEOUT = 2.0  # seconds /readyz waits for a connection

DESCRIPTION = """\
Durable outbound webhook delivery. Every `/v1` route takes `Authorization: Bearer
<api key>`; the key decides the tenant, and another tenant's resource answers 404
exactly as a missing one. Errors are `application/problem+json` (RFC 9457). Lists are
`{"items": [...], "next_cursor": "..." | null}`, paged with `?limit=&cursor=`.
"""


def create_app(settings: Settings, database_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            database_url,
            min_size=1,
            max_size=POOL_MAX_SIZE,
            open=False,
            kwargs={"autocommit": True},
        )
        await pool.open(wait=False)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="courier", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.secret_box = (
        SecretBox(settings.secret_key.get_secret_value()) if settings.secret_key else None
    )
    problems.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_payload_bytes)
    for module in (destinations, events, deliveries, audit, operations):
        app.include_router(module.router)
    app.include_router(observability_routes.router)  # delivery-events feed/stream, /metrics
    console.install(app)  # /console pages and static files

    @app.get(
        "/healthz",
        summary="Liveness: the process answers",
        response_model=Health,
        tags=["health"],
    )
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        summary="Readiness: database reachable and migrations current",
        response_model=Health,
        responses=errors(auth=False),
        tags=["health"],
    )
    async def readyz() -> Health | JSONResponse:
        try:
            async with app.state.pool.connection(timeout=READY_TIMEOUT) as conn:
                await conn.execute(query("api_ping"))
            pending = await asyncio.to_thread(migrations.pending, database_url)
        except Exception:
            return problems.unavailable_response()
        if pending:
            return problems.problem_response(
                503,
                "Migrations are pending: run `courier migrate`.",
                slug="migrations-pending",
                headers={"Retry-After": str(problems.RETRY_AFTER_SECONDS)},
                extra={"pending_migrations": pending},
            )
        return Health(status="ready")

    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app
