"""The lifecycle feed: commit-safe order, exactly-once following, the HTTP route."""

from __future__ import annotations

import asyncio
import base64
import random
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from courier.asgi import create_app
from courier.enqueue import enqueue_event, enqueue_event_async
from courier.settings import Settings
from courier.store.feed import START, FeedPosition, InvalidCursor, LifecycleEvent, read_feed
from tests.conftest import DestinationFactory
from tests.integration.observability.conftest import ApiTenant, asgi_serving
from tests.support.database import direct


async def _follow(
    db_url: str, tenant: uuid.UUID, after: FeedPosition = START
) -> list[LifecycleEvent]:
    """Everything visible now after `after`, page by page."""
    seen: list[LifecycleEvent] = []
    async with await psycopg.AsyncConnection.connect(direct(db_url), autocommit=True) as conn:
        while True:
            page = await read_feed(conn, tenant, after, 7)
            seen.extend(page)
            if len(page) < 7:
                return seen
            after = page[-1].position


def _all_event_ids(conn: psycopg.Connection[Any], tenant: uuid.UUID) -> set[uuid.UUID]:
    rows = conn.execute("SELECT id FROM lifecycle_events WHERE tenant_id = %s", (tenant,))
    return {r[0] for r in rows.fetchall()}


def test_cursor_round_trips_and_rejects_foreign_text() -> None:
    position = FeedPosition(2**63 + 5, 42)
    assert FeedPosition.from_cursor(position.cursor()) == position
    assert FeedPosition.from_cursor(None) == START
    for bad in ("nope", "aTo1", FeedPosition(1, 2).cursor() + "x", "f1:1.2"):
        with pytest.raises(InvalidCursor):
            FeedPosition.from_cursor(bad)


def test_a_cursor_of_the_first_format_still_names_its_position() -> None:
    """Readers keep their cursor across restarts and upgrades: the base64url form issued
    before the plain-text one reads as the same position."""
    legacy = base64.urlsafe_b64encode(b"f1:18446744073709551615.42").decode().rstrip("=")
    assert FeedPosition.from_cursor(legacy) == FeedPosition(2**64 - 1, 42)
    for bad in ("ZjE6", base64.urlsafe_b64encode(b"f2:1.2").decode(), "ZjE6eC55"):
        with pytest.raises(InvalidCursor):
            FeedPosition.from_cursor(bad)


