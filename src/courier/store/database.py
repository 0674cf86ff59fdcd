"""Where the database is: COURIER_DATABASE_URL, or the embedded server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from courier.settings import Settings
from courier.store.embedded import EmbeddedPostgres

# The delivery engine's statements (claim, complete, leases) are written for index
# access. Statistics lag behind a young or freshly loaded table: the planner then
# expects the completion's fence (`locked_by = $worker`) to match one row and scans the
# whole table once per batch instead of probing the primary key, a cost that grows with
# the table. On the worker's own connections a sequential scan is the last resort.
HOT_PATH_SETTINGS: Final = (("enable_seqscan", "off"),)


def hot_path_options(url: str) -> str:
    """libpq `options` for the worker's connections: the URL's own, then HOT_PATH_SETTINGS."""
    from psycopg.conninfo import conninfo_to_dict

    own = str(conninfo_to_dict(url).get("options") or "")
    ours = " ".join(f"-c {name}={value}" for name, value in HOT_PATH_SETTINGS)
    return f"{own} {ours}".strip()


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
