"""Shared fixtures: real PostgreSQL (a migrated template cloned per test), tenants,
destinations, a loopback receiver and in-process workers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings

from courier.crypto import SecretBox, generate_key
from courier.destinations import create_destination
from courier.tenancy import create_tenant
from tests.support.asyncapi import check_database_events
from tests.support.database import (
    create_database,
    direct,
    direct_server_url,
    drop_database,
    make_template,
    server_url,
    with_dbname,
)
from tests.support.engine import DestinationFactory, Engine
from tests.support.receiver import Receiver

TEST_SECRET_KEY = generate_key()

# Hypothesis's per-example deadline is a wall-clock assertion; on a loaded machine it
# fails tests for being slow, not wrong.
hypothesis_settings.register_profile("courier", deadline=None)
hypothesis_settings.load_profile("courier")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[tuple[str, Any]]:
    with server_url() as (url, embedded):
        yield url, embedded


@pytest.fixture(scope="session")
def pg_direct(pg_server: tuple[str, Any]) -> str:
    """The server past any pooler: databases are created and dropped here."""
    return direct_server_url(pg_server[0])


@pytest.fixture(scope="session")
def template_db(pg_direct: str) -> Iterator[str]:
    name = make_template(pg_direct)
    yield name
    drop_database(pg_direct, name)


@pytest.fixture
def db_url(
    pg_server: tuple[str, Any],
    pg_direct: str,
    template_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """A fresh database; its URL is the pooler's when the run goes through one."""
    url, _ = pg_server
    name = f"courier_t_{uuid.uuid4().hex[:12]}"
    direct_url = create_database(pg_direct, name, template=template_db)
    if pg_direct != url:
        # What courier is given through the pooler: the direct URL of this database.
        monkeypatch.setenv("COURIER_DATABASE_DIRECT_URL", direct_url)
    yield with_dbname(url, name)
    try:
        check_database_events(direct_url)  # every emitted event matches docs/asyncapi.yaml
    finally:
        drop_database(pg_direct, name)


@pytest.fixture
def direct_db_url(db_url: str) -> str:
    """The test database past any pooler."""
    return direct(db_url)


@pytest.fixture
def conn(direct_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """The test's own connection (past any pooler: it may prepare statements)."""
    with psycopg.connect(direct_db_url, autocommit=True) as c:
        yield c


@pytest.fixture(scope="session")
def secret_key() -> str:
    return TEST_SECRET_KEY


@pytest.fixture
def secret_box(secret_key: str) -> SecretBox:
    return SecretBox(secret_key)


@pytest.fixture
def tenant(conn: psycopg.Connection[Any]) -> uuid.UUID:
    tenant_id, _ = create_tenant(conn, f"tenant-{uuid.uuid4().hex[:8]}")
    return tenant_id


@pytest.fixture
def make_destination(
    conn: psycopg.Connection[Any], secret_box: SecretBox, tenant: uuid.UUID
) -> DestinationFactory:
    """Create a destination with short, test-friendly retry settings unless overridden."""

    def make(url: str, tenant_id: uuid.UUID | None = None, **kw: Any) -> tuple[dict[str, Any], str]:
        kw.setdefault("name", f"dest-{uuid.uuid4().hex[:6]}")
        kw.setdefault("backoff_initial_ms", 100)
        kw.setdefault("backoff_max_ms", 400)
        kw.setdefault("timeout_ms", 2000)
        return create_destination(conn, secret_box, tenant_id or tenant, url=url, **kw)

    return make


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as rx:
        yield rx


@pytest.fixture
def engine(
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    tenant: uuid.UUID,
    receiver: Receiver,
    make_destination: DestinationFactory,
) -> Engine:
    """The six fixtures most delivery tests take, in one."""
    return Engine(conn, db_url, secret_key, tenant, receiver, make_destination)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def running(coro_factory: Callable[[asyncio.Event], Any]) -> AsyncIterator[asyncio.Event]:
    """Run `coro_factory(stop)` as a task; on exit set stop and wait for it to end."""
    stop = asyncio.Event()
    task = asyncio.create_task(coro_factory(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)
