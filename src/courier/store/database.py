"""Where the database is: COURIER_DATABASE_URL, or the embedded server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from courier.settings import Settings
from courier.store.embedded import EmbeddedPostgres


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached; the message is one clear line, free of secrets."""


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """Yield a connection URL, starting (and finally releasing) the embedded server if needed."""
    if settings.database_url:
        yield settings.database_url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    try:
        yield embedded.start()
    finally:
        embedded.close()


def describe_url(url: str) -> str:
    """Where a connection string points, without user or password: safe for messages."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except Exception:  # an unparseable string is still never echoed back
        return "<unparseable database URL>"
    host = str(params.get("host") or "local socket")
    port = f":{params['port']}" if params.get("port") else ""
    dbname = str(params.get("dbname") or "")
    return f"postgresql://{host}{port}/{dbname}"
