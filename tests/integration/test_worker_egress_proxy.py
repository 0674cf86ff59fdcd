"""A real `courier worker` process with COURIER_EGRESS_PROXY delivers through a real
tinyproxy; with the proxy gone, the attempt is a retryable failure naming it."""

from __future__ import annotations

from pathlib import Path

from yarl import URL

from courier.enqueue import enqueue_event
from tests.support.engine import Engine, attempts, wait_terminal, worker_process
from tests.support.tinyproxy import free_port, tinyproxy


async def test_a_worker_delivers_through_the_egress_proxy(engine: Engine, tmp_path: Path) -> None:
    engine.make_destination(engine.receiver.url("/in"))
    enqueue_event(engine.conn, engine.tenant, "order.created", {"id": 1})
    with tinyproxy(tmp_path) as proxy:
        worker = worker_process(engine.db_url, engine.secret_key, COURIER_EGRESS_PROXY=proxy.url)
        try:
            await wait_terminal(engine.db_url, 1)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        assert proxy.connects() == [f"127.0.0.1:{URL(engine.receiver.url()).port}"]
    assert len(engine.receiver.hits("/in")) == 1


async def test_a_worker_whose_proxy_is_down_names_the_proxy(engine: Engine) -> None:
    engine.make_destination(engine.receiver.url("/in"), max_attempts=1)
    result = enqueue_event(engine.conn, engine.tenant, "order.created", {"id": 1})
    closed = free_port()
    worker = worker_process(
        engine.db_url, engine.secret_key, COURIER_EGRESS_PROXY=f"http://127.0.0.1:{closed}"
    )
    try:
        await wait_terminal(engine.db_url, 1)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    (attempt,) = attempts(engine.conn, result.deliveries[0].id)
    assert attempt["outcome"] == "retryable_failure"
    assert attempt["error_summary"].startswith(f"egress proxy 127.0.0.1:{closed}: cannot connect")
    assert engine.receiver.hits() == []
