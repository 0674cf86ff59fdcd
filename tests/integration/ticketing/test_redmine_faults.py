"""Retry classes against the real Redmine: down or slow is retried; a Redmine the SSRF
policy forbids is permanent; a deleted project, a refused API key and a refused issue
(422) are permanent with Redmine's reasons and never the key; 429 and 503 from in front
of Redmine are retried after Retry-After; a template that cannot render, an empty
subject and a missing correlation key are permanent with a clear summary."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from courier.adapters.router import KindRouter
from courier.adapters.webhook import WebhookAdapter
from courier.crypto import SecretBox
from courier.enqueue import enqueue_event
from courier.worker.worker import Worker, WorkerConfig
from tests.integration.ticketing.conftest import (
    redmine_config,
    redmine_worker,
    ticket_destination,
)
from tests.support.database import direct
from tests.support.engine import Engine, attempts, delivery, run_workers, wait_terminal
from tests.support.redmine import RedmineServer, free_port
from tests.support.relay import Relay

OPENED = {"incident_id": "INC-3", "title": "queue stuck"}


@pytest.fixture
async def relay(redmine: RedmineServer) -> AsyncIterator[Relay]:
    async with Relay(redmine.url) as r:
        yield r


async def _deliver_one(
    engine: Engine, config: dict[str, Any], payload: dict[str, Any] = OPENED, **kw: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ticket_destination(engine, config, **kw)
    event = enqueue_event(engine.conn, engine.tenant, "incident.opened", payload)
    delivery_id = event.deliveries[0].id
    async with run_workers([redmine_worker(engine)]):
        await wait_terminal(engine.db_url, 1, timeout=90)
    return delivery(engine.conn, delivery_id), attempts(engine.conn, delivery_id)


async def test_redmine_down_is_retried(
    engine: Engine, redmine: RedmineServer, project: str
) -> None:
    config = redmine_config(redmine, project, base_url=f"http://127.0.0.1:{free_port()}")
    d, tried = await _deliver_one(engine, config, max_attempts=2)
    assert d["state"] in ("failed", "dead_lettered") and d["attempt_count"] == 2
    assert {a["outcome"] for a in tried} == {"retryable_failure"}
    assert "cannot connect to Redmine" in tried[0]["error_summary"]


async def test_redmine_slow_times_out_and_is_retried(
    engine: Engine, redmine: RedmineServer, project: str, relay: Relay
) -> None:
    held = relay.hold("GET", "/issues.json", "before_forward")
    config = redmine_config(redmine, project, base_url=relay.url)
    ticket_destination(engine, config, timeout_ms=1000, max_attempts=5)
    event = enqueue_event(engine.conn, engine.tenant, "incident.opened", OPENED)
    async with run_workers([redmine_worker(engine)]):
        await asyncio.wait_for(held.arrived.wait(), 30)
        await wait_terminal(engine.db_url, 1, timeout=60)
        held.release()
    tried = attempts(engine.conn, event.deliveries[0].id)
    assert [a["outcome"] for a in tried] == ["retryable_failure", "succeeded"]
    assert tried[0]["error_summary"] == "timeout after 1s"
    assert len(redmine.issues(project)) == 1


async def test_a_deleted_project_is_permanent_with_the_reason(
    engine: Engine, redmine: RedmineServer
) -> None:
    gone = redmine.create_project(f"g{uuid.uuid4().hex[:12]}")
    redmine.delete_project(gone)
    d, tried = await _deliver_one(engine, redmine_config(redmine, gone), max_attempts=5)
    assert d["state"] == "failed" and d["attempt_count"] == 1
    (a,) = tried
    assert (a["outcome"], a["http_status"]) == ("permanent_failure", 404)
    assert a["error_summary"].startswith("Redmine answered 404 to the search: not found")


async def test_a_refused_api_key_is_permanent_and_never_written_down(
    engine: Engine, redmine: RedmineServer, project: str
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    d, tried = await _deliver_one(engine, redmine_config(redmine, project, api_key=wrong))
    assert d["state"] == "failed"
    (a,) = tried
    assert (a["outcome"], a["http_status"]) == ("permanent_failure", 401)
    assert "the API key is refused" in a["error_summary"]
    assert wrong not in str(a) and wrong not in str(d)


async def test_an_issue_redmine_refuses_is_permanent_with_its_messages(
    engine: Engine, redmine: RedmineServer, project: str
) -> None:
    config = redmine_config(redmine, project, priority_id="987654")
    d, tried = await _deliver_one(engine, config)
    assert d["state"] == "failed"
    (a,) = tried
    assert (a["outcome"], a["http_status"]) == ("permanent_failure", 422)
    assert a["error_summary"].startswith("Redmine answered 422 to the create: Priority")
    assert redmine.issues(project) == []


async def test_a_loopback_redmine_is_refused_by_a_worker_that_forbids_it(
    engine: Engine, redmine: RedmineServer, project: str
) -> None:
    ticket_destination(engine, redmine_config(redmine, project))
    event = enqueue_event(engine.conn, engine.tenant, "incident.opened", OPENED)
    config = WorkerConfig(
        database_url=engine.db_url,
        worker_id=f"strict-{uuid.uuid4().hex[:8]}",
        tenant_ids=None,
        poll_interval_s=0.1,
        direct_url=direct(engine.db_url),
    )
    router = KindRouter(WebhookAdapter(), database_url=engine.db_url, pooled=config.pooled)
    async with run_workers([Worker(config, router, SecretBox(engine.secret_key))]):
        await wait_terminal(engine.db_url, 1)
    (a,) = attempts(engine.conn, event.deliveries[0].id)
    assert a["outcome"] == "permanent_failure"
    assert a["error_summary"] == "Redmine address not allowed: loopback"
    assert redmine.issues(project) == []


@pytest.mark.parametrize("status", [429, 503])
async def test_429_and_503_are_retried_after_retry_after(
    engine: Engine, redmine: RedmineServer, project: str, relay: Relay, status: int
) -> None:
    relay.inject("POST", "/issues.json", status, {"Retry-After": "30"})
    config = redmine_config(redmine, project, base_url=relay.url)
    ticket_destination(engine, config, backoff_initial_ms=100, backoff_max_ms=60_000)
    event = enqueue_event(engine.conn, engine.tenant, "incident.opened", OPENED)
    delivery_id = event.deliveries[0].id
    async with run_workers([redmine_worker(engine)]):
        for _ in range(600):
            if attempts(engine.conn, delivery_id) and delivery(engine.conn, delivery_id)[
                "state"
            ] == ("retry_scheduled"):
                break
            await asyncio.sleep(0.05)
    d = delivery(engine.conn, delivery_id)
    (a,) = attempts(engine.conn, delivery_id)
    assert (a["outcome"], a["http_status"]) == ("retryable_failure", status)
    assert d["state"] == "retry_scheduled"
    wait = (d["next_attempt_at"] - datetime.now(UTC)).total_seconds()
    assert 20 < wait <= 31  # Retry-After (within backoff_max_ms), not the 100 ms backoff
    assert redmine.issues(project) == []


@pytest.mark.parametrize(
    ("overrides", "payload", "summary"),
    [
        ({}, {"title": "no key"}, "the event has no correlation key"),
        ({"subject": "{{ payload.missing }}"}, OPENED, "empty subject"),
        ({"description": "{{ payload.a.b }}"}, OPENED, "the description template failed"),
    ],
)
async def test_what_cannot_render_is_permanent_with_a_clear_summary(
    engine: Engine,
    redmine: RedmineServer,
    project: str,
    overrides: dict[str, Any],
    payload: dict[str, Any],
    summary: str,
) -> None:
    config = redmine_config(redmine, project, **overrides)
    d, tried = await _deliver_one(engine, config, payload)
    assert d["state"] == "failed"
    (a,) = tried
    assert a["outcome"] == "permanent_failure" and summary in a["error_summary"]
    assert redmine.issues(project) == []
