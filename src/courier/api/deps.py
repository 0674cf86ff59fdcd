"""Request dependencies: a pooled connection, the settings, the secret box.

ConnDep      an autocommit connection from the app's pool, returned after the request
SettingsDep  the Settings create_app was built with
BoxDep       the SecretBox of COURIER_SECRET_KEY (503 when the key is not configured)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from courier.api.problems import ProblemError
from courier.crypto import SecretBox
from courier.settings import Settings

POOL_TIMEOUT = 5.0  # seconds a request waits for a connection before answering 503


async def get_conn(request: Request) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    pool: AsyncConnectionPool[Any] = request.app.state.pool
    async with pool.connection(timeout=POOL_TIMEOUT) as conn:
        yield conn


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_box(request: Request) -> SecretBox:
    box: SecretBox | None = request.app.state.secret_box
    if box is None:
        raise ProblemError(
            503, "COURIER_SECRET_KEY is not configured on this server.", slug="not-configured"
        )
    return box


ConnDep = Annotated[psycopg.AsyncConnection[Any], Depends(get_conn)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
BoxDep = Annotated[SecretBox, Depends(get_box)]
