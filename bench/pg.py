"""One PostgreSQL server for the whole run, and a fresh database per contestant run.

The server is COURIER_DATABASE_URL's when set, else courier's embedded one, started
once in a temporary folder. Contestants install their schema once into a template;
each run clones it (`CREATE DATABASE … TEMPLATE`), so no run sees another's rows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from courier.store.embedded import EmbeddedPostgres


@contextmanager
def server() -> Iterator[str]:
    """Yield a URL on the server the benchmark uses (an admin database on it)."""
    url = os.environ.get("COURIER_DATABASE_URL")
    if url:
        yield url
        return
    folder = Path(tempfile.mkdtemp(prefix="courier-bench-pg-"))
    folder.chmod(0o755)  # the server may run as its own user: it must reach the folder
    embedded = EmbeddedPostgres(folder)
    try:
        yield embedded.start()
    finally:
        embedded.close()
        shutil.rmtree(folder, ignore_errors=True)


def with_dbname(url: str, dbname: str) -> str:
    return make_conninfo(url, dbname=dbname)


def admin_url(url: str) -> str:
    return make_conninfo(url, dbname=conninfo_to_dict(url).get("dbname") or "postgres")


def create_database(url: str, prefix: str, template: str | None = None) -> tuple[str, str]:
    """Create a database (optionally cloned from `template`); returns (name, url)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        if template:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            conn.execute(f'CREATE DATABASE "{name}"')
    return name, with_dbname(url, name)


def checkpoint(url: str) -> None:
    """Write out every dirty buffer now, so the next measurement does not pay for them."""
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def drop_database(url: str, name: str) -> None:
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_facts(url: str) -> dict[str, str]:
    """Version and the settings that decide durability and speed, for the report."""
    names = ["server_version", "synchronous_commit", "fsync", "shared_buffers", "wal_level"]
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        facts = {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}  # type: ignore[index]
    return facts
