"""Ticketing requests leave through the egress proxy as webhooks do: a real Redmine
behind a real tinyproxy; with the proxy gone, the attempt is a retryable failure that
names the proxy and Redmine sees nothing."""

from __future__ import annotations

from pathlib import Path

from yarl import URL

from courier.enqueue import enqueue_event
from tests.integration.ticketing.conftest import redmine_config, redmine_worker, ticket_destination
from tests.support.engine import Engine, attempts, run_workers, wait_terminal
from tests.support.ports import closed_port
from tests.support.redmine import RedmineServer
from tests.support.tinyproxy import tinyproxy


async def test_a_ticket_is_opened_through_the_egress_proxy(
    engine: Engine, redmine: RedmineServer, project: str, tmp_path: Path
) -> None:
    ticket_destination(engine, redmine_config(redmine, project), max_attempts=3)
    event = {"incident_id": "INC-P", "title": "via proxy", "severity": "high"}
    result = enqueue_event(engine.conn, engine.tenant, "incident.opened", event)
    with tinyproxy(tmp_path) as proxy:
        async with run_workers([redmine_worker(engine, egress_proxy=proxy.url)]):
            await wait_terminal(engine.db_url, 1)
        tunnels = proxy.connects()
    (attempt,) = attempts(engine.conn, result.deliveries[0].id)
    assert attempt["outcome"] == "succeeded", attempt["error_summary"]
    assert [redmine.key_of(i) for i in redmine.issues(project)] == ["INC-P"]
    # The search before the create and the create itself went through tunnels to the
    # vetted address, and nowhere else.
    assert tunnels and set(tunnels) == {f"127.0.0.1:{URL(redmine.url).port}"}


async def test_a_proxy_that_is_down_is_named_and_redmine_sees_nothing(
    engine: Engine, redmine: RedmineServer, project: str
) -> None:
    ticket_destination(engine, redmine_config(redmine, project), max_attempts=1)
    result = enqueue_event(engine.conn, engine.tenant, "incident.opened", {"incident_id": "X"})
    closed = closed_port()
    worker = redmine_worker(engine, egress_proxy=f"http://127.0.0.1:{closed}")
    async with run_workers([worker]):
        await wait_terminal(engine.db_url, 1)
    (attempt,) = attempts(engine.conn, result.deliveries[0].id)
    assert attempt["outcome"] == "retryable_failure"
    assert attempt["error_summary"].startswith(f"egress proxy 127.0.0.1:{closed}: cannot connect")
    assert str(URL(redmine.url).port) not in attempt["error_summary"]
    assert redmine.issues(project) == []
