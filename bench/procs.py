"""Child processes of the benchmark: start, wait until ready, sample RSS, stop.

Every child writes its output to a log file in the run's folder, so a failing
worker leaves evidence, and the orchestrator reads readiness from that file.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

READY_TIMEOUT = 30.0  # seconds a child gets to print its ready marker
STOP_TIMEOUT = 15.0  # seconds between SIGTERM and SIGKILL
RSS_SAMPLE_INTERVAL = 0.1  # seconds


class ChildFailed(RuntimeError):
    pass


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        try:
            return self.log.read_text("utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


_spawned = itertools.count(1)


def spawn(name: str, argv: Sequence[str], env: dict[str, str], log_dir: Path) -> Child:
    log = log_dir / f"{next(_spawned):03d}-{name}.log"  # numbered: one file per process
    full_env = {**os.environ, **env}
    with log.open("wb") as out:
        popen = subprocess.Popen(
            list(argv), env=full_env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return Child(name, popen, log)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def wait_ready(children: Sequence[Child], marker: str, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    pending = list(children)
    while pending:
        for child in list(pending):
            if marker in child.output():
                pending.remove(child)
            elif child.popen.poll() is not None:
                raise ChildFailed(f"{child.name} exited early:\n{child.tail()}")
        if time.monotonic() > deadline:
            names = ", ".join(c.name for c in pending)
            raise ChildFailed(f"{names} not ready after {timeout:.0f}s:\n{pending[0].tail()}")
        time.sleep(0.05)


def free_port() -> int:
    """A loopback port free right now, for a server the bench starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_healthz(base: str, child: Child, timeout: float = READY_TIMEOUT) -> None:
    """Until `courier serve` at `base` answers /healthz with 200 (or `child` exits)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if child.popen.poll() is not None:
                break
            try:
                async with session.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"`courier serve` did not answer: {child.tail(5)}")


def stop(children: Sequence[Child], timeout: float = STOP_TIMEOUT) -> None:
    for child in children:
        if child.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            child.popen.wait(remaining)
        except subprocess.TimeoutExpired:
            child.popen.kill()
            child.popen.wait()


@dataclass
class RssSampler:
    """Polls the resident set size of some processes until stopped; keeps the peak."""

    pids: list[int]
    peak: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        procs = {pid: psutil.Process(pid) for pid in self.pids}
        while not self._stop.is_set():
            for pid, proc in procs.items():
                with contextlib.suppress(psutil.Error):
                    rss = int(proc.memory_info().rss)
                    if rss > self.peak.get(pid, 0):
                        self.peak[pid] = rss
            self._stop.wait(RSS_SAMPLE_INTERVAL)

    @property
    def max_mb(self) -> float:
        """The largest peak of any one process, in MiB."""
        return max(self.peak.values(), default=0) / 2**20
