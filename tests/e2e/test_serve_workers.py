"""`courier serve --workers N`: N processes answer on one port, a dead one is replaced,
SIGTERM stops them all (exit 0); a bad value is one line and exit 2."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from courier.crypto import generate_key
from tests.e2e.test_cli_errors import TIMEOUT, _env, _free_port, courier


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _wait_for(check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_workers_share_the_port_are_replaced_and_stop_together(db_url: str) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "courier", "serve", "--port", str(port), "--workers", "2"],
        env=_env(COURIER_DATABASE_URL=db_url, COURIER_SECRET_KEY=generate_key()),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
        assert ready, "no line from courier serve"
        assert proc.stdout.readline().strip() == f"courier serve: listening on {base}"
        workers = _wait_for(lambda: len(_children(proc.pid)) == 2 and _children(proc.pid))
        assert httpx.get(f"{base}/healthz", timeout=30).status_code == 200

        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        replaced = _wait_for(
            lambda: (c := _children(proc.pid)) and len(c) == 2 and victim not in c and c
        )
        assert replaced - workers, "no new worker process"
        for _ in range(10):  # whichever process accepts, it answers
            assert httpx.get(f"{base}/healthz", timeout=30).status_code == 200

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not [pid for pid in replaced if Path(f"/proc/{pid}").exists()]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_workers_do_not_outlive_a_supervisor_killed_outright(db_url: str) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "courier", "serve", "--port", str(port), "--workers", "2"],
        env=_env(COURIER_DATABASE_URL=db_url, COURIER_SECRET_KEY=generate_key()),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    try:
        workers = _wait_for(lambda: len(_children(proc.pid)) == 2 and _children(proc.pid))
        proc.kill()  # SIGKILL: the supervisor passes nothing on
        proc.wait()
        _wait_for(lambda: not [p for p in workers if Path(f"/proc/{p}").exists()], 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["--workers", "0"], {}, "courier: invalid setting --workers='0': must be at least 1"),
        (["--workers", "many"], {}, "courier: invalid setting --workers='many': not an integer"),
        (
            [],
            {"COURIER_SERVE_WORKERS": "0"},
            "courier: invalid setting COURIER_SERVE_WORKERS='0': must be at least 1",
        ),
    ],
)
def test_a_bad_worker_count_is_one_line_and_exit_2(
    args: list[str], env: dict[str, str], line: str
) -> None:
    done = courier("serve", "--port", str(_free_port()), *args, **env)
    assert done.returncode == 2
    assert done.stderr.strip() == line
    assert "Traceback" not in done.stderr
