"""Ticketing destinations against a real Redmine on loopback (tests/support/redmine.py):
one server per session, one fresh project per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from courier.adapters.router import KindRouter
from courier.adapters.webhook import WebhookAdapter
from courier.crypto import SecretBox
from courier.worker.worker import Worker, WorkerConfig
from tests.support.database import direct
from tests.support.engine import Engine
from tests.support.redmine import RedmineServer, RedmineUnavailable, running_redmine


@pytest.fixture(scope="session")
def redmine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedmineServer]:
    workdir: Path = tmp_path_factory.mktemp("redmine")
    try:
        with running_redmine(workdir) as server:
            yield server
    except RedmineUnavailable as exc:
        pytest.fail(f"the test Redmine cannot run: {exc}", pytrace=False)


@pytest.fixture
def project(redmine: RedmineServer) -> str:
    """A project of its own, so that tests never see each other's issues."""
    return redmine.create_project(f"p{uuid.uuid4().hex[:12]}")


def redmine_config(redmine: RedmineServer, project: str, **overrides: Any) -> dict[str, Any]:
    return redmine.destination_config(project, **overrides)


def redmine_worker(engine: Engine, egress_proxy: str | None = None, **config: Any) -> Worker:
    """A real worker whose router keeps ticket links in the test database."""
    config.setdefault("poll_interval_s", 0.1)
    config.setdefault("lease_seconds", 5.0)
    config.setdefault("shutdown_grace_s", 5.0)
    config.setdefault("direct_url", direct(engine.db_url))
    cfg = WorkerConfig(
        database_url=engine.db_url,
        worker_id=f"tickets-{uuid.uuid4().hex[:8]}",
        tenant_ids=None,
        **config,
    )
    router = KindRouter(
        WebhookAdapter(allow_private=True),
        allow_private=True,
        database_url=engine.db_url,
        pooled=cfg.pooled,  # through PgBouncer in transaction mode: nothing prepared
        egress_proxy=egress_proxy,
    )
    return Worker(cfg, router, SecretBox(engine.secret_key))


def ticket_destination(
    engine: Engine, config: dict[str, Any], **kw: Any
) -> tuple[dict[str, Any], str]:
    # WEBrick over SQLite answers in tens of milliseconds, but in seconds on a loaded machine.
    kw.setdefault("timeout_ms", 10_000)
    return engine.make_destination("", kind="redmine", config=config, **kw)
