"""Test databases: one PostgreSQL server per session, a migrated template, a clone per test.

The server is COURIER_DATABASE_URL's when set, else an embedded one in a temp folder.
"""

from __future__ import annotations

import os
import stat
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from courier.store.embedded import EmbeddedPostgres
from courier.store.migrate import migrate


def with_dbname(url: str, dbname: str) -> str:
    return make_conninfo(url, dbname=dbname)


@contextmanager
def server_url() -> Iterator[tuple[str, EmbeddedPostgres | None]]:
    url = os.environ.get("COURIER_DATABASE_URL")
    if url:
        yield url, None
        return
    folder = Path(tempfile.mkdtemp(prefix="courier-test-pg-"))
    folder.chmod(folder.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
    embedded = EmbeddedPostgres(folder)
    try:
        yield embedded.start(), embedded
    finally:
        embedded.close()


def admin_url(url: str) -> str:
    """A URL on the same server for CREATE/DROP DATABASE (the `postgres` database)."""
    params = conninfo_to_dict(url)
    return make_conninfo(url, dbname=params.get("dbname") or "postgres")


def create_database(url: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        if template:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        else:
            conn.execute(f'CREATE DATABASE "{name}"')
    return with_dbname(url, name)


def drop_database(url: str, name: str) -> None:
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_template(url: str) -> str:
    name = f"courier_tpl_{uuid.uuid4().hex[:10]}"
    template_url = create_database(url, name)
    migrate(template_url)
    return name
