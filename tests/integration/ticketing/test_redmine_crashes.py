"""Exactly one issue per correlation key whatever dies when: a real `courier worker`
process is SIGKILLed at each step of a create (before Redmine sees the request, after
Redmine answered but before the worker heard it, after the worker heard it but before the
link committed, after the link committed but before the attempt did), then another worker
finishes the delivery; replays, even with courier's links lost, open nothing new; and a
note whose answer was lost is not added twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest

from courier.enqueue import enqueue_event
from courier.replay import replay_delivery
from tests.integration.ticketing.conftest import (
    redmine_config,
    redmine_worker,
    ticket_destination,
)
from tests.support.database import direct
from tests.support.engine import (
    Engine,
    attempts,
    delivery,
    run_workers,
    wait_terminal,
    worker_process,
)
from tests.support.redmine import RedmineServer
from tests.support.relay import Relay, Step

pytestmark = pytest.mark.delivery_retry

OPENED = {"incident_id": "INC-9", "title": "payments failing", "severity": "high"}


@pytest.fixture
async def relay(redmine: RedmineServer) -> AsyncIterator[Relay]:
    async with Relay(redmine.url) as r:
        yield r


def _victim(engine: Engine) -> subprocess.Popen[bytes]:
    # A one-second group-commit window keeps a finished attempt uncommitted long enough
    # for a kill to land after the link committed and before the attempt did.
    return worker_process(
        engine.db_url,
        engine.secret_key,
        COURIER_WORKER_LEASE_SECONDS="2",
        COURIER_WORKER_COMPLETION_INTERVAL_MS="1000",
    )


async def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    await asyncio.to_thread(proc.wait, 10)


async def _until(
    check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def _crash_then_finish(
    engine: Engine, victim: subprocess.Popen[bytes], at_step: Callable[[], Awaitable[None]]
) -> None:
    try:
        await at_step()
        await _kill(victim)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)


async def _finish(engine: Engine, expected: int = 1) -> None:
    async with run_workers([redmine_worker(engine)]):
        await wait_terminal(engine.db_url, expected, timeout=60)


def _notes(redmine: RedmineServer, issue_id: int) -> list[str]:
    return [j["notes"] for j in redmine.issue(issue_id)["journals"] if j.get("notes")]


def _one_issue(redmine: RedmineServer, project: str, key: str = "INC-9") -> dict[str, Any]:
    issues = redmine.issues(project)
    assert [redmine.key_of(i) for i in issues] == [key], issues
    return issues[0]


def _setup(engine: Engine, redmine: RedmineServer, project: str, relay: Relay) -> uuid.UUID:
    config = redmine_config(redmine, project, base_url=relay.url)
    ticket_destination(engine, config, backoff_initial_ms=100, max_attempts=10)
    event = enqueue_event(engine.conn, engine.tenant, "incident.opened", OPENED)
    return event.deliveries[0].id


async def _kill_at_held_create(engine: Engine, relay: Relay, step: Step) -> None:
    """Run a worker process, kill it when its create is held at `step`, drop the create."""
    held = relay.hold("POST", "/issues.json", step)
    reached = held.arrived if step == "before_forward" else held.answered

    async def at_step() -> None:
        await asyncio.wait_for(reached.wait(), 60)

    await _crash_then_finish(engine, _victim(engine), at_step)
    held.release()


def _outcomes(engine: Engine, delivery_id: uuid.UUID) -> list[str]:
    return [a["outcome"] for a in attempts(engine.conn, delivery_id)]


async def test_killed_before_redmine_sees_the_create(
    engine: Engine, redmine: RedmineServer, project: str, relay: Relay
) -> None:
    delivery_id = _setup(engine, redmine, project, relay)
    await _kill_at_held_create(engine, relay, "before_forward")
    assert redmine.issues(project) == []  # the request never reached Redmine
    await _finish(engine)
    issue = _one_issue(redmine, project)
    assert _notes(redmine, issue["id"]) == []
    assert delivery(engine.conn, delivery_id)["state"] == "delivered"
    assert _outcomes(engine, delivery_id) == ["abandoned", "succeeded"]


async def test_killed_after_redmine_created_but_before_the_worker_heard(
    engine: Engine, redmine: RedmineServer, project: str, relay: Relay
) -> None:
    delivery_id = _setup(engine, redmine, project, relay)
    await _kill_at_held_create(engine, relay, "after_answer")
    issue = _one_issue(redmine, project)  # Redmine has it; courier has no link
    links = engine.conn.execute("SELECT count(*) FROM ticket_links").fetchone()
    assert links == (0,)
    await _finish(engine)
    assert _one_issue(redmine, project)["id"] == issue["id"]  # found by its key, not re-made
    assert relay.seen.count(("POST", "/issues.json")) == 1
    assert _notes(redmine, issue["id"]) == []  # the issue is this event's own: no note
    assert _outcomes(engine, delivery_id) == ["abandoned", "succeeded"]
    row = engine.conn.execute("SELECT ticket_id, action FROM delivery_tickets").fetchone()
    assert row == (str(issue["id"]), "created")


async def test_killed_after_the_answer_before_the_link_committed(
    engine: Engine, redmine: RedmineServer, project: str, relay: Relay
) -> None:
    delivery_id = _setup(engine, redmine, project, relay)
    # The link's INSERT waits behind this lock: the worker has Redmine's answer in hand
    # and cannot commit it.
    with psycopg.connect(direct(engine.db_url)) as blocker:
        blocker.execute("LOCK TABLE ticket_links IN SHARE MODE")
        victim = _victim(engine)

        def blocked() -> bool:
            row = engine.conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'INSERT INTO ticket_links%%'"
            ).fetchone()
            return row is not None and row[0] > 0

        async def step() -> None:
            await _until(blocked, "the worker to wait on the link's insert")
            assert len(redmine.issues(project)) == 1

        await _crash_then_finish(engine, victim, step)
        blocker.rollback()
    await _finish(engine)
    issue = _one_issue(redmine, project)
    assert relay.seen.count(("POST", "/issues.json")) == 1
    assert _notes(redmine, issue["id"]) == []
    assert _outcomes(engine, delivery_id) == ["abandoned", "succeeded"]


async def test_killed_after_the_link_committed_before_the_attempt_did(
    engine: Engine, redmine: RedmineServer, project: str, relay: Relay
) -> None:
    delivery_id = _setup(engine, redmine, project, relay)
    victim = _victim(engine)

    def linked() -> bool:
        return engine.conn.execute("SELECT count(*) FROM ticket_links").fetchone() == (1,)

    async def step() -> None:
        await _until(linked, "the link to commit")

    await _crash_then_finish(engine, victim, step)
    assert delivery(engine.conn, delivery_id)["state"] == "delivering"  # result never written
    await _finish(engine)
    issue = _one_issue(redmine, project)
    assert relay.seen.count(("POST", "/issues.json")) == 1
    assert _notes(redmine, issue["id"]) == []
    assert _outcomes(engine, delivery_id) == ["abandoned", "succeeded"]


async def test_replays_open_nothing_new_even_with_the_links_lost(
    engine: Engine, redmine: RedmineServer, project: str, relay: Relay
) -> None:
    opened = _setup(engine, redmine, project, relay)
    # The opening event first: without "ordering": "fifo" two events of one key may be
    # delivered in either order, and the issue belongs to whichever came first.
    await _finish(engine, 1)
    update = {"incident_id": "INC-9", "title": "still failing"}
    updated = enqueue_event(engine.conn, engine.tenant, "incident.updated", update)
    await _finish(engine, 2)
    issue = _one_issue(redmine, project)
    assert len(_notes(redmine, issue["id"])) == 1
    async with await psycopg.AsyncConnection.connect(
        direct(engine.db_url), autocommit=True
    ) as conn:
        await replay_delivery(conn, engine.tenant, opened, actor="test")
        await _finish(engine, 3)
        # As if courier's database were restored from before the issue existed.
        engine.conn.execute("DELETE FROM ticket_links")
        await replay_delivery(conn, engine.tenant, opened, actor="test")
        await replay_delivery(conn, engine.tenant, updated.deliveries[0].id, actor="test")
        await _finish(engine, 5)
    assert _one_issue(redmine, project)["id"] == issue["id"]
    assert relay.seen.count(("POST", "/issues.json")) == 1
    # The replayed opening event is the issue's own: no note; the replayed update adds one.
    assert len(_notes(redmine, issue["id"])) == 2
    states = engine.conn.execute("SELECT state, count(*) FROM deliveries GROUP BY 1").fetchall()
    assert states == [("delivered", 5)]


async def test_a_lost_answer_to_a_note_does_not_repeat_the_note(
    engine: Engine, redmine: RedmineServer, project: str, relay: Relay
) -> None:
    _setup(engine, redmine, project, relay)
    await _finish(engine)
    issue = _one_issue(redmine, project)
    # Redmine adds the note; its answer never reaches the worker, which retries.
    held = relay.hold("PUT", f"/issues/{issue['id']}.json", "after_answer")
    update = {"incident_id": "INC-9", "title": "still failing"}
    updated = enqueue_event(engine.conn, engine.tenant, "incident.updated", update)
    async with run_workers([redmine_worker(engine)]):
        await asyncio.wait_for(held.answered.wait(), 60)
        held.release()
        await wait_terminal(engine.db_url, 2, timeout=60)
    delivery_id = updated.deliveries[0].id
    assert _outcomes(engine, delivery_id) == ["retryable_failure", "succeeded"]
    assert len(_notes(redmine, issue["id"])) == 1
    assert relay.seen.count(("PUT", f"/issues/{issue['id']}.json")) == 1
    row = engine.conn.execute(
        "SELECT action FROM delivery_tickets WHERE delivery_id = %s", (delivery_id,)
    ).fetchone()
    assert row == ("noted",)


async def test_a_timed_out_note_that_lands_after_the_retry_is_not_kept_twice(
    engine: Engine, redmine: RedmineServer, project: str, relay: Relay
) -> None:
    config = redmine_config(redmine, project, base_url=relay.url)
    # The first attempt waits out its whole timeout; the retry's five requests must fit
    # in one as well, on a loaded machine.
    ticket_destination(engine, config, timeout_ms=8000, backoff_initial_ms=100, max_attempts=10)
    enqueue_event(engine.conn, engine.tenant, "incident.opened", OPENED)
    await _finish(engine)
    issue = _one_issue(redmine, project)
    # The first attempt's note is held past its timeout and reaches Redmine only after
    # the retry has looked for it and added its own: Redmine takes both.
    held = relay.hold("PUT", f"/issues/{issue['id']}.json", "late_forward")
    update = {"incident_id": "INC-9", "title": "still failing"}
    updated = enqueue_event(engine.conn, engine.tenant, "incident.updated", update)
    await _finish(engine, 2)
    assert held.forwarded.is_set() and held.late_status == 204  # the late note went in
    delivery_id = updated.deliveries[0].id
    tried = attempts(engine.conn, delivery_id)
    assert tried[0]["outcome"] == "retryable_failure"
    assert tried[0]["error_summary"] == "timeout after 8s"
    assert tried[-1]["outcome"] == "succeeded"
    if len(tried) == 2:  # the retry wrote the note: Redmine's answer to it, not the removal's
        assert tried[1]["http_status"] == 204
    notes = _notes(redmine, issue["id"])
    assert len(notes) == 1 and f"courier event: {updated.event_id}" in notes[0]
    assert relay.seen.count(("PUT", f"/issues/{issue['id']}.json")) == 2
