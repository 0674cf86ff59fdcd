"""A real tinyproxy on a free loopback port, from a temporary config, for the egress
proxy tests. Its log records each CONNECT it was asked for."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port

START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Tinyproxy:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connects(self) -> list[str]:
        """The `host:port` of every CONNECT request it received, in order."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            _, marker, rest = line.partition("Request (file descriptor ")
            if marker and "CONNECT " in rest:
                found.append(rest.split("CONNECT ", 1)[1].split(" ", 1)[0])
        return found


@contextmanager
def tinyproxy(folder: Path, connect_ports: Sequence[int] = ()) -> Iterator[Tinyproxy]:
    """tinyproxy allowing CONNECT to any port (or only `connect_ports`), from 127.0.0.1."""
    binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    port = free_port()
    log = folder / "tinyproxy.log"
    config = folder / "tinyproxy.conf"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 30",
        "MaxClients 50",
        "Allow 127.0.0.1",
        "LogLevel Connect",
        f'LogFile "{log}"',
        f'PidFile "{folder / "tinyproxy.pid"}"',
        # no ConnectPort line: CONNECT to any port is allowed
        *(f"ConnectPort {p}" for p in connect_ports),
    ]
    config.write_text("\n".join(lines) + "\n")
    log.touch()
    process = subprocess.Popen(
        [binary, "-d", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tinyproxy did not start: {log.read_text()}") from None
                time.sleep(0.05)
        yield Tinyproxy(port, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
