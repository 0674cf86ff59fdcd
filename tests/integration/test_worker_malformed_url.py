"""A destination row whose URL the API would refuse (an older version's, or one written
with `create_destination`) fails its delivery permanently; the worker carries on."""

from __future__ import annotations

from courier.enqueue import enqueue_event
from tests.support.engine import Engine, attempts, delivery, make_worker, run_workers, wait_terminal


async def test_a_malformed_stored_url_fails_permanently_and_others_are_delivered(
    engine: Engine,
) -> None:
    # yarl raises IndexError (not ValueError) for this one.
    engine.make_destination("https://[]@", event_types=["probe.bad"], max_attempts=5)
    engine.make_destination(engine.receiver.url("/ok"), event_types=["probe.good"])
    (bad,) = enqueue_event(engine.conn, engine.tenant, "probe.bad", {"n": 1}).deliveries
    (good,) = enqueue_event(engine.conn, engine.tenant, "probe.good", {"n": 2}).deliveries
    async with run_workers([make_worker(engine.db_url, engine.secret_key)]):
        await wait_terminal(engine.db_url, 2, timeout=20.0)
    row = delivery(engine.conn, bad.id)
    assert row["state"] == "failed" and row["attempt_count"] == 1  # permanent: not retried
    (attempt,) = attempts(engine.conn, bad.id)
    assert attempt["outcome"] == "permanent_failure" and attempt["retryable"] is False
    assert attempt["error_summary"] == "invalid URL (IndexError)"
    assert delivery(engine.conn, good.id)["state"] == "delivered"
    assert len(engine.receiver.hits("/ok")) == 1
