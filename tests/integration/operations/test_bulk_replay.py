"""Bulk replay of dead letters: `POST /v1/dead-letters/replay` and
`courier.replay.replay_dead_letters`."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from courier import replay
from tests.integration.api.conftest import Tenant, create_destination, send_event
from tests.integration.operations.conftest import backdate, days, finish, now
from tests.support.database import direct


async def _dead(
    client: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    tenant: Tenant,
    n: int,
    state: str = "dead_lettered",
) -> tuple[str, list[str]]:
    """A destination of its own event type, and `n` of its deliveries in `state`."""
    event_type = f"t{uuid.uuid4().hex[:8]}.happened"
    dest = await create_destination(client, tenant, event_types=[event_type])
    ids = []
    for _ in range(n):
        (d,) = (await send_event(client, tenant, event_type))["deliveries"]
        finish(conn, tenant.id, uuid.UUID(d["id"]), state)
        ids.append(d["id"])
    return dest["id"], ids


def _replays(conn: psycopg.Connection[Any]) -> dict[str, str]:
    rows = conn.execute(
        "SELECT replay_of::text, id::text FROM deliveries WHERE replay_of IS NOT NULL"
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


async def test_a_dry_run_counts_and_lists_and_changes_nothing(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    _, ids = await _dead(client, conn, tenant_a, 3)
    response = await client.post(
        "/v1/dead-letters/replay", json={"dry_run": True}, headers=tenant_a.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {"count": 3, "delivery_ids": sorted(ids), "next_cursor": None, "dry_run": True}
    assert _replays(conn) == {}
    audits = conn.execute("SELECT count(*) FROM audit_records WHERE action LIKE '%%replay%%'")
    assert audits.fetchone() == (0,)


async def test_a_real_run_replays_each_once_and_audits_the_call_once(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    _, ids = await _dead(client, conn, tenant_a, 3)
    first = await client.post("/v1/dead-letters/replay", json={}, headers=tenant_a.headers)
    body = first.json()
    assert body["count"] == 3
    replays = _replays(conn)
    assert set(replays) == set(ids)
    assert sorted(body["delivery_ids"]) == sorted(replays.values())
    # the same filter again: nothing left to replay
    again = await client.post("/v1/dead-letters/replay", json={}, headers=tenant_a.headers)
    assert again.json()["count"] == 0
    assert len(_replays(conn)) == 3
    with conn.cursor(row_factory=dict_row) as cur:
        audits = cur.execute(
            "SELECT * FROM audit_records WHERE action = 'deliveries.bulk_replayed'"
        ).fetchall()
        events = cur.execute(
            "SELECT count(*) AS n FROM lifecycle_events WHERE type = 'delivery.replayed'"
        ).fetchone()
    assert len(audits) == 1
    assert audits[0]["data"]["count"] == 3
    assert audits[0]["data"]["filter"]["states"] == ["dead_lettered"]
    assert events is not None and events["n"] == 3


async def test_the_filter_selects_by_destination_state_and_time(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    dest_id, dead = await _dead(client, conn, tenant_a, 2)
    _, other_dest = await _dead(client, conn, tenant_a, 1)
    _, failed_ids = await _dead(client, conn, tenant_a, 2, "failed")
    pending = await create_destination(client, tenant_a, event_types=["x.y"])
    (f,) = (await send_event(client, tenant_a, "x.y"))["deliveries"]
    assert f["destination_id"] == pending["id"]
    backdate(conn, tenant_a.id, uuid.UUID(dead[0]), now(conn) - days(10))

    by_dest = await client.post(
        "/v1/dead-letters/replay",
        json={"destination_id": dest_id, "dry_run": True},
        headers=tenant_a.headers,
    )
    assert sorted(by_dest.json()["delivery_ids"]) == sorted(dead)
    recent = await client.post(
        "/v1/dead-letters/replay",
        json={"since": (now(conn) - days(1)).isoformat(), "dry_run": True},
        headers=tenant_a.headers,
    )
    assert sorted(recent.json()["delivery_ids"]) == sorted([dead[1], *other_dest])
    old = await client.post(
        "/v1/dead-letters/replay",
        json={"until": (now(conn) - days(1)).isoformat(), "dry_run": True},
        headers=tenant_a.headers,
    )
    assert old.json()["delivery_ids"] == [dead[0]]
    both = await client.post(
        "/v1/dead-letters/replay",
        json={"states": ["failed", "dead_lettered"], "dry_run": True},
        headers=tenant_a.headers,
    )
    assert both.json()["count"] == 3 + len(failed_ids)
    assert f["id"] not in both.json()["delivery_ids"]  # still pending


async def test_a_bounded_run_returns_a_cursor_to_continue(
    conn: psycopg.Connection[Any], client: httpx.AsyncClient, db_url: str, tenant_a: Tenant
) -> None:
    _, ids = await _dead(client, conn, tenant_a, 5)
    async with await psycopg.AsyncConnection.connect(direct(db_url), autocommit=True) as aconn:
        seen: list[uuid.UUID] = []
        cursor = None
        pages = 0
        while True:
            page = await replay.replay_dead_letters(
                aconn, tenant_a.id, actor="test", limit=2, cursor=cursor, dry_run=True
            )
            seen += page.delivery_ids
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert [str(i) for i in seen] == sorted(ids)
        assert pages == 3
        first = await replay.replay_dead_letters(aconn, tenant_a.id, actor="test", limit=2)
        assert first.count == 2 and first.next_cursor is not None
        rest = await replay.replay_dead_letters(
            aconn, tenant_a.id, actor="test", cursor=first.next_cursor
        )
        assert rest.count == 3 and rest.next_cursor is None
        with pytest.raises(replay.InvalidCursor):
            await replay.replay_dead_letters(aconn, tenant_a.id, actor="test", cursor="nope")
        with pytest.raises(ValueError):
            await replay.replay_dead_letters(aconn, tenant_a.id, actor="t", states=["pending"])
    assert set(_replays(conn)) == set(ids)


async def test_bad_requests_are_422_and_another_tenant_sees_nothing(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant, tenant_b: Tenant
) -> None:
    dest_id, _ = await _dead(client, conn, tenant_a, 2)
    for body in ({"states": ["pending"]}, {"cursor": "not-ours"}, {"since": "yesterday"}):
        response = await client.post("/v1/dead-letters/replay", json=body, headers=tenant_a.headers)
        assert response.status_code == 422, body
    theirs = await client.post(
        "/v1/dead-letters/replay", json={"destination_id": dest_id}, headers=tenant_b.headers
    )
    assert theirs.json()["count"] == 0
    everything = await client.post("/v1/dead-letters/replay", json={}, headers=tenant_b.headers)
    assert everything.json()["count"] == 0
    assert _replays(conn) == {}
