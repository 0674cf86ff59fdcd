"""Broker destinations against the real servers on this machine (RabbitMQ on 5672, NATS
with JetStream on 4222, Redis on 6379), delivered by a real worker; and a private
redis-server or RabbitMQ node for tests that kill their broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from courier.adapters.router import KindRouter
from courier.adapters.webhook import WebhookAdapter
from courier.crypto import SecretBox
from courier.worker.worker import Worker, WorkerConfig
from tests.support.broker_servers import RabbitMQNode, RedisServer, free_port, reachable
from tests.support.database import direct
from tests.support.engine import Engine

__all__ = ["RabbitMQNode", "RedisServer", "free_port"]  # what the tests import from here

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
NATS_URL = "nats://127.0.0.1:4222"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session", autouse=True)
def brokers_running() -> None:
    missing = [p for p in (5672, 4222, 6379) if not reachable(p)]
    assert not missing, f"brokers expected on 127.0.0.1 ports {missing} are not running"


def broker_worker(engine: Engine, **config: Any) -> Worker:
    """A real worker whose adapter routes by kind, loopback brokers allowed."""
    config.setdefault("poll_interval_s", 0.1)
    config.setdefault("lease_seconds", 5.0)
    config.setdefault("shutdown_grace_s", 5.0)
    config.setdefault("direct_url", direct(engine.db_url))  # LISTEN past any pooler
    cfg = WorkerConfig(
        database_url=engine.db_url,
        worker_id=f"brokers-{uuid.uuid4().hex[:8]}",
        tenant_ids=None,
        **config,
    )
    adapter = KindRouter(WebhookAdapter(allow_private=True), allow_private=True)
    return Worker(cfg, adapter, SecretBox(engine.secret_key))


def broker_destination(
    engine: Engine, kind: str, config: Mapping[str, Any], **kw: Any
) -> tuple[dict[str, Any], str]:
    return engine.make_destination("", kind=kind, config=dict(config), **kw)


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


@pytest.fixture
async def own_rabbitmq(tmp_path: Path) -> AsyncIterator[RabbitMQNode]:
    node = RabbitMQNode(tmp_path, f"courier-{uuid.uuid4().hex[:8]}")
    await node.start()
    try:
        yield node
    finally:
        await node.kill()


@pytest.fixture
def unique() -> Iterator[str]:
    yield uuid.uuid4().hex[:10]
