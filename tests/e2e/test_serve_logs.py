"""`courier serve` logs uvicorn's own lines through courier's formatter, at
COURIER_LOG_LEVEL."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys

import httpx
import pytest

from courier.crypto import generate_key
from tests.e2e.test_cli_errors import TIMEOUT, _env, _free_port


def _serve(db_url: str, level: str) -> list[dict[str, object]]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "courier", "serve", "--port", str(port)],
        env=_env(
            COURIER_DATABASE_URL=db_url,
            COURIER_SECRET_KEY=generate_key(),
            COURIER_LOG_FORMAT="json",
            COURIER_LOG_LEVEL=level,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
        assert ready and "listening on" in proc.stdout.readline()
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]  # all JSON


def test_uvicorn_access_and_error_lines_are_courier_json(db_url: str) -> None:
    records = _serve(db_url, "info")
    loggers = {r["logger"] for r in records}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers
    (access,) = [r for r in records if r["logger"] == "uvicorn.access"]
    assert "GET /healthz" in str(access["msg"]) and access["level"] == "info"
    assert all("color_message" not in r for r in records)


@pytest.mark.parametrize("level", ["warning", "WARNING"])
def test_log_level_warning_drops_info_lines(db_url: str, level: str) -> None:
    records = _serve(db_url, level)
    assert all(r["level"] in ("warning", "error", "critical") for r in records), records