async def test_in_flight_events_are_held_back_until_commit_and_rollbacks_never_show(
    conn: psycopg.Connection[Any],
    db_url: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    make_destination("https://example.com/hook")
    with psycopg.connect(direct(db_url)) as writer:
        enqueue_event(writer, tenant, "order.created", {"n": 1})
        assert await _follow(db_url, tenant) == []  # not committed yet
        writer.commit()
        enqueue_event(writer, tenant, "order.created", {"n": 2})
        writer.rollback()
    (only,) = await _follow(db_url, tenant)
    assert only.type == "delivery.created" and only.state == "pending"
    assert _all_event_ids(conn, tenant) == {only.id}


async def test_late_commit_with_a_lower_seq_is_not_skipped(
    db_url: str, tenant: uuid.UUID, make_destination: DestinationFactory
) -> None:
    """The case a seq-only cursor gets wrong: the transaction with the older id inserts
    later (higher seq) and commits first; the younger one (lower seq) commits after a
    follower has already moved past the higher seq."""
    make_destination("https://example.com/hook")
    with psycopg.connect(direct(db_url)) as older, psycopg.connect(direct(db_url)) as younger:
        older.execute("SELECT pg_current_xact_id()")  # takes the older transaction id
        younger.execute("SELECT pg_current_xact_id()")
        late = enqueue_event(younger, tenant, "order.created", {"late": True})  # lower seq
        early = enqueue_event(older, tenant, "order.created", {"early": True})  # higher seq
        older.commit()
        first = await _follow(db_url, tenant)
        younger.commit()
        rest = await _follow(db_url, tenant, first[-1].position if first else START)
    seqs = {e.delivery_id: e.position.seq for e in first + rest}
    late_id, early_id = late.deliveries[0].id, early.deliveries[0].id
    assert seqs[late_id] < seqs[early_id]  # the scenario really happened
    assert [e.delivery_id for e in first] == [early_id]
    assert [e.delivery_id for e in rest] == [late_id]


async def test_follower_sees_every_event_exactly_once_with_concurrent_writers(
    conn: psycopg.Connection[Any],
    db_url: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    make_destination("https://example.com/a")
    make_destination("https://example.com/b")
    rng = random.Random(5)
    writers, transactions = 8, 20
    committed_deliveries: set[uuid.UUID] = set()

    async def writer(index: int) -> None:
        async with await psycopg.AsyncConnection.connect(direct(db_url)) as wconn:
            for n in range(transactions):
                if rng.random() < 0.5:  # take a transaction id early, insert later
                    await wconn.execute("SELECT pg_current_xact_id()")
                await asyncio.sleep(rng.random() * 0.01)
                result = await enqueue_event_async(
                    wconn, tenant, "order.created", {"writer": index, "n": n}
                )
                await asyncio.sleep(rng.random() * 0.02)
                if rng.random() < 0.1:
                    await wconn.rollback()
                else:
                    await wconn.commit()
                    committed_deliveries.update(d.id for d in result.deliveries)

    done = asyncio.Event()
    seen: list[LifecycleEvent] = []

    async def follower() -> None:
        # The feed withholds rows until every older transaction on the whole server has
        # ended (its snapshot's xmin), and other databases' transactions count too: on a
        # shared server an empty page after the writers finish is not the end. So the
        # follower stops once it has seen as many events as the table holds; an event the
        # feed skipped keeps it waiting until the test's timeout fails it.
        position = START
        async with await psycopg.AsyncConnection.connect(direct(db_url), autocommit=True) as fconn:
            while True:
                finished = done.is_set()
                page = await read_feed(fconn, tenant, position, 5)
                seen.extend(page)
                if page:
                    position = page[-1].position
                elif finished and len(seen) >= await _count_events(fconn):
                    return
                else:
                    await asyncio.sleep(0.002)

    async def _count_events(fconn: psycopg.AsyncConnection[Any]) -> int:
        cur = await fconn.execute(
            "SELECT count(*) FROM lifecycle_events WHERE tenant_id = %s", (tenant,)
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    follow = asyncio.create_task(follower())
    await asyncio.gather(*(writer(i) for i in range(writers)))
    done.set()
    await asyncio.wait_for(follow, timeout=60)

    ids = [e.id for e in seen]
    assert len(ids) == len(set(ids)), "an event was seen twice"
    assert set(ids) == _all_event_ids(conn, tenant), "an event was skipped"
    assert {e.delivery_id for e in seen} == committed_deliveries
    assert len(seen) == len(committed_deliveries) > writers * transactions  # 2 per event
    positions = [e.position for e in seen]
    assert positions == sorted(positions)


async def test_feed_route_pages_with_the_cursor_and_keeps_it_when_caught_up(
    db_url: str,
    secret_key: str,
    make_api_tenant: Callable[[], ApiTenant],
    make_destination: DestinationFactory,
    conn: psycopg.Connection[Any],
) -> None:
    a, b = make_api_tenant(), make_api_tenant()
    make_destination("https://example.com/hook", tenant_id=a.id)
    for n in range(5):
        enqueue_event(conn, a.id, "order.created", {"n": n})
    app = create_app(Settings(secret_key=secret_key), db_url)
    async with asgi_serving(app) as client:
        got: list[dict[str, Any]] = []
        cursor = None
        for _ in range(3):
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["after"] = cursor
            r = await client.get("/v1/delivery-events", params=params, headers=a.headers)
            assert r.status_code == 200, r.text
            got.extend(r.json()["items"])
            cursor = r.json()["next_cursor"]
        assert len(got) == 5 and len({e["id"] for e in got}) == 5
        item = got[0]
        assert set(item) == {
            "id", "tenant_id", "type", "delivery_id", "event_id", "destination_id",
            "state", "attempt_number", "occurred_at", "data",
        }  # fmt: skip
        assert item["tenant_id"] == str(a.id) and item["type"] == "delivery.created"

        caught_up = await client.get(
            "/v1/delivery-events", params={"after": cursor}, headers=a.headers
        )
        assert caught_up.json() == {"items": [], "next_cursor": cursor}
        # the list convention's `cursor` works the same
        same = await client.get("/v1/delivery-events", params={"cursor": cursor}, headers=a.headers)
        assert same.json() == {"items": [], "next_cursor": cursor}

        other = await client.get("/v1/delivery-events", headers=b.headers)
        assert other.json() == {"items": [], "next_cursor": None}

        bad = await client.get("/v1/delivery-events", params={"after": "zz"}, headers=a.headers)
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "after"
        # a bad alias beside a good `after` is refused, never silently ignored
        for alias in ("zz", ""):
            both = await client.get(
                "/v1/delivery-events", params={"after": cursor, "cursor": alias}, headers=a.headers
            )
            assert both.status_code == 422, both.text
            assert both.json()["errors"][0]["field"] == "cursor"
        # two good ones: `after` wins
        start = await client.get(
            "/v1/delivery-events", params={"after": cursor, "cursor": "1.0"}, headers=a.headers
        )
        assert start.json() == {"items": [], "next_cursor": cursor}
        assert (await client.get("/v1/delivery-events")).status_code == 401
