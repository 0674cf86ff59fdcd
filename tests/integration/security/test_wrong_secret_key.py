"""A worker whose COURIER_SECRET_KEY does not open its destinations' signing secrets.

At start (`courier worker`, `courier up`): it refuses, with one line and exit code 2.
At delivery time (a destination whose secret was written under a key this worker lacks):
it sends nothing and spends no attempt, hands the delivery back, and says so loudly
(an ERROR line, `courier_secret_decrypt_failures_total`); with the right key it delivers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import psycopg
import pytest

from courier.crypto import SecretBox, generate_key
from courier.destinations import create_destination
from courier.enqueue import enqueue_event
from courier.tenancy import create_tenant
from tests.support.engine import make_worker, run_workers, wait_terminal
from tests.support.ports import free_port as _free_port
from tests.support.receiver import Receiver


def _courier_env(db_url: str, secret_key: str, **env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    return {
        **base,
        "COURIER_DATABASE_URL": db_url,
        "COURIER_SECRET_KEY": secret_key,
        "COURIER_WORKER_TENANTS": "*",
        "COURIER_WORKER_POLL_INTERVAL": "0.1",
        "COURIER_LOG_FORMAT": "json",
        **env,
    }


def _seed(conn: psycopg.Connection[Any], key: str, url: str, events: int = 2) -> uuid.UUID:
    tenant_id, _ = create_tenant(conn, f"keys-{uuid.uuid4().hex[:8]}")
    create_destination(
        conn,
        SecretBox(key),
        tenant_id,
        name="d",
        url=url,
        max_attempts=2,
        backoff_initial_ms=100,
        backoff_max_ms=100,
    )
    for n in range(events):
        enqueue_event(conn, tenant_id, "order.created", {"n": n})
    return tenant_id


def _untouched(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE state = 'pending' AND attempt_count = 0), count(*),"
        " (SELECT count(*) FROM delivery_attempts) FROM deliveries"
    ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize("command", ["worker", "up"])
def test_start_with_a_key_that_opens_no_secret_is_one_line_and_exit_2(
    conn: psycopg.Connection[Any], db_url: str, command: str
) -> None:
    _seed(conn, generate_key(), "https://example.com/hook")
    wrong = generate_key()
    result = subprocess.run(
        [sys.executable, "-m", "courier", command],
        env=_courier_env(db_url, wrong, COURIER_PORT=str(_free_port())),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("courier: COURIER_SECRET_KEY cannot decrypt"), line
    assert "1 of 1 tenant(s)" in line and "wrong key" in line
    assert "Traceback" not in result.stderr and wrong not in result.stderr
    assert _untouched(conn) == (2, 2, 0)  # nothing claimed, no attempt spent


def test_a_worker_starts_when_there_is_nothing_to_check(db_url: str) -> None:
    """No destination yet: any usable key is taken; the worker runs until SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "courier", "worker"],
        env=_courier_env(db_url, generate_key()),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        started = ""
        while time.monotonic() < deadline and "started" not in started:
            started = proc.stderr.readline()
            assert started or proc.poll() is None, "the worker exited"
        assert "started" in started
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0


async def test_an_undecryptable_secret_spends_no_attempt_and_delivers_with_the_key(
    conn: psycopg.Connection[Any],
    db_url: str,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker_key, removed_key = generate_key(), generate_key()
    _seed(conn, worker_key, receiver.url("/fine"), events=2)
    orphan_tenant = _seed(conn, removed_key, receiver.url("/orphan"), events=3)
    found = conn.execute(
        "SELECT id, signing_secrets -> 0 ->> 'token' FROM destinations WHERE tenant_id = %s",
        (orphan_tenant,),
    ).fetchone()
    assert found is not None
    orphan, token = found
    orphan_secret = SecretBox(removed_key).decrypt(token)

    worker = make_worker(db_url, worker_key, unsignable_delay_s=0.3)
    with caplog.at_level(logging.ERROR, logger="courier.worker"):
        async with run_workers([worker]):
            await wait_terminal(db_url, 2)  # the destination it can sign for: delivered
            # Long enough for several claims of the orphaned rows (each 0.3 s apart) and,
            # on code that spent attempts, for both of their attempts and a dead letter.
            await asyncio.sleep(2.0)

    assert len(receiver.hits("/fine")) == 2
    assert receiver.hits("/orphan") == []
    rows = conn.execute(
        "SELECT state, attempt_count, locked_by FROM deliveries WHERE destination_id = %s",
        (orphan,),
    ).fetchall()
    assert [tuple(r) for r in rows] == [("retry_scheduled", 0, None)] * 3
    spent = conn.execute(
        "SELECT count(*) FROM delivery_attempts a JOIN deliveries d"
        " ON d.tenant_id = a.tenant_id AND d.id = a.delivery_id WHERE d.destination_id = %s",
        (orphan,),
    ).fetchone()
    assert spent == (0,)
    failures = worker.metrics.registry.get_sample_value("courier_secret_decrypt_failures_total")
    assert failures is not None and failures >= 6  # at least two claims of the three rows
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors, "an undecryptable secret must be logged as an ERROR"
    for record in errors:
        text = record.getMessage()
        assert "COURIER_SECRET_KEY" in text and str(orphan) in text
        assert orphan_secret not in text and removed_key not in text and worker_key not in text

    # Given the key that wrote it, a worker delivers them, on their first attempt.
    async with run_workers([make_worker(db_url, f"{worker_key},{removed_key}")]):
        await wait_terminal(db_url, 5)
    assert len(receiver.hits("/orphan")) == 3
    rows = conn.execute(
        "SELECT state, attempt_count FROM deliveries WHERE destination_id = %s", (orphan,)
    ).fetchall()
    assert [tuple(r) for r in rows] == [("delivered", 1)] * 3
