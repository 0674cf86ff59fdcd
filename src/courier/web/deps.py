"""Request dependencies that the API and the console share.

ConnDep      an autocommit connection from the app's pool, returned after the request
SettingsDep  the Settings the app was built with
BoxDep       the SecretBox of COURIER_SECRET_KEY (503 when the key is not configured)

A connection a request gives back whole is stamped in the app state's `conn_returned_at`
(when the app keeps one): the pool's check before handing it out again can then skip the round
trip for a connection that just worked (courier.api.app).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request

from courier.crypto import SecretBox
from courier.settings import Settings
from courier.web.problems import ProblemError
from courier.web.state import request_state

POOL_TIMEOUT = 5.0  # seconds a request waits for a connection before answering 503


async def get_conn(request: Request) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    state = request_state(request)
    returned_at = state.conn_returned_at
    async with state.open_pool().connection(timeout=POOL_TIMEOUT) as conn:
        yield conn
        if returned_at is not None and not conn.broken:
            returned_at[conn] = time.monotonic()


def get_settings(request: Request) -> Settings:
    return request_state(request).settings


ConnDep = Annotated[psycopg.AsyncConnection[Any], Depends(get_conn)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def secret_box_of(request: Request) -> SecretBox | None:
    """The SecretBox of COURIER_SECRET_KEY, or None when the server has no key."""
    return request_state(request).secret_box


def get_box(request: Request) -> SecretBox:
    box = secret_box_of(request)
    if box is None:
        raise ProblemError(
            503, "COURIER_SECRET_KEY is not configured on this server.", slug="not-configured"
        )
    return box


BoxDep = Annotated[SecretBox, Depends(get_box)]
