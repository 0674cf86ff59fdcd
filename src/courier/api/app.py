"""create_api(settings, database_url): the HTTP API as a FastAPI application.

courier.asgi adds the console to it; this module does not know the console.

Nothing is built at import time. The lifespan opens an async connection pool (without
waiting for the database: an outage answers 503, it does not stop the server), and the
routers, problem handlers and the request body cap are registered here.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import psycopg
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from courier import __version__
from courier.api import docs
from courier.api.body_limit import BodyLimitMiddleware
from courier.api.key_cache import app_key_cache
from courier.api.openapi import build_openapi, errors
from courier.api.routes import audit, deliveries, destinations, event_types, events
from courier.api.routes import observability as observability_routes
from courier.api.routes import portal as portal_routes
from courier.api.schemas import Health
from courier.background import running
from courier.crypto import SecretBox
from courier.metrics import CourierMetrics
from courier.settings import Settings
from courier.store import migrate as migrations
from courier.store.database import ping
from courier.store.pooler import direct_url, is_pooled, pooled_kwargs
from courier.web import problems
from courier.web.state import AppState

POOL_MAX_SIZE = 10  # connections per API process
READY_TIMEOUT = 2.0  # seconds /readyz waits for a connection
FRESH_S = 1.0  # a connection given back whole this recently is handed out unchecked

DESCRIPTION = """\
Durable outbound webhook delivery. Every `/v1` route takes `Authorization: Bearer
<api key>`; the key decides the tenant, and another tenant's resource answers 404
exactly as a missing one. Errors are `application/problem+json` (RFC 9457). Lists are
`{"items": [...], "next_cursor": "..." | null}`, paged with `?limit=&cursor=`.
"""


def create_api(
    settings: Settings,
    database_url: str,
    metrics: CourierMetrics | None = None,
    mount: Callable[[FastAPI], None] | None = None,
) -> FastAPI:
    """The API; `metrics` is a registry shared with an in-process worker (`courier up`).

    `mount` adds more to the app (courier.asgi mounts the console) after the API's routes
    and before the outermost middleware, which must see every request first.
    """
    direct = direct_url(settings, database_url)  # the lifecycle stream's LISTEN connects here

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def check(conn: psycopg.AsyncConnection[Any]) -> None:
            """An empty round trip before a pooled connection is handed out.

            A connection that died with its server (a restart, a failover to the
            standby) is then replaced instead of failing the request it was handed to.
            It seldom dies alone: the idle rest are tested at once, so the pool's next
            try (after a pause of its own) finds a live one, not the next dead one.
            A connection a request gave back whole less than FRESH_S ago is not asked:
            under load that is nearly every one, and the round trip was one of the five
            a `POST /v1/events` made.
            """
            if time.monotonic() - returned_at.get(conn, float("-inf")) < FRESH_S:
                return  # it answered a request a moment ago: a round trip would tell nothing
            try:
                await AsyncConnectionPool.check_connection(conn)
            except psycopg.Error:
                await pool.check()
                raise

        returned_at: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            database_url,
            min_size=1,
            max_size=POOL_MAX_SIZE,
            open=False,
            kwargs={"autocommit": True, **pooled_kwargs(is_pooled(database_url, direct))},
            check=check,
        )
        await pool.open(wait=False)
        state.pool = pool
        state.conn_returned_at = returned_at
        cache = app_key_cache(app)
        try:
            if cache.ttl_s > 0:
                async with running(partial(cache.run, direct), "courier-api-keys"):
                    yield
            else:
                yield
        finally:
            await pool.close()

    app = FastAPI(
        title="courier",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by courier.api.docs from the packaged Swagger UI
    )
    state = AppState(
        settings=settings,
        direct_url=direct,
        secret_box=(
            SecretBox(settings.secret_key.get_secret_value()) if settings.secret_key else None
        ),
        metrics=metrics,
    )
    app.state.courier = state
    problems.install(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_payload_bytes,
        path_limits={"/v1/events/batch": settings.max_batch_bytes},
    )
    for module in (destinations, events, deliveries, audit):
        app.include_router(module.router)
    app.include_router(portal_routes.router)  # one-time console links, branding
    app.include_router(event_types.router)
    app.include_router(observability_routes.router)  # delivery-events feed/stream, /metrics
    if mount is not None:
        mount(app)
    docs.install(app)  # /docs, with Swagger UI's assets from the installed package
    if settings.forwarded_allow_ips.strip():
        # Outermost, so every part of the app sees the client's scheme and address, under
        # any ASGI server (courier's own start uvicorn without its proxy_headers).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)

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
            async with state.open_pool().connection(timeout=READY_TIMEOUT) as conn:
                await ping(conn)
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
