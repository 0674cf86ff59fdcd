"""A starting worker waits for a database that is only not up yet, and for nothing else."""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg
import pytest

from courier.store.database import DatabaseUnavailable, check_reachable, is_transient
from tests.support.database import with_dbname
from tests.support.ports import closed_port as _closed_port


def test_a_server_not_listening_is_waited_for_then_named(caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres"
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match="Connection refused"):
        check_reachable(url, wait_s=2.0)
    assert time.monotonic() - started >= 1.0  # it did wait
    assert "not reachable yet" in caplog.text


def test_a_missing_database_is_not_waited_for(pg_direct: str) -> None:
    url = with_dbname(pg_direct, "courier_no_such_db")
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match="does not exist"):
        check_reachable(url, wait_s=60.0)
    assert time.monotonic() - started < 10.0


def test_a_server_that_comes_up_is_used(pg_direct: str) -> None:
    # A TCP forwarder to the real server, started two seconds after the wait begins.
    port = _closed_port()
    target = psycopg.conninfo.conninfo_to_dict(pg_direct)
    forwarder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            FORWARD,
            str(port),
            str(target.get("host") or "127.0.0.1"),
            str(target.get("port") or 5432),
        ],
    )
    try:
        url = f"postgresql://{target.get('user') or 'postgres'}@127.0.0.1:{port}/postgres"
        check_reachable(url, wait_s=30.0)  # returns: the server answered once it listened
    finally:
        forwarder.kill()
        forwarder.wait()


def test_transient_failures_are_told_apart() -> None:
    assert is_transient(psycopg.OperationalError("connection refused: Connection refused"))
    assert not is_transient(psycopg.OperationalError('role "x" does not exist'))


FORWARD = """
import asyncio, sys, time
time.sleep(2.0)
port, host, target = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])

async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    finally:
        w.close()

async def handle(r, w):
    if host.startswith("/"):  # the embedded server listens on a Unix socket
        tr, tw = await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{target}")
    else:
        tr, tw = await asyncio.open_connection(host, target)
    await asyncio.gather(pipe(r, tw), pipe(tr, w), return_exceptions=True)

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""
