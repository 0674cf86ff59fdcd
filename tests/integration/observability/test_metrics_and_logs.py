"""Metrics and logs of real processes: a `courier worker` with its metrics port, the API's
/metrics with and without COURIER_METRICS_TOKEN, the queue gauges' one query, and one
JSON log line per attempt that never carries a secret."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from courier.asgi import create_app
from courier.enqueue import enqueue_event
from courier.metrics import CLAIM_TRIGGERS, CourierMetrics
from courier.queue_stats import QueueStatsCollector, QueueStatsConfig
from courier.settings import Settings
from courier.tenancy import create_api_key
from courier.web.state import state_of
from tests.conftest import DestinationFactory
from tests.integration.observability.conftest import asgi_serving
from tests.support.engine import Engine, wait_terminal, worker_process
from tests.support.ports import free_port as _free_port

METRICS_TOKEN = "metrics-token-for-tests"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def _scrape(url: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as client:
        for _ in range(200):  # the process may still be starting
            try:
                return await client.get(url, headers=headers)
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"nothing answered at {url}")


async def test_worker_process_serves_metrics_and_logs_one_json_line_per_attempt(
    engine: Engine,
) -> None:
    # Secrets planted where a careless log line would pick them up: URL credentials, a
    # query token, the signing secret, the payload, the secret key.
    planted = ["PLANTED-PASSWORD", "PLANTED-QUERY-TOKEN", "PLANTED-PAYLOAD"]
    engine.receiver.always("/ok", 200)
    engine.receiver.script("/flaky", [503], then=200)
    engine.receiver.always("/down", 500)
    base = f"http://user:{planted[0]}@127.0.0.1:{engine.receiver.port}"
    _, secret_ok = engine.make_destination(f"{base}/ok?token={planted[1]}", event_types=["ok"])
    _, secret_flaky = engine.make_destination(f"{base}/flaky", event_types=["flaky"])
    engine.make_destination(f"{base}/down", event_types=["down"], max_attempts=2)
    ids = {}
    for kind in ("ok", "flaky", "down"):
        result = enqueue_event(engine.conn, engine.tenant, kind, {"note": planted[2]})
        ids[kind] = str(result.deliveries[0].id)

    port = _free_port()
    proc = worker_process(
        engine.db_url,
        engine.secret_key,
        capture_stderr=True,
        COURIER_WORKER_METRICS_PORT=str(port),
        COURIER_METRICS_TOKEN=METRICS_TOKEN,
    )
    try:
        await wait_terminal(engine.db_url, 3)
        url = f"http://127.0.0.1:{port}/metrics"
        assert (await _scrape(url)).status_code == 401
        assert (await _scrape(url, "wrong")).status_code == 401
        response = await _scrape(url, METRICS_TOKEN)
        assert response.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0

    samples = _samples(response.text)
    assert samples[("courier_attempts_total", (("outcome", "succeeded"),))] == 2
    assert samples[("courier_attempts_total", (("outcome", "retryable_failure"),))] == 3
    assert samples[("courier_deliveries_total", (("outcome", "delivered"),))] == 2
    assert samples[("courier_deliveries_total", (("outcome", "dead_lettered"),))] == 1
    assert samples[("courier_retries_scheduled_total", ())] == 2
    assert samples[("courier_dead_letters_total", ())] == 1
    assert samples[("courier_attempt_duration_seconds_count", ())] == 5
    assert samples[("courier_delivery_latency_seconds_count", ())] == 2
    for state in ("pending", "retry_scheduled", "delivering"):
        assert ("courier_queue_depth", (("state", state),)) in samples
    assert ("courier_oldest_due_seconds", ()) in samples
    label_names = {name for (_, labels) in samples for name, _ in labels}
    # no delivery ids
    assert label_names <= {"outcome", "state", "le", "destination_id", "trigger", "result"}
    triggers = {v for (_, labels) in samples for n, v in labels if n == "trigger"}
    assert triggers and triggers <= set(CLAIM_TRIGGERS)  # a fixed set
    results = {v for (_, labels) in samples for n, v in labels if n == "result"}
    assert results <= {"rows", "empty", "claimed", "skipped"}
    per_destination = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "courier_destination_attempts_total"
    }
    assert len(per_destination) == 4 and sum(per_destination.values()) == 5

    text = stderr.decode("utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    attempts = [r for r in records if r["logger"] == "courier.delivery"]
    by_delivery: dict[str, list[dict[str, Any]]] = {}
    for record in attempts:
        by_delivery.setdefault(record["delivery_id"], []).append(record)
    assert {k: len(v) for k, v in by_delivery.items()} == {
        ids["ok"]: 1,
        ids["flaky"]: 2,
        ids["down"]: 2,
    }
    flaky_first, flaky_second = by_delivery[ids["flaky"]]
    assert flaky_first["outcome"] == "retryable_failure" and flaky_first["http_status"] == 503
    assert flaky_first["state"] == "retry_scheduled" and flaky_first["attempt_number"] == 1
    assert flaky_second["state"] == "delivered" and flaky_second["attempt_number"] == 2
    dead = by_delivery[ids["down"]][-1]
    assert dead["state"] == "dead_lettered" and dead["reason"] == "max_attempts_exhausted"
    for record in attempts:
        assert record["tenant_id"] == str(engine.tenant)
        assert isinstance(record["duration_ms"], int) and record["duration_ms"] >= 0
    for secret in [
        *planted,
        secret_ok,
        secret_flaky,
        secret_ok.removeprefix("whsec_"),
        engine.secret_key,
    ]:
        assert secret not in text


async def test_api_metrics_are_protected_by_the_token_when_set(
    db_url: str, secret_key: str
) -> None:
    open_app = create_app(Settings(secret_key=secret_key), db_url)
    async with asgi_serving(open_app) as client:
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "courier_queue_depth" in response.text
    settings = Settings(secret_key=secret_key, metrics_token=METRICS_TOKEN)
    async with asgi_serving(create_app(settings, db_url)) as client:
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.headers["content-type"] == "application/problem+json"
        ok = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert ok.status_code == 200 and "courier_oldest_due_seconds" in ok.text


async def test_api_queue_gauges_come_from_the_collector_not_the_scrape(
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    make_destination("https://example.com/hook")
    enqueue_event(conn, tenant, "order.created", {})
    app = create_app(Settings(secret_key=secret_key), db_url)
    state_of(app).queue_stats_interval_s = 3600  # one refresh at start-up, then none
    async with asgi_serving(app) as client:
        key = create_api_key(conn, tenant).key
        assert (
            await client.get("/v1/delivery-events", headers={"Authorization": f"Bearer {key}"})
        ).status_code == 200
        await state_of(app).queue_stats.run_once()
        first = _samples((await client.get("/metrics")).text)
        enqueue_event(conn, tenant, "order.created", {})
        second = _samples((await client.get("/metrics")).text)
    depth = ("courier_queue_depth", (("state", "pending"),))
    assert first[depth] == 1
    assert second[depth] == 1  # a scrape reads the gauge; it does not query


async def test_queue_stats_collector_counts_states_and_the_oldest_due_age(
    conn: psycopg.Connection[Any],
    db_url: str,
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
) -> None:
    make_destination("https://example.com/hook")
    ids = [
        enqueue_event(conn, tenant, "order.created", {"n": n}).deliveries[0].id for n in range(4)
    ]
    past = datetime.now(UTC) - timedelta(minutes=5)
    future = datetime.now(UTC) + timedelta(hours=1)
    conn.execute("UPDATE deliveries SET next_attempt_at = %s WHERE id = %s", (past, ids[0]))
    conn.execute(
        "UPDATE deliveries SET state = 'delivering', locked_by = 'w', locked_until = %s, "
        "attempt_count = 1 WHERE id = %s",
        (future, ids[1]),
    )
    conn.execute(
        "UPDATE deliveries SET state = 'delivering', locked_by = 'w', locked_until = %s, "
        "attempt_count = 1 WHERE id = %s",
        (future, ids[2]),
    )
    conn.execute(
        "UPDATE deliveries SET state = 'retry_scheduled', locked_by = NULL, locked_until = NULL,"
        " next_attempt_at = %s WHERE id = %s",
        (future, ids[2]),
    )
    metrics = CourierMetrics()
    collector = QueueStatsCollector(QueueStatsConfig(database_url=db_url), metrics)
    try:
        stats = await collector.run_once()
    finally:
        await collector.close()
    assert (stats.pending, stats.retry_scheduled, stats.delivering) == (2, 1, 1)
    assert stats.oldest_due_seconds >= 5 * 60  # the row made due five minutes ago
    assert metrics.registry.get_sample_value("courier_queue_depth", {"state": "pending"}) == 2
    assert metrics.registry.get_sample_value("courier_oldest_due_seconds") == (
        stats.oldest_due_seconds
    )
