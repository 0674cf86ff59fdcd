"""Fault injection for chaos tests: a receiver that answers at random and records every
request, and a pool of real `courier worker` processes that can be SIGKILLed.

The receiver decides a *plan* per delivery (path + webhook-id), seeded, so the answer to
the n-th request for a delivery does not depend on arrival order:

- eventual success: k retryable answers (500, 429, timeout, reset), then 2xx for ever
  (now and then a 2xx whose connection is reset before the answer is written: the
  receiver accepted it, the worker never learns; a legitimate at-least-once duplicate);
- permanent: k retryable answers, then 400 for ever;
- doomed: retryable answers for ever.

Because every plan ends in an answer it repeats for ever, the state a delivery must end
in follows from the last answer the receiver gave it, whatever workers died or how the
database came and went in between (see `implied_state`).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

Kind = Literal["ok", "ok_reset", "500", "429", "timeout", "reset", "400", "paused"]
RETRYABLE_KINDS: tuple[Kind, ...] = ("500", "429", "timeout", "reset")
RETRYABLE_WEIGHTS = (45, 20, 15, 20)
SUCCESS_KINDS: frozenset[Kind] = frozenset({"ok", "ok_reset"})  # the receiver accepted it
OK_PREFIXES = (0, 0, 0, 0, 1, 1, 2, 3)  # most eventual successes succeed at once
STATUS_OF: Mapping[Kind, int] = {"ok": 200, "500": 500, "429": 429, "400": 400}


@dataclass(frozen=True)
class PlanMix:
    """Shares of plans (the rest are eventual successes) and the retryable prefix."""

    permanent: float = 0.07
    doomed: float = 0.08
    max_prefix: int = 3  # retryable answers before the terminal phase, 0..max_prefix
    ok_reset: float = 0.05  # share of terminal 2xx answers whose connection is then reset


@dataclass
class Record:
    path: str
    webhook_id: str
    n: int  # the receiver's request count for this delivery before this one (paused: -1)
    kind: Kind
    at: float  # time.time() on arrival


def _reset(request: web.Request) -> None:
    """Close the connection with a TCP RST: the client sees `connection reset by peer`."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@dataclass
class ChaosReceiver:
    seed: int
    hang_s: float  # a `timeout` answer waits this long (more than the destinations' timeout)
    mix: PlanMix = field(default_factory=PlanMix)
    records: list[Record] = field(default_factory=list)
    paused: bool = False
    port: int = 0
    _counts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None

    # -- the plan ------------------------------------------------------------------------

    def answer(self, path: str, webhook_id: str, n: int) -> Kind:
        plan = random.Random(f"{self.seed}:{path}:{webhook_id}")
        roll = plan.random()
        terminal: Kind
        if roll < self.mix.doomed:
            terminal = "500"  # never used: doomed plans stay retryable
            prefix = 10**9
        elif roll < self.mix.doomed + self.mix.permanent:
            terminal, prefix = "400", plan.randint(0, self.mix.max_prefix)
        else:
            terminal = "ok"
            prefix = min(plan.choice(OK_PREFIXES), self.mix.max_prefix)
        this = random.Random(f"{self.seed}:{path}:{webhook_id}:{n}")
        if n < prefix:
            return this.choices(RETRYABLE_KINDS, RETRYABLE_WEIGHTS)[0]
        if terminal == "ok" and this.random() < self.mix.ok_reset:
            return "ok_reset"
        return terminal

    # -- HTTP ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        webhook_id = request.headers.get("webhook-id", "")
        key = (request.path, webhook_id)
        if self.paused:
            self.records.append(Record(request.path, webhook_id, -1, "paused", time.time()))
            _reset(request)
            return web.Response(status=503)  # never written: the connection is gone
        n = self._counts[key]
        self._counts[key] = n + 1
        kind = self.answer(request.path, webhook_id, n)
        self.records.append(Record(request.path, webhook_id, n, kind, time.time()))
        if kind in ("reset", "ok_reset"):
            _reset(request)
            return web.Response(status=200)  # never written
        if kind == "timeout":
            await asyncio.sleep(self.hang_s)  # the worker gives up first
            return web.Response(status=200, text="too late")
        if kind == "429":
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(status=STATUS_OF[kind])

    async def start(self) -> ChaosReceiver:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await self._listen()
        return self

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        server: Any = self._site._server  # aiohttp keeps the listening server here
        assert server is not None and server.sockets
        self.port = int(server.sockets[0].getsockname()[1])

    async def pause(self) -> None:
        """Stop listening (new connections are refused) and reset requests that still
        arrive on open keep-alive connections, until `resume`."""
        self.paused = True
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def resume(self) -> None:
        await self._listen()
        self.paused = False

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # -- reading the log -----------------------------------------------------------------

    def by_delivery(self) -> dict[tuple[str, str], list[Record]]:
        """Answered requests (not the paused ones) per (path, webhook-id), in order."""
        out: dict[tuple[str, str], list[Record]] = defaultdict(list)
        for r in self.records:
            if r.kind != "paused":
                out[(r.path, r.webhook_id)].append(r)
        for rows in out.values():
            rows.sort(key=lambda r: r.n)
        return out

    def kinds(self) -> Counter[str]:
        return Counter(r.kind for r in self.records)


