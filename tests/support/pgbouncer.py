"""A real PgBouncer in transaction-pooling mode in front of the test server.

Started from the Debian package's `pgbouncer` binary on a free loopback port, every
database name routed through (`* = host=... port=...`), trust authentication. It refuses
to run as root, so as root it runs as the `postgres` user (or as the owner of the
server's socket folder, for the embedded server). A small pool per database
makes consecutive transactions of one client land on different server sessions, which is
what breaks session state.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.support.ports import free_port as _free_port

START_TIMEOUT_S = 10.0  # seconds for PgBouncer to accept connections


@contextmanager
def pgbouncer(direct_server: str, pool_size: int = 2) -> Iterator[str]:
    """Run PgBouncer in front of `direct_server`'s server; yields its URL (same database)."""
    binary = shutil.which("pgbouncer")
    if binary is None:
        raise RuntimeError("pgbouncer is not installed (Debian: apt-get install -y pgbouncer)")
    params = conninfo_to_dict(direct_server)
    user = str(params.get("user") or "postgres")
    port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="courier-test-pgbouncer-"))
    folder.chmod(0o755)
    (folder / "users.txt").write_text(f'"{user}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={params.get('host') or '127.0.0.1'} port={params.get('port') or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        "pool_mode = transaction\nmax_client_conn = 500\n"
        f"default_pool_size = {pool_size}\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )
    command = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        # Over a Unix socket (the embedded server) only the socket folder's owner may
        # connect: run as that user; over TCP as `postgres`.
        host = str(params.get("host") or "")
        owner = Path(host).owner() if host.startswith("/") else "postgres"
        runner = owner if owner != "root" else "postgres"
        shutil.chown(folder, runner)
        command = ["runuser", "-u", runner, "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = make_conninfo(direct_server, host="127.0.0.1", port=str(port))
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(url, connect_timeout=2):
                    break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = folder / "pgbouncer.log"
                    raise RuntimeError(
                        "pgbouncer did not start: "
                        + (log.read_text()[-2000:] if log.exists() else "no log")
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)
