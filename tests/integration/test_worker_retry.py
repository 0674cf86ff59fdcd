"""Retry, failure and dead-letter behaviour, end to end: real PostgreSQL, a real worker,
real HTTP to a loopback receiver."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import psycopg
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from courier.enqueue import enqueue_event
from tests.support.engine import Engine, attempts, delivery, make_worker, run_workers, wait_terminal
from tests.support.receiver import Receiver

pytestmark = pytest.mark.delivery_retry


def _one_delivery(
    conn: psycopg.Connection[Any], tenant: uuid.UUID, payload: Any = None
) -> uuid.UUID:
    result = enqueue_event(conn, tenant, "order.created", payload or {"order": 1})
    assert len(result.deliveries) == 1
    return result.deliveries[0].id


async def test_delivers_signed_request_once(engine: Engine) -> None:
    _dest, secret = engine.make_destination(engine.receiver.url("/ok"))
    result = enqueue_event(
        engine.conn, engine.tenant, "order.created", {"order": 42, "note": "héllo"}
    )
    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        await wait_terminal(engine.db_url, 1)
    (hit,) = engine.receiver.hits("/ok")
    assert hit.body == b'{"order":42,"note":"h\xc3\xa9llo"}'
    assert hit.headers["webhook-id"] == str(result.event_id)
    assert hit.headers["Content-Type"] == "application/json"
    Webhook(secret).verify(hit.body, hit.headers)  # raises if the signature is wrong
    d = delivery(engine.conn, result.deliveries[0].id)
    assert d["state"] == "delivered" and d["attempt_count"] == 1
    assert d["delivered_at"] is not None and d["locked_by"] is None
    (a,) = attempts(engine.conn, d["id"])
    assert a["outcome"] == "succeeded" and a["http_status"] == 200 and a["retryable"] is False
    assert a["finished_at"] >= a["started_at"] and a["duration_ms"] >= 0


async def test_500_500_200_delivers_at_attempt_3_with_backoff(engine: Engine) -> None:
    engine.make_destination(
        engine.receiver.script("/flaky", [500, 500, 200]), backoff_initial_ms=200
    )
    delivery_id = _one_delivery(engine.conn, engine.tenant)
    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        await wait_terminal(engine.db_url, 1)
    d = delivery(engine.conn, delivery_id)
    assert d["state"] == "delivered" and d["attempt_count"] == 3
    rows = attempts(engine.conn, delivery_id)
    assert [a["outcome"] for a in rows] == ["retryable_failure", "retryable_failure", "succeeded"]
    assert [a["http_status"] for a in rows] == [500, 500, 200]
    hits = engine.receiver.hits("/flaky")
    assert len({h.headers["webhook-id"] for h in hits}) == 1  # same id on every retry
    # backoff: ≥ 0.8 × 200 ms, then ≥ 0.8 × 400 ms (jitter is ±20%)
    gaps = [b.at - a.at for a, b in itertools.pairwise(hits)]
    assert gaps[0] >= 0.16 and gaps[1] >= 0.32, gaps


async def test_400_fails_after_one_attempt_with_audit(engine: Engine) -> None:
    engine.make_destination(engine.receiver.always("/bad", 400))
    delivery_id = _one_delivery(engine.conn, engine.tenant)
    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        await wait_terminal(engine.db_url, 1)
    d = delivery(engine.conn, delivery_id)
    assert d["state"] == "failed" and d["attempt_count"] == 1
    assert d["failure_reason"] == "permanent_failure" and d["last_http_status"] == 400
    (a,) = attempts(engine.conn, delivery_id)
    assert a["outcome"] == "permanent_failure" and a["retryable"] is False
    assert len(engine.receiver.hits("/bad")) == 1
    audit = engine.conn.execute(
        "SELECT action, reason FROM audit_records WHERE delivery_id = %s", (delivery_id,)
    ).fetchall()
    assert audit == [("delivery.failed", "permanent_failure")]


async def test_always_503_dead_letters_after_max_attempts(engine: Engine) -> None:
    engine.make_destination(engine.receiver.always("/down", 503), max_attempts=3)
    delivery_id = _one_delivery(engine.conn, engine.tenant)
    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        await wait_terminal(engine.db_url, 1)
    d = delivery(engine.conn, delivery_id)
    assert d["state"] == "dead_lettered" and d["attempt_count"] == 3
    assert d["dead_letter_reason"] == "max_attempts_exhausted"
    assert d["dead_lettered_at"] is not None and d["last_http_status"] == 503
    assert [a["outcome"] for a in attempts(engine.conn, delivery_id)] == ["retryable_failure"] * 3
    audit = engine.conn.execute(
        "SELECT action, reason, actor FROM audit_records WHERE delivery_id = %s", (delivery_id,)
    ).fetchall()
    assert len(audit) == 1 and audit[0][:2] == ("delivery.dead_lettered", "max_attempts_exhausted")
    assert audit[0][2].startswith("worker:")
    events = engine.conn.execute(
        "SELECT type FROM lifecycle_events WHERE delivery_id = %s ORDER BY seq", (delivery_id,)
    ).fetchall()
    assert [e[0] for e in events] == [
        "delivery.created",
        "delivery.retry_scheduled",
        "delivery.retry_scheduled",
        "delivery.dead_lettered",
    ]


async def test_max_age_dead_letters(engine: Engine) -> None:
    # The next retry (≥ 0.8 s away) would fall past the 1 s age limit.
    engine.make_destination(
        engine.receiver.always("/old", 500),
        max_age_seconds=1,
        backoff_initial_ms=1000,
        backoff_max_ms=2000,
    )
    delivery_id = _one_delivery(engine.conn, engine.tenant)
    engine.conn.execute("UPDATE deliveries SET created_at = now() - interval '0.5 seconds'")
    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        await wait_terminal(engine.db_url, 1)
    d = delivery(engine.conn, delivery_id)
    assert d["state"] == "dead_lettered" and d["dead_letter_reason"] == "max_age_exceeded"


async def test_429_retry_after_is_honoured(engine: Engine) -> None:
    # Backoff alone would retry after ~100 ms; Retry-After asks for 1 s (cap 2 s).
    engine.make_destination(
        engine.receiver.script("/limited", [(429, {"Retry-After": "1"})]), backoff_max_ms=2000
    )
    delivery_id = _one_delivery(engine.conn, engine.tenant)
    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        await wait_terminal(engine.db_url, 1)
    first, second = engine.receiver.hits("/limited")
    assert second.at - first.at >= 0.95
    assert delivery(engine.conn, delivery_id)["attempt_count"] == 2


async def test_retry_after_is_capped_by_policy(engine: Engine) -> None:
    engine.make_destination(
        engine.receiver.script("/greedy", [(503, {"Retry-After": "3600"})]), backoff_max_ms=300
    )
    delivery_id = _one_delivery(engine.conn, engine.tenant)
    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        await wait_terminal(engine.db_url, 1, timeout=20)
    assert delivery(engine.conn, delivery_id)["state"] == "delivered"


async def test_timeout_and_connection_refused_are_retryable(engine: Engine) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(status=200)

    engine.make_destination(engine.receiver.always("/hang", hang), timeout_ms=300, max_attempts=2)
    closed = Receiver()
    await closed.start()
    refused_url = closed.url("/nobody")
    await closed.stop()  # nothing listens on that port any more
    engine.make_destination(refused_url, max_attempts=2)
    enqueue_event(engine.conn, engine.tenant, "order.created", {"x": 1})
    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        await wait_terminal(engine.db_url, 2, timeout=30)
    rows = engine.conn.execute(
        "SELECT d.state, a.outcome, a.retryable, a.error_summary FROM deliveries d "
        "JOIN delivery_attempts a ON a.delivery_id = d.id ORDER BY a.started_at"
    ).fetchall()
    assert {r[0] for r in rows} == {"dead_lettered"}
    assert all(r[1] == "retryable_failure" and r[2] is True for r in rows)
    summaries = " ".join(r[3] for r in rows).lower()
    assert "timeout" in summaries
    assert "connect" in summaries or "refused" in summaries


async def test_missing_and_disabled_destinations_fail_without_a_request(engine: Engine) -> None:
    from tests.support.engine import set_destination_enabled, soft_delete_destination

    gone, _ = engine.make_destination(engine.receiver.url("/gone"))
    off, _ = engine.make_destination(engine.receiver.url("/off"))
    result = enqueue_event(engine.conn, engine.tenant, "order.created", {"x": 1})
    soft_delete_destination(engine.conn, engine.tenant, gone["id"])
    set_destination_enabled(engine.conn, engine.tenant, off["id"], False)
    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        await wait_terminal(engine.db_url, 2)
    assert engine.receiver.hits() == []
    reasons = {}
    for d in result.deliveries:
        row = delivery(engine.conn, d.id)
        assert row["state"] == "failed" and row["attempt_count"] == 0
        assert attempts(engine.conn, d.id) == []
        reasons[d.destination_id] = row["failure_reason"]
    assert reasons == {gone["id"]: "destination_missing", off["id"]: "destination_disabled"}
    audit = engine.conn.execute("SELECT reason FROM audit_records ORDER BY reason").fetchall()
    assert audit == [("destination_disabled",), ("destination_missing",)]