def implied_state(records: list[Record]) -> str:
    """The terminal state the receiver's answers imply.

    Every plan ends in an answer repeated for ever, so the last answer decides: a clean
    2xx means delivered, a 400 failed, anything retryable (including a 2xx whose
    connection was reset) means the budget ran out: dead-lettered. No answer at all
    (every attempt refused) also means dead-lettered.
    """
    if not records:
        return "dead_lettered"
    last = records[-1].kind
    if last == "ok":
        return "delivered"
    if last == "400":
        return "failed"
    return "dead_lettered"


# -- worker processes -------------------------------------------------------------------


@dataclass
class WorkerPool:
    """Real `courier worker` processes, logging to files (a pipe nobody reads can fill
    up and stall a chatty worker)."""

    db_url: str
    secret_key: str
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    live: list[subprocess.Popen[bytes]] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    crashed: list[tuple[int, int | None]] = field(default_factory=list)
    started: int = 0
    ids: dict[int, str] = field(default_factory=dict)  # pid -> COURIER_WORKER_ID

    def start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        log = (self.log_dir / f"worker-{self.started}.log").open("wb")
        env = {
            **os.environ,
            "COURIER_DATABASE_URL": self.db_url,
            "COURIER_SECRET_KEY": self.secret_key,
            "COURIER_WORKER_TENANTS": "*",
            "COURIER_WORKER_POLL_INTERVAL": "0.2",
            "COURIER_WORKER_LEASE_SECONDS": "4",
            "COURIER_WORKER_SHUTDOWN_GRACE_SECONDS": "2",
            "COURIER_WORKER_ID": f"chaos-{self.started}",  # the lock owner name
            "COURIER_ALLOW_PRIVATE_DESTINATIONS": "true",
            "COURIER_LOG_FORMAT": "json",
            **self.env,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "courier", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.live.append(proc)
        self.ids[proc.pid] = f"chaos-{self.started}"
        return proc

    def check(self) -> None:
        """Record workers that died without being killed (a crash)."""
        for proc in list(self.live):
            code = proc.poll()
            if code is not None:
                self.crashed.append((proc.pid, code))
                self.live.remove(proc)

    def kill_one(self, rng: random.Random, busy: Mapping[str, int] | None = None) -> int:
        """SIGKILL a random worker, preferring those that hold leases (`busy`: worker id
        -> deliveries in flight), so the kill really loses in-flight attempts."""
        holding = [p for p in self.live if (busy or {}).get(self.ids[p.pid], 0) > 0]
        proc = rng.choice(holding or self.live)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self.live.remove(proc)
        self.killed.append(proc.pid)
        return proc.pid

    def stop_all(self, timeout: float = 30.0) -> dict[int, int | None]:
        """SIGTERM, wait, SIGKILL stragglers; returns pid -> exit code (None: killed)."""
        for proc in self.live:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[int, int | None] = {}
        deadline = time.monotonic() + timeout
        for proc in self.live:
            try:
                codes[proc.pid] = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                codes[proc.pid] = None
        self.live.clear()
        return codes

    def log_lines(self, needle: str) -> int:
        total = 0
        for path in self.log_dir.glob("worker-*.log"):
            total += sum(
                1 for line in path.read_text(errors="replace").splitlines() if needle in line
            )
        return total

    def levels(self) -> dict[str, int]:
        """Worker log lines by level (JSON logs); `other` counts non-JSON lines."""
        counts: Counter[str] = Counter()
        for path in self.log_dir.glob("worker-*.log"):
            for line in path.read_text(errors="replace").splitlines():
                match = re.search(r'"level":\s*"(\w+)"', line)
                counts[match.group(1) if match else "other"] += 1
        return dict(counts)

    def tail(self, lines: int = 20) -> str:
        out: list[str] = []
        for path in sorted(self.log_dir.glob("worker-*.log")):
            text = path.read_text(errors="replace").splitlines()
            out.append(f"--- {path.name} ---")
            out.extend(text[-lines:])
        return "\n".join(out)
