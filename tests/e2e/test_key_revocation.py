"""A revoked API key is refused by every running API process at its next request: the
revocation's NOTIFY empties each process's key cache (db/postgres/022). Without a
NOTIFY, the cache's TTL (COURIER_API_KEY_CACHE_SECONDS) still bounds how long it is
accepted."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import psycopg

from courier.tenancy import IssuedKey, create_api_key, create_tenant
from tests.e2e.test_cli_errors import _env, _free_port, courier


@contextlib.contextmanager
def _serving(db_url: str, secret_key: str, *args: str, **env: str) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "courier", "serve", "--port", str(port), *args],
        env=_env(COURIER_DATABASE_URL=db_url, COURIER_SECRET_KEY=secret_key, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
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


def _status(base: str, key: str) -> int:
    headers = {"authorization": f"Bearer {key}"}
    return httpx.get(f"{base}/v1/destinations", headers=headers, timeout=30).status_code


def _keys(db_url: str) -> tuple[IssuedKey, IssuedKey]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        tenant, first = create_tenant(conn, "revocation")
        return first, create_api_key(conn, tenant, "second")


def test_a_key_revoked_elsewhere_is_refused_by_every_api_process(
    db_url: str, secret_key: str
) -> None:
    doomed, kept = _keys(db_url)
    # A TTL far longer than the test: only the NOTIFY can explain a refusal.
    ttl = {"COURIER_API_KEY_CACHE_SECONDS": "300"}
    with (
        _serving(db_url, secret_key, "--workers", "1", **ttl) as one,
        _serving(db_url, secret_key, "--workers", "2", **ttl) as two,
    ):
        for _ in range(10):  # every process has the key cached
            assert _status(one, doomed.key) == 200
            assert _status(two, doomed.key) == 200
        done = courier("keys", "revoke", str(doomed.id), COURIER_DATABASE_URL=db_url)
        assert done.returncode == 0, done.stderr
        time.sleep(0.5)  # the NOTIFY is on its way the moment the revocation commits
        assert [_status(one, doomed.key) for _ in range(5)] == [401] * 5
        assert [_status(two, doomed.key) for _ in range(10)] == [401] * 10
        # the tenant's other key was dropped from the cache too, and is still good
        assert _status(one, kept.key) == 200
        assert _status(two, kept.key) == 200


def test_without_a_notify_the_ttl_bounds_a_revoked_keys_life(db_url: str, secret_key: str) -> None:
    doomed, _ = _keys(db_url)
    ttl = 3.0
    with _serving(
        db_url, secret_key, "--workers", "1", COURIER_API_KEY_CACHE_SECONDS=str(ttl)
    ) as base:
        cached_at = time.monotonic()
        assert _status(base, doomed.key) == 200  # now cached, for `ttl` seconds at most
        with psycopg.connect(db_url, autocommit=True) as conn:
            # Triggers off for this session: the revocation sends no NOTIFY.
            conn.execute("SET session_replication_role = replica")
            conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s", (doomed.id,))
        answered = _status(base, doomed.key)
        if time.monotonic() < cached_at + ttl:
            assert answered == 200  # served from the cache: the database was not asked
        while (answered := _status(base, doomed.key)) == 200:
            assert time.monotonic() < cached_at + ttl + 2.0, "still accepted past the TTL"
            time.sleep(0.1)
        assert answered == 401


def test_no_cache_asks_every_time(db_url: str, secret_key: str) -> None:
    doomed, _ = _keys(db_url)
    with _serving(db_url, secret_key, "--workers", "1", COURIER_API_KEY_CACHE_SECONDS="0") as base:
        assert _status(base, doomed.key) == 200
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")
            conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s", (doomed.id,))
        assert _status(base, doomed.key) == 401
