"""A PostgreSQL primary with a synchronous streaming standby, built from the machine's
PostgreSQL 15 binaries, that a test can crash (SIGKILL) and fail over (pg_ctl promote).

The two servers listen on two fixed loopback ports for the whole run, so one multi-host
URL (`host=127.0.0.1,127.0.0.1 port=P1,P2 target_session_attrs=read-write`) stays valid
across any number of failovers: after a promotion the crashed server's data is thrown
away and a new standby is cloned from the new primary (pg_basebackup) on the crashed
server's port. The roles alternate between the ports, round after round.

Durability: `synchronous_standby_names = '*'` with `synchronous_commit = on`. A commit
is acknowledged only once the standby has flushed its WAL to disk, and a promotion
replays all flushed WAL before it accepts writes, so an acknowledged commit survives the
loss of the primary. `remote_apply` would also wait until the standby has *applied* it,
which only matters to readers of the standby; courier reads and writes on the primary
only (`target_session_attrs=read-write`), so `on` gives the guarantee for less latency.

After a promotion there is no standby until the next clone attaches. The new primary
then commits without waiting (its copied configuration names no synchronous standby),
as an operator tool such as Patroni does in its non-strict synchronous mode: the
alternative, refusing every write until a new standby exists, is an outage. Synchronous
replication is switched back on (ALTER SYSTEM, reload) once the new standby streams.

PostgreSQL refuses to run as root: as root, every server command runs as the `postgres`
system user, which owns the folders.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg

PG_BIN = Path(os.environ.get("COURIER_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"  # the system user the servers run as when we are root
COMMAND_TIMEOUT = 120.0  # seconds for one initdb / pg_ctl / pg_basebackup
SYNC_TIMEOUT = 60.0  # seconds for a new standby to stream synchronously
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "synchronous_commit": "on",
    "wal_level": "replica",
    "max_wal_senders": "5",
    "hot_standby": "on",
    "max_connections": "200",
    "shared_buffers": "32MB",
    "wal_keep_size": "64MB",
}


def available() -> bool:
    return all((PG_BIN / tool).exists() for tool in ("initdb", "pg_ctl", "pg_basebackup"))


@dataclass
class Node:
    port: int
    datadir: Path

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


@dataclass
class Cluster:
    """A primary and (between a promotion and the next clone: no) synchronous standby."""

    root: Path
    ports: tuple[int, int]
    primary: Node | None = None
    standby: Node | None = None
    generation: int = 0  # data folders are never reused: each clone gets a new one
    log: list[str] = field(default_factory=list)

    # -- running the server tools --------------------------------------------------------

    def _run(self, tool: str, *args: str) -> str:
        user = SERVER_USER if os.geteuid() == 0 else None
        done = subprocess.run(
            [str(PG_BIN / tool), *args],
            user=user,
            cwd=self.root,  # the server user may not be able to read the caller's folder
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} exited {done.returncode}: {done.stderr.decode(errors='replace')}"
            )
        return done.stdout.decode(errors="replace")

    def _new_datadir(self) -> Path:
        self.generation += 1
        path = self.root / f"data-{self.generation}"
        return path

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _start(self, node: Node) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(node.datadir),
            "-l",
            str(node.datadir.with_suffix(".log")),
            "-o",
            f"-p {node.port} -k {self.root}",
            "-w",
            "-t",
            "60",
            "start",
        )

    def url(self, dbname: str) -> str:
        """The multi-host URL every courier process uses, whichever server is primary."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        return f"postgresql://postgres@{hosts}/{dbname}?target_session_attrs=read-write"

    # -- building ------------------------------------------------------------------------

    def start(self) -> None:
        """initdb and start the primary on the first port, then clone the standby."""
        self.root.chmod(0o755)
        self._own(self.root)
        node = Node(self.ports[0], self._new_datadir())
        self._run("initdb", "-D", str(node.datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (node.datadir / "postgresql.conf").open("a") as conf:
            for name, value in SETTINGS.items():
                conf.write(f"{name} = {value}\n")
        self._start(node)
        self.primary = node
        self.add_standby()

    def add_standby(self) -> float:
        """Clone the primary onto the free port, start it, make it the synchronous
        standby; returns the seconds it took."""
        began = time.monotonic()
        assert self.primary is not None and self.standby is None
        port = next(p for p in self.ports if p != self.primary.port)
        node = Node(port, self._new_datadir())
        # The clone copies postgresql.auto.conf as it is now; the primary names no
        # synchronous standby until this one streams, so the clone names none either.
        self._run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary.port),
            "-U",
            "postgres",
            "-D",
            str(node.datadir),
            "-R",  # standby.signal and primary_conninfo
            "-X",
            "stream",
            "-c",
            "fast",
        )
        self._start(node)
        self.standby = node
        with psycopg.connect(self.primary.url(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            conn.execute("SELECT pg_reload_conf()")
            deadline = time.monotonic() + SYNC_TIMEOUT
            while True:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_replication"
                    " WHERE sync_state = 'sync' AND state = 'streaming'"
                ).fetchone()
                if row is not None and row[0] >= 1:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the new standby did not become synchronous")
                time.sleep(0.05)
        took = time.monotonic() - began
        self.log.append(f"standby cloned on port {port} ({took:.1f}s)")
        return took

    # -- failing over ------------------------------------------------------------------

    def kill_primary(self) -> float:
        """SIGKILL the primary's postmaster and every backend at once, as a machine
        that loses power would; returns when (time.monotonic()) the last signal went.
        Waits until the processes are gone, so the port is free for the next clone."""
        assert self.primary is not None
        pid = self.primary.postmaster_pid()
        assert pid is not None, "the primary is not running"
        master = psutil.Process(pid)
        # Frozen first, the postmaster forks no backend between the listing and the
        # kill; the backends die before it, so none outlives it long enough to tell its
        # client "terminating connection due to unexpected postmaster exit".
        master.send_signal(signal.SIGSTOP)
        victims = [*master.children(recursive=True), master]
        for proc in victims:
            proc.send_signal(signal.SIGKILL)
        signalled = time.monotonic()
        psutil.wait_procs(victims, timeout=10)
        self.log.append(f"SIGKILL primary on port {self.primary.port} (pid {pid})")
        self.primary = None
        return signalled

    def promote(self) -> None:
        """Promote the standby; waits until it accepts writes."""
        assert self.standby is not None and self.primary is None
        self._run("pg_ctl", "-D", str(self.standby.datadir), "-w", "-t", "60", "promote")
        self.primary, self.standby = self.standby, None
        self.log.append(f"promoted the standby on port {self.primary.port}")

    def discard_dead(self) -> None:
        """Remove the data folders of servers that no longer run."""
        live = {n.datadir for n in (self.primary, self.standby) if n is not None}
        for path in self.root.glob("data-*"):
            if path.is_dir() and path not in live:
                shutil.rmtree(path, ignore_errors=True)

    def stop(self) -> None:
        for node in (self.standby, self.primary):
            if node is not None and node.postmaster_pid() is not None:
                try:
                    self._run("pg_ctl", "-D", str(node.datadir), "-m", "immediate", "stop")
                except (RuntimeError, subprocess.TimeoutExpired):
                    pid = node.postmaster_pid()
                    if pid is not None:
                        os.kill(pid, signal.SIGKILL)
        self.primary = self.standby = None
