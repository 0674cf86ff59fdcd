"""A COURIER_DATABASE_URL naming several servers must ask for the writable one: the CLI
refuses it in one line (exit 2) instead of working against whichever server answers
first, which after a failover can be a read-only standby."""

from __future__ import annotations

import os
import subprocess
import sys

from psycopg.conninfo import conninfo_to_dict, make_conninfo


def _courier(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COURIER_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "courier", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _twice(db_url: str, **extra: str) -> str:
    """The test database's server named twice, as a standby pair would be."""
    params = conninfo_to_dict(db_url)
    host = str(params.pop("host", "127.0.0.1"))
    port = str(params.pop("port", "5432"))
    return make_conninfo("", **params, host=f"{host},{host}", port=f"{port},{port}", **extra)


def test_two_servers_without_target_session_attrs_are_refused(db_url: str) -> None:
    done = _courier(_twice(db_url), "migrate")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "COURIER_DATABASE_URL names 2 servers" in lines[0]
    assert "target_session_attrs=read-write" in lines[0]


def test_two_servers_asking_for_the_writable_one_work(db_url: str) -> None:
    done = _courier(_twice(db_url, target_session_attrs="read-write"), "migrate")
    assert done.returncode == 0, done.stderr
