"""Wake-ups: a NOTIFY on one channel, with the tenant id, when deliveries become due.

The statements that write deliveries send it (store/sql: enqueue, replays, recovery);
`listen()` is the one loop that receives it, used by each worker and by the API's
lifecycle stream hub. A second channel, `KEYS_CHANNEL`, names the tenant whose API keys
(or the tenant itself) changed: triggers send it (db/postgres/022) and each API
process's key cache listens with the same loop. A NOTIFY reaches only the session that
listens, so the connection must be a session of its own (past a transaction-mode pooler).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Final

import psycopg

from courier.store.queries import query

CHANNEL: Final = "courier_deliveries"
KEYS_CHANNEL: Final = "courier_api_keys"
# How often the loop looks up from the socket to see `stop`: a shutdown waits up to this
# long for each listener (an app has two), and a look is no round trip to the server.
NOTIFY_POLL_S = 0.1


Connect = Callable[[], Awaitable[psycopg.AsyncConnection[Any]]]


def connector(conninfo: str, application_name: str) -> Connect:
    """How a listener opens its own autocommit session, named for pg_stat_activity."""

    async def connect() -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            conninfo, autocommit=True, application_name=application_name
        )

    return connect


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds` before a reconnect, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def listen(
    connect: Connect,
    stop: Any,
    *,
    on_notify: Callable[[str], None],
    on_listening: Callable[[], None],
    on_lost: Callable[[], None] = lambda: None,
    on_error: Callable[[BaseException], Awaitable[None]],
    statement: str = "listen_deliveries",
) -> None:
    """LISTEN until `stop` (an asyncio.Event) is set, reconnecting after each failure.

    `on_listening` runs each time the LISTEN is in place (whatever was sent while nobody
    listened is lost: the caller catches up), `on_notify` with each payload, `on_lost`
    when a connection ends, and `on_error` (which should wait) before reconnecting.
    `statement` names the LISTEN block (store/sql/notify.sql) of the channel.
    """
    while not stop.is_set():
        try:
            conn = await connect()
            try:
                await conn.execute(query(statement))
                on_listening()
                while not stop.is_set():
                    async for note in conn.notifies(timeout=NOTIFY_POLL_S):
                        on_notify(note.payload)
            finally:
                on_lost()
                with contextlib.suppress(Exception):
                    await conn.close()
        except (psycopg.Error, OSError) as exc:
            if stop.is_set():
                return
            await on_error(exc)
