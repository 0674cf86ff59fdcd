"""`courier serve` behind a TLS-terminating proxy: X-Forwarded-Proto counts only from the
addresses COURIER_FORWARDED_ALLOW_IPS names (the server's own defaults do not add any)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from courier.console.session import SIGNIN_COOKIE
from tests.support.ports import free_port as _free_port


@contextlib.contextmanager
def _serving(db_url: str, secret_key: str, forwarded_allow_ips: str) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env.update(
        COURIER_DATABASE_URL=db_url,
        COURIER_SECRET_KEY=secret_key,
        COURIER_FORWARDED_ALLOW_IPS=forwarded_allow_ips,
        FORWARDED_ALLOW_IPS="*",  # uvicorn's own knob: it must not matter
    )
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "courier", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "courier serve exited"
            assert time.monotonic() < deadline, "courier serve did not answer"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _signin_cookie(base: str) -> str:
    answer = httpx.get(f"{base}/console/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert answer.status_code == 200
    (cookie,) = [c for c in answer.headers.get_list("set-cookie") if c.startswith(SIGNIN_COOKIE)]
    return cookie


@pytest.mark.parametrize(
    ("allowed", "secure"),
    [("127.0.0.1", True), ("10.0.0.1", False), ("", False)],
)
def test_forwarded_proto_counts_only_from_trusted_proxies(
    db_url: str, secret_key: str, allowed: str, secure: bool
) -> None:
    with _serving(db_url, secret_key, allowed) as base:
        assert ("Secure" in _signin_cookie(base)) is secure
