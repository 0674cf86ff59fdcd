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
    """The URL without its password, for messages."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable database URL>"
    host = parts.hostname or "local socket"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
