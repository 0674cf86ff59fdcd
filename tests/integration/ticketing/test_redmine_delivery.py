"""The redmine kind end to end: a real worker, a real Redmine. One issue per correlation
key; later events add notes; a resolving type closes it; the ticket is recorded for each
delivery; failures land in the right retry class with Redmine's reasons, redacted."""

from __future__ import annotations

from typing import Any

from courier.enqueue import enqueue_event
from tests.integration.ticketing.conftest import (
    redmine_config,
    redmine_worker,
    ticket_destination,
)
from tests.support.engine import Engine, attempts, delivery, run_workers, wait_terminal
from tests.support.redmine import RedmineServer


def _ticket(engine: Engine, delivery_id: Any) -> dict[str, Any] | None:
    row = engine.conn.execute(
        "SELECT ticket_id, ticket_url, action FROM delivery_tickets WHERE delivery_id = %s",
        (delivery_id,),
    ).fetchone()
    return None if row is None else {"id": row[0], "url": row[1], "action": row[2]}


async def test_one_issue_per_key_notes_then_closed(
    engine: Engine, redmine: RedmineServer, project: str
) -> None:
    ticket_destination(engine, redmine_config(redmine, project), max_attempts=3)
    steps = [
        ("incident.opened", {"incident_id": "INC-1", "title": "disk full", "severity": "high"}),
        ("incident.opened", {"incident_id": "INC-2", "title": "cpu hot"}),
        ("incident.updated", {"incident_id": "INC-1", "title": "disk 99%"}),
        ("incident.resolved", {"incident_id": "INC-1", "title": "disk cleaned"}),
    ]
    events = []
    worker = redmine_worker(engine)
    async with run_workers([worker]):
        # One at a time: notes are added in the order the events are delivered.
        for n, (event_type, payload) in enumerate(steps, start=1):
            events.append(enqueue_event(engine.conn, engine.tenant, event_type, payload))
            await wait_terminal(engine.db_url, n)
    issues = redmine.issues(project)
    assert sorted(redmine.key_of(i) or "" for i in issues) == ["INC-1", "INC-2"]
    first = next(i for i in issues if redmine.key_of(i) == "INC-1")
    assert first["subject"] == "[high] disk full"
    opened = events[0].event_id
    assert first["description"].replace("\r\n", "\n") == (
        f"disk full (incident.opened, event {opened})\n\ncourier event: {opened}"
    )
    full = redmine.issue(first["id"])
    assert full["status"]["name"] == "Closed"
    notes = [j["notes"].replace("\r\n", "\n") for j in full["journals"] if j.get("notes")]
    assert notes == [
        f"incident.updated: disk 99%\n\ncourier event: {events[2].event_id}",
        f"incident.resolved: disk cleaned\n\ncourier event: {events[3].event_id}",
    ]
    url = f"{redmine.url}/issues/{first['id']}"
    actions = [_ticket(engine, e.deliveries[0].id) for e in events]
    assert actions[0] == {"id": str(first["id"]), "url": url, "action": "created"}
    assert actions[2] == {"id": str(first["id"]), "url": url, "action": "noted"}
    assert actions[3] == {"id": str(first["id"]), "url": url, "action": "closed"}
    for event in events:
        d = delivery(engine.conn, event.deliveries[0].id)
        assert d["state"] == "delivered", attempts(engine.conn, d["id"])
    # Each attempt records Redmine's last answer: 201 for a create, 204 for an update.
    statuses = [attempts(engine.conn, e.deliveries[0].id)[0]["http_status"] for e in events]
    assert statuses == [201, 201, 204, 204]


async def test_concurrent_events_of_one_key_open_one_issue(
    engine: Engine, redmine: RedmineServer, project: str
) -> None:
    # Generous: an update that times out may still land after its retry has looked
    # (test_redmine_crashes covers that case); this test is about one issue per key.
    config = redmine_config(redmine, project)
    ticket_destination(engine, config, max_attempts=10, timeout_ms=30_000)
    total = 12
    for n in range(total):
        payload = {"incident_id": f"K-{n % 3}", "title": f"update {n}"}
        enqueue_event(engine.conn, engine.tenant, "incident.updated", payload)
    async with run_workers([redmine_worker(engine, concurrency=8), redmine_worker(engine)]):
        await wait_terminal(engine.db_url, total, timeout=120)
    keys = sorted(redmine.key_of(i) or "" for i in redmine.issues(project))
    assert keys == ["K-0", "K-1", "K-2"]
    states = engine.conn.execute("SELECT state, count(*) FROM deliveries GROUP BY 1").fetchall()
    assert states == [("delivered", total)]
    for issue in redmine.issues(project):
        notes = [j for j in redmine.issue(issue["id"])["journals"] if j.get("notes")]
        assert len(notes) == total // 3 - 1  # every event but the one that opened it


async def test_a_resolving_first_event_opens_the_issue_closed(
    engine: Engine, redmine: RedmineServer, project: str
) -> None:
    ticket_destination(engine, redmine_config(redmine, project))
    payload = {"incident_id": "INC-5", "title": "blip, already over"}
    event = enqueue_event(engine.conn, engine.tenant, "incident.resolved", payload)
    async with run_workers([redmine_worker(engine)]):
        await wait_terminal(engine.db_url, 1)
    (issue,) = redmine.issues(project)
    full = redmine.issue(issue["id"])
    assert full["status"]["name"] == "Closed"
    assert [j for j in full["journals"] if j.get("notes")] == []  # its description says it
    assert _ticket(engine, event.deliveries[0].id) == {
        "id": str(issue["id"]),
        "url": f"{redmine.url}/issues/{issue['id']}",
        "action": "closed",
    }
    closed = engine.conn.execute("SELECT closed_at IS NOT NULL FROM ticket_links").fetchone()
    assert closed == (True,)
