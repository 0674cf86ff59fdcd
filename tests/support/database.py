"""Test databases: one PostgreSQL server per session, a migrated template, a clone per test.

The server is COURIER_DATABASE_URL's when set, else an embedded one in a temp folder.
With COURIER_DATABASE_DIRECT_URL set too, COURIER_DATABASE_URL is a transaction-mode
pooler in front of that server (`make test-pgbouncer`): the code under test gets the
pooler's URL, while databases are created, dropped and inspected directly.
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


# Read once and taken out of the environment: it names the server (its `postgres`
# database), while what the code under test and its subprocesses must see is each test
# database's own direct URL, set per test by the `db_url` fixture.
DIRECT_SERVER = os.environ.pop("COURIER_DATABASE_DIRECT_URL", None) or None


def direct_server_url(url: str) -> str:
    """The server itself, past the pooler when one is configured."""
    return DIRECT_SERVER or url


def direct(url: str) -> str:
    """The same database as `url`, reached past the pooler (if any): for a test's own
    reads and writes, which may prepare statements or keep session state."""
    server = DIRECT_SERVER
    if not server or _address(url) == _address(server):
        return url  # no pooler, or already direct
    return with_dbname(server, str(conninfo_to_dict(url).get("dbname") or ""))


def _address(url: str) -> tuple[str, str]:
    params = conninfo_to_dict(url)
    return str(params.get("host") or ""), str(params.get("port") or "5432")


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
