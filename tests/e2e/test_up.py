"""`courier up` on a clean machine: embedded PostgreSQL, a printed API key, a working API
and a running worker that delivers to a loopback receiver."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.ports import free_port as _free_port
from tests.support.receiver import Receiver


@pytest.fixture
def courier_up() -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    folder = Path(tempfile.mkdtemp(prefix="courier-up-"))
    folder.chmod(folder.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env["COURIER_DATA_DIR"] = str(folder / "data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "courier", "up", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        key = None
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while key is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            match = re.search(r"API key:\s+(ck_\S+)", line)
            if match:
                key = match.group(1)
        assert key is not None, "courier up printed no API key"
        yield f"http://127.0.0.1:{port}", key, proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()


async def test_up_prints_a_working_key_and_delivers(
    courier_up: tuple[str, str, subprocess.Popen[str]],
) -> None:
    base, key, proc = courier_up
    headers = {"Authorization": f"Bearer {key}"}
    async with Receiver() as rx, httpx.AsyncClient(base_url=base, timeout=10) as client:
        for _ in range(100):
            try:
                if (await client.get("/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        created = await client.post(
            "/v1/destinations",
            headers=headers,
            json={"name": "tour", "url": rx.url("/hook")},
        )
        assert created.status_code == 201, created.text
        secret = created.json()["signing_secret"]
        sent = await client.post(
            "/v1/events", headers=headers, json={"type": "tour.started", "payload": {"n": 1}}
        )
        assert sent.status_code == 202, sent.text
        (delivery,) = sent.json()["deliveries"]
        await rx.wait_for(1, "/hook", timeout=30)
        for _ in range(100):
            state = (await client.get(f"/v1/deliveries/{delivery['id']}", headers=headers)).json()
            if state["state"] == "delivered":
                break
            await asyncio.sleep(0.1)
        assert state["state"] == "delivered"
        (hit,) = rx.hits("/hook")
        Webhook(secret).verify(hit.body, hit.headers)
        # The API's /metrics shows the in-process worker's counts (one registry for both).
        scraped = (await client.get("/metrics")).text
        assert 'courier_deliveries_total{outcome="delivered"} 1.0' in scraped
        assert "_created" not in scraped
    assert proc.poll() is None  # still running until the fixture stops it
