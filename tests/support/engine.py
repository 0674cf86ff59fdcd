"""Helpers to run workers in tests (in-process tasks or real `courier worker` processes)
and to read delivery state back from the database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from courier.adapters.router import KindRouter
from courier.adapters.webhook import WebhookAdapter
from courier.crypto import SecretBox
from courier.worker.worker import Worker, WorkerConfig
from tests.support.database import direct
from tests.support.receiver import Receiver

TERMINAL = ("delivered", "failed", "dead_lettered")

DestinationFactory = Callable[..., tuple[dict[str, Any], str]]


@dataclass(frozen=True)
class Engine:
    """What a delivery test works with: a fresh database (and a connection to it), the
    secret key workers use, a tenant, a loopback receiver and a destination factory."""

    conn: psycopg.Connection[Any]
    db_url: str
    secret_key: str
    tenant: uuid.UUID
    receiver: Receiver
    make_destination: DestinationFactory


def make_worker(
    db_url: str,
    secret_key: str,
    *,
    worker_id: str | None = None,
    tenant_ids: Sequence[uuid.UUID] | None = None,
    **config: Any,
) -> Worker:
    config.setdefault("poll_interval_s", 0.1)
    config.setdefault("lease_seconds", 5.0)
    config.setdefault("shutdown_grace_s", 5.0)
    config.setdefault("direct_url", direct(db_url))
    cfg = WorkerConfig(
        database_url=db_url,
        worker_id=worker_id or f"test-{uuid.uuid4().hex[:8]}",
        tenant_ids=tenant_ids,
        **config,
    )
    adapter = KindRouter(WebhookAdapter(allow_private=True), allow_private=True)
    return Worker(cfg, adapter, SecretBox(secret_key))


@asynccontextmanager
async def run_workers(workers: Sequence[Worker]) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)


def delivery_states(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall()
    return {str(s): int(n) for s, n in rows}


async def wait_terminal(db_url: str, expected: int, timeout: float = 60.0) -> None:
    """Wait until `expected` deliveries are terminal (polls the database)."""
    deadline = time.monotonic() + timeout
    async with await psycopg.AsyncConnection.connect(direct(db_url), autocommit=True) as conn:
        while True:
            cur = await conn.execute(
                "SELECT count(*) FROM deliveries WHERE state = ANY(%s)", (list(TERMINAL),)
            )
            row = await cur.fetchone()
            done = int(row[0]) if row else 0
            if done >= expected:
                return
            if time.monotonic() > deadline:
                cur = await conn.execute("SELECT state, count(*) FROM deliveries GROUP BY 1")
                raise AssertionError(
                    f"{done}/{expected} deliveries terminal; states: {await cur.fetchall()}"
                )
            await asyncio.sleep(0.05)


def delivery(conn: psycopg.Connection[Any], delivery_id: uuid.UUID) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM deliveries WHERE id = %s", (delivery_id,)).fetchone()
    assert row is not None
    return row


def attempts(conn: psycopg.Connection[Any], delivery_id: uuid.UUID) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM delivery_attempts WHERE delivery_id = %s ORDER BY attempt_number",
            (delivery_id,),
        ).fetchall()


def worker_process(
    db_url: str, secret_key: str, *, capture_stderr: bool = False, **env: str
) -> subprocess.Popen[bytes]:
    """Start a real `courier worker` process against db_url.

    Its log goes to /dev/null unless `capture_stderr`: an unread pipe fills up with the
    worker's per-attempt log lines and would block it.
    """
    full_env = {
        **os.environ,
        "COURIER_DATABASE_URL": db_url,
        "COURIER_SECRET_KEY": secret_key,
        "COURIER_WORKER_TENANTS": "*",
        "COURIER_WORKER_POLL_INTERVAL": "0.1",
        "COURIER_WORKER_LEASE_SECONDS": "5",
        "COURIER_ALLOW_PRIVATE_DESTINATIONS": "true",
        "COURIER_LOG_FORMAT": "json",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "courier", "worker"],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if capture_stderr else subprocess.DEVNULL,
    )


def set_destination_enabled(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, destination_id: uuid.UUID, enabled: bool
) -> None:
    """Switch a destination as an operator's PATCH would (the statement the tests need;
    the product does it through the API)."""
    conn.execute(
        "UPDATE destinations SET enabled = %(enabled)s, updated_at = now(),"
        " disabled_at = CASE WHEN %(enabled)s THEN NULL ELSE coalesce(disabled_at, now()) END,"
        " enabled_at = CASE WHEN %(enabled)s AND NOT enabled THEN now() ELSE enabled_at END"
        " WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND deleted_at IS NULL",
        {"tenant_id": tenant_id, "id": destination_id, "enabled": enabled},
    )


def soft_delete_destination(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, destination_id: uuid.UUID
) -> None:
    """Delete a destination as `DELETE /v1/destinations/{id}` does: the row stays, marked."""
    conn.execute(
        "UPDATE destinations SET deleted_at = now(), enabled = false, updated_at = now()"
        " WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND deleted_at IS NULL",
        {"tenant_id": tenant_id, "id": destination_id},
    )
