"""Where the database is: COURIER_DATABASE_URL, or the embedded server."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Protocol

import psycopg

from courier.errors import CourierError
from courier.store.embedded import EmbeddedPostgres
from courier.store.queries import query

# The delivery engine's statements (claim, complete, leases) are written for index
# access. Statistics lag behind a young or freshly loaded table: the planner then
# expects the completion's fence (`locked_by = $worker`) to match one row and scans the
# whole table once per batch instead of probing the primary key, a cost that grows with
# the table. On the worker's own connections a sequential scan is the last resort.
logger = logging.getLogger("courier.store")


class DatabaseSettings(Protocol):
    """Where the database is, as courier.settings.Settings says (the store reads no more)."""

    @property
    def database_url(self) -> str | None: ...

    @property
    def database_direct_url(self) -> str | None: ...

    @property
    def data_dir(self) -> Path: ...


HOT_PATH_SETTINGS: Final = (("enable_seqscan", "off"),)


def hot_path_options(url: str) -> str:
    """libpq `options` for the worker's connections: the URL's own, then HOT_PATH_SETTINGS."""
    from psycopg.conninfo import conninfo_to_dict

    own = str(conninfo_to_dict(url).get("options") or "")
    ours = " ".join(f"-c {name}={value}" for name, value in HOT_PATH_SETTINGS)
    return f"{own} {ours}".strip()


class DatabaseUnavailable(CourierError, RuntimeError):
    """The database cannot be reached; the message is one clear line, free of secrets."""


# What a URL naming several servers must ask for, so that libpq skips a standby.
WRITABLE_SESSION_ATTRS: Final = frozenset({"read-write", "primary"})


def check_multi_host(url: str) -> None:
    """Refuse a URL that names several servers without asking for the writable one.

    libpq connects to the first server that answers. After a failover that can be the
    old primary, rebuilt as a read-only standby: every write would fail there, and
    reconnecting would land on it again. `target_session_attrs=read-write` (or
    `primary`, in the URL or PGTARGETSESSIONATTRS) makes libpq pass over it. Raises
    ValueError (one line, the URL not echoed); an unparseable URL is left to connect.
    """
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except Exception:  # connecting reports it, without echoing the URL either
        return
    servers = max(len(str(params.get(key) or "").split(",")) for key in ("host", "hostaddr"))
    attrs = params.get("target_session_attrs") or os.environ.get("PGTARGETSESSIONATTRS")
    if servers > 1 and attrs not in WRITABLE_SESSION_ATTRS:
        raise ValueError(
            f"COURIER_DATABASE_URL names {servers} servers but not "
            "target_session_attrs=read-write: courier could connect to a read-only "
            "standby; add target_session_attrs=read-write to the URL"
        )


CONNECT_TIMEOUT = 10  # seconds, for the check before a command starts
WAIT_INITIAL_S = 0.5  # first pause while waiting for a server that is starting
WAIT_MAX_S = 5.0


def unreachable(url: str, exc: Exception) -> DatabaseUnavailable:
    """One line: where the database is (no credentials) and PostgreSQL's own reason."""
    return DatabaseUnavailable(
        f"cannot reach the database at {describe_url(url)}: {reason(url, exc)}"
    )


def reason(url: str, exc: Exception) -> str:
    """The server's (or libpq's) reason from a connection error, one line, password redacted.

    libpq writes `connection to server at "h", port p failed: FATAL:  <reason>`; the
    reason is what an operator needs (`database "x" does not exist`).
    """
    from psycopg.conninfo import conninfo_to_dict

    from courier.redact import redact

    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    for marker in ("FATAL:", " failed: ", "connection failed: "):
        if marker in first:
            first = first.rsplit(marker, 1)[1]
    try:
        password = str(conninfo_to_dict(url).get("password") or "")
    except Exception:
        password = ""
    return redact(first.strip(), [password] if password else [])


# A server that is starting, stopping or full, or not listening yet: worth waiting for.
# Anything else (a wrong password, role, database or host name) is not.
TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
TRANSIENT_REASONS = ("Connection refused", "server closed the connection", "the database system is")


def is_transient(exc: Exception) -> bool:
    """Whether a failed connection may succeed soon without anyone changing anything."""
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate in TRANSIENT_SQLSTATES:
        return True
    return sqlstate is None and any(marker in str(exc) for marker in TRANSIENT_REASONS)


def check_reachable(url: str, wait_s: float = 0.0) -> None:
    """Connect once, so a wrong URL, role or database fails before anything starts.

    With `wait_s`, a server that is only starting, restarting or not yet listening is
    waited for (logged) for up to that long: a worker started during a database restart
    or before its database is up starts when it can, instead of exiting.
    """
    import psycopg

    deadline = time.monotonic() + wait_s
    delay = WAIT_INITIAL_S
    while True:
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT):
                return
        except psycopg.Error as exc:
            left = deadline - time.monotonic()
            if not is_transient(exc) or left < delay:
                raise unreachable(url, exc) from None
            logger.warning(
                "database at %s not reachable yet (%s); waiting up to %.0fs more",
                describe_url(url),
                reason(url, exc),
                left,
            )
        time.sleep(delay)
        delay = min(delay * 2, WAIT_MAX_S)


@contextmanager
def database_url(settings: DatabaseSettings, wait_s: float = 0.0) -> Iterator[str]:
    """Yield a connection URL, starting (and finally releasing) the embedded server if needed.

    A configured URL is checked first: a command fails with the server's reason in one
    line rather than part-way through its work.
    """
    if settings.database_url:
        check_multi_host(settings.database_url)
        check_reachable(settings.database_url, wait_s)
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


async def ping(conn: psycopg.AsyncConnection[Any]) -> None:
    """One empty round trip: the database answers (readiness probes)."""
    await conn.execute(query("api_ping"))
