"""create_app(settings, database_url): the FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool

from courier import __version__
from courier.settings import Settings
from courier.store import migrate as migrations


def create_app(settings: Settings, database_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            database_url, min_size=1, max_size=10, open=False, kwargs={"autocommit": True}
        )
        await pool.open(wait=False)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="courier", version=__version__, lifespan=lifespan)
    app.state.settings = settings

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: database reachable and migrations current")
    async def readyz() -> JSONResponse:
        try:
            async with app.state.pool.connection(timeout=2.0) as conn:
                await conn.execute("SELECT 1")
            pending = migrations.pending(database_url)
        except Exception:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        if pending:
            return JSONResponse({"status": "unavailable", "pending_migrations": pending}, 503)
        return JSONResponse({"status": "ready"})

    return app
