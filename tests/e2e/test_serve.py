"""`courier serve` on the embedded default: answers, and on SIGTERM stops cleanly and
takes the embedded PostgreSQL down with it (no server left running)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from courier.crypto import generate_key
from tests.support.ports import free_port as _free_port


def test_serve_stops_cleanly_with_its_embedded_database() -> None:
    folder = Path(tempfile.mkdtemp(prefix="courier-serve-"))
    folder.chmod(folder.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
    data = folder / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env.update(COURIER_DATA_DIR=str(data), COURIER_SECRET_KEY=generate_key())
    subprocess.run(
        [sys.executable, "-m", "courier", "migrate"], env=env, check=True, capture_output=True
    )
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "courier", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code
            except httpx.TransportError:
                time.sleep(0.1)
        assert status == 200
        assert (data / "pgdata" / "postmaster.pid").exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (data / "pgdata" / "postmaster.pid").exists()  # the server stopped too
