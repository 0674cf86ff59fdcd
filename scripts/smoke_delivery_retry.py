#!/usr/bin/env python3
"""End-to-end smoke test of delivery and retry against a real courier stack.

    .venv/bin/python scripts/smoke_delivery_retry.py      # or: make smoke-delivery-retry

Starts `courier serve` and two `courier worker` processes on PostgreSQL
(COURIER_DATABASE_URL when set, else the embedded server in a fresh temporary
COURIER_DATA_DIR that all the processes share), runs a loopback receiver with a
scripted behaviour per path, and drives everything only through the CLI
(`courier migrate`, `courier tenants create`) and the HTTP API. Each scenario's end
state, attempts, retryability and dead-letter reason are read back through
`GET /v1/deliveries/{id}` and `GET /v1/dead-letters`, then printed as a table.

Exits 0 when every check passes, 1 on any mismatch, 2 when the stack cannot start.
Every process it started is stopped on the way out (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from courier.crypto import generate_key

STARTUP_TIMEOUT = 45.0  # seconds for the API to answer /readyz
SETTLE_TIMEOUT = 30.0  # seconds for every delivery to reach a terminal state
STOP_TIMEOUT = 10.0  # seconds a process gets after SIGTERM before SIGKILL
CLI_TIMEOUT = 60.0  # seconds for one CLI command
POLL_S = 0.2  # seconds between API polls
TERMINAL = frozenset({"delivered", "failed", "dead_lettered"})

# Every destination: short and bounded, so the whole run takes seconds.
POLICY: dict[str, int] = {
    "max_attempts": 3,
    "backoff_initial_ms": 100,
    "backoff_max_ms": 500,
    "timeout_ms": 1000,
}
HANG_S = 3.0  # the hanging path answers after this long, well past timeout_ms
RETRY_AFTER_S = 1  # the throttled path's Retry-After
# The throttled destination may wait up to 2 s, so Retry-After: 1 is honoured in full
# (with backoff_max_ms=500 it would be capped at 0.5 s). Without Retry-After the second
# attempt would follow after ~0.1 s.
THROTTLED_BACKOFF_MAX_MS = 2000


# -- the receiver ------------------------------------------------------------------------


@dataclass
class Hit:
    path: str
    webhook_id: str
    at: float  # time.monotonic() when the request arrived
    status: int | None  # what we answered (None: we hung until the caller gave up)
    signature_ok: bool


Behaviour = Callable[[int], Awaitable[web.Response]]  # n-th request for one webhook-id


async def _status(status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, headers=headers, text=f"status {status}")


async def _hang(_: int) -> web.Response:
    await asyncio.sleep(HANG_S)
    return web.Response(status=200, text="too late")


BEHAVIOURS: dict[str, Behaviour] = {
    "/ok": lambda n: _status(200),
    "/flaky": lambda n: _status(500 if n <= 2 else 200),
    "/down": lambda n: _status(503),
    "/bad": lambda n: _status(400),
    "/throttled": lambda n: _status(
        429 if n == 1 else 200, {"Retry-After": str(RETRY_AFTER_S)} if n == 1 else None
    ),
    "/hang": _hang,
}


@dataclass
class Receiver:
    """A loopback HTTP server answering per path and per webhook-id, recording everything."""

    secrets: dict[str, str] = field(default_factory=dict)  # path -> whsec_ secret
    hits: list[Hit] = field(default_factory=list)
    _seen: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    _runner: web.AppRunner | None = None
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits_for(self, webhook_id: str) -> list[Hit]:
        return [h for h in self.hits if h.webhook_id == webhook_id]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        webhook_id = request.headers.get("webhook-id", "")
        key = (request.path, webhook_id)
        self._seen[key] += 1
        hit = Hit(
            path=request.path,
            webhook_id=webhook_id,
            at=time.monotonic(),
            status=None,
            signature_ok=_verify(self.secrets.get(request.path), request.headers, body),
        )
        self.hits.append(hit)
        behaviour = BEHAVIOURS.get(request.path)
        if behaviour is None:
            hit.status = 404
            return web.Response(status=404)
        response = await behaviour(self._seen[key])
        hit.status = response.status
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = _bound_port(site)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _bound_port(site: web.TCPSite) -> int:
    server: Any = site._server  # aiohttp keeps the listening server here
    return int(server.sockets[0].getsockname()[1])


def _verify(secret: str | None, headers: Any, body: bytes) -> bool:
    """Standard Webhooks: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">."""
    if not secret or not secret.startswith("whsec_"):
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [s.partition(",")[2] for s in headers.get("webhook-signature", "").split()]
    return any(hmac.compare_digest(expected, o) for o in offered)


# -- scenarios ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    path: str
    what: str
    state: str
    outcomes: tuple[str, ...]  # attempt outcomes, oldest first
    statuses: tuple[int | None, ...]  # attempt http_status, oldest first
    reason: str | None = None  # dead_letter_reason or failure_reason
    min_gap_s: float | None = None  # least time between the receiver's 1st and 2nd request
    backoff_max_ms: int = POLICY["backoff_max_ms"]


RETRY = "retryable_failure"
SCENARIOS: tuple[Expect, ...] = (
    Expect("/ok", "2xx at once", "delivered", ("succeeded",), (200,)),
    Expect(
        "/flaky",
        "500, 500, then 200",
        "delivered",
        (RETRY, RETRY, "succeeded"),
        (500, 500, 200),
    ),
    Expect(
        "/down",
        "always 503",
        "dead_lettered",
        (RETRY, RETRY, RETRY),
        (503, 503, 503),
        reason="max_attempts_exhausted",
    ),
    Expect(
        "/bad",
        "400",
        "failed",
        ("permanent_failure",),
        (400,),
        reason="permanent_failure",
    ),
    Expect(
        "/throttled",
        f"429 Retry-After: {RETRY_AFTER_S}, then 200",
        "delivered",
        (RETRY, "succeeded"),
        (429, 200),
        min_gap_s=RETRY_AFTER_S * 0.95,
        backoff_max_ms=THROTTLED_BACKOFF_MAX_MS,
    ),
    Expect(
        "/hang",
        f"hangs {HANG_S:g}s (timeout {POLICY['timeout_ms']}ms)",
        "dead_lettered",
        (RETRY, RETRY, RETRY),
        (None, None, None),
        reason="max_attempts_exhausted",
    ),
)
EVENTS_PER_SCENARIO = 2


# -- processes ---------------------------------------------------------------------------


@dataclass
class Stack:
    env: dict[str, str]
    logs: Path
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "courier", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C at the terminal reaches only us
        )
        log.close()
        self.processes.append((name, proc))
        return proc

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "courier", *args],
            env=self.env,
            capture_output=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise StackError(
                f"`courier {' '.join(args)}` exited {done.returncode}: "
                f"{done.stderr.decode(errors='replace').strip()}"
            )
        return done.stdout.decode()

    def check_alive(self) -> None:
        for name, proc in self.processes:
            if proc.poll() is not None:
                raise StackError(f"{name} exited early with {proc.returncode}; see {self.logs}")

    def stop(self) -> list[str]:
        """SIGTERM everything, SIGKILL what is left after STOP_TIMEOUT; report the exits."""
        report: list[str] = []
        for _, proc in self.processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, proc in self.processes:
            try:
                code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                report.append(f"{name} (pid {proc.pid}): exit {code}")
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                report.append(f"{name} (pid {proc.pid}): killed after {STOP_TIMEOUT:g}s")
        return report

    def tail_logs(self, lines: int = 15) -> None:
        for name, _ in self.processes:
            path = self.logs / f"{name}.log"
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            print(f"--- last {lines} lines of {name}.log ---", file=sys.stderr)
            for line in text[-lines:]:
                print(f"    {line}", file=sys.stderr)


class StackError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_embedded(data_dir: Path) -> str | None:
    """Belt and braces: if the embedded server outlived its last user, stop it (fast).

    Returns a note when it had to, naming the handles still registered on the data dir.
    """
    pgdata = data_dir / "pgdata"
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    handles = pgdata / ".handle_pids.json"
    holders = handles.read_text().strip() if handles.exists() else "?"
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return None
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return f"the embedded server outlived its processes (handles left: {holders}); stopped it"


# -- the API -----------------------------------------------------------------------------


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str, key: str) -> None:
        self.session = session
        self.base = base
        self.headers = {"Authorization": f"Bearer {key}"}

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        async with self.session.request(
            method, self.base + path, json=body, headers=self.headers
        ) as resp:
            data = await resp.json(content_type=None)
            if resp.status != expect:
                raise StackError(f"{method} {path} answered {resp.status}: {data}")
            return data


async def _wait_ready(session: aiohttp.ClientSession, base: str, stack: Stack) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        stack.check_alive()
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with session.get(base + "/readyz") as resp:
                if resp.status == 200:
                    return
        if time.monotonic() > deadline:
            raise StackError(f"the API at {base} was not ready after {STARTUP_TIMEOUT:g}s")
        await asyncio.sleep(POLL_S)


# -- the run -----------------------------------------------------------------------------


@dataclass
class Row:
    scenario: Expect
    delivery_id: str
    event_id: str
    state: str = "?"
    attempts: int = 0
    outcomes: str = ""
    statuses: str = ""
    retryable: str = ""
    reason: str = ""
    receiver_hits: int = 0
    problems: list[str] = field(default_factory=list)


def _check(row: Row, delivery: dict[str, Any], receiver: Receiver, dead: set[str]) -> None:
    exp = row.scenario
    attempts = delivery["attempts"]
    row.state = delivery["state"]
    row.attempts = delivery["attempt_count"]
    row.outcomes = ",".join(str(a["outcome"]) for a in attempts)
    row.statuses = ",".join(
        "-" if a["http_status"] is None else str(a["http_status"]) for a in attempts
    )
    row.retryable = "".join("y" if a["retryable"] else "n" for a in attempts)
    row.reason = delivery.get("dead_letter_reason") or delivery.get("failure_reason") or ""
    hits = receiver.hits_for(row.event_id)
    row.receiver_hits = len(hits)
    problems = row.problems

    def expect(label: str, got: Any, want: Any) -> None:
        if got != want:
            problems.append(f"{label}: got {got!r}, expected {want!r}")

    expect("state", row.state, exp.state)
    expect("attempt_count", row.attempts, len(exp.outcomes))
    expect(
        "attempt numbers",
        [a["attempt_number"] for a in attempts],
        list(range(1, len(exp.outcomes) + 1)),
    )
    expect("outcomes", tuple(a["outcome"] for a in attempts), exp.outcomes)
    expect("http statuses", tuple(a["http_status"] for a in attempts), exp.statuses)
    expect(
        "retryable",
        tuple(a["retryable"] for a in attempts),
        tuple(o == RETRY for o in exp.outcomes),
    )
    expect("receiver requests", len(hits), len(exp.outcomes))
    expect("receiver paths", {h.path for h in hits}, {exp.path})
    if not all(h.signature_ok for h in hits):
        problems.append("a request carried no valid Standard Webhooks signature")
    for a in attempts:
        if a["finished_at"] is None:
            problems.append(f"attempt {a['attempt_number']} never finished")
    if exp.state == "dead_lettered":
        expect("dead_letter_reason", delivery["dead_letter_reason"], exp.reason)
        expect("listed in /v1/dead-letters", row.delivery_id in dead, True)
    else:
        expect("listed in /v1/dead-letters", row.delivery_id in dead, False)
    if exp.state == "failed":
        expect("failure_reason", delivery.get("failure_reason"), exp.reason)
    if exp.state == "delivered" and delivery["delivered_at"] is None:
        problems.append("delivered_at is not set")
    if exp.path == "/hang":
        summaries = [a["error_summary"] or "" for a in attempts]
        if not all("timeout" in s for s in summaries):
            problems.append(f"timeouts not named in the error summaries: {summaries}")
    if exp.min_gap_s is not None and len(hits) >= 2:
        gap = hits[1].at - hits[0].at
        if gap < exp.min_gap_s:
            problems.append(f"retry came {gap:.2f}s after the 429, before Retry-After")


def _print_table(rows: list[Row]) -> None:
    header = ("path", "behaviour", "state", "att", "rx", "statuses", "retryable", "reason", "ok")
    table = [header] + [
        (
            r.scenario.path,
            r.scenario.what,
            r.state,
            str(r.attempts),
            str(r.receiver_hits),
            r.statuses,
            r.retryable,
            r.reason,
            "ok" if not r.problems else "MISMATCH",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for i, line in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for r in rows:
        for p in r.problems:
            print(f"MISMATCH {r.scenario.path} delivery {r.delivery_id}: {p}")


async def _drive(stack: Stack, receiver: Receiver, api_base: str, key: str) -> int:
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _wait_ready(session, api_base, stack)
        api = Api(session, api_base, key)
        for exp in SCENARIOS:
            created = await api.call(
                "POST",
                "/v1/destinations",
                {
                    "name": f"smoke{exp.path.replace('/', '-')}",
                    "url": receiver.url(exp.path),
                    "event_types": [f"smoke.{exp.path.strip('/')}"],
                    **POLICY,
                    "backoff_max_ms": exp.backoff_max_ms,
                },
                expect=201,
            )
            if not str(created.get("signing_secret", "")).startswith("whsec_"):
                raise StackError(f"no whsec_ signing secret in {created}")
            receiver.secrets[exp.path] = created["signing_secret"]
        rows: list[Row] = []
        for i in range(EVENTS_PER_SCENARIO):
            for exp in SCENARIOS:
                accepted = await api.call(
                    "POST",
                    "/v1/events",
                    {
                        "type": f"smoke.{exp.path.strip('/')}",
                        "payload": {"scenario": exp.path, "n": i},
                        "idempotency_key": f"smoke-{exp.path.strip('/')}-{i}",
                    },
                    expect=202,
                )
                deliveries = accepted["deliveries"]
                if len(deliveries) != 1:
                    raise StackError(f"expected one delivery per event, got {accepted}")
                rows.append(Row(exp, deliveries[0]["id"], accepted["id"]))
        enqueued = time.monotonic()
        print(f"enqueued {len(rows)} events across {len(SCENARIOS)} destinations; waiting")

        latest: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            stack.check_alive()
            for row in rows:
                if latest.get(row.delivery_id, {}).get("state") not in TERMINAL:
                    latest[row.delivery_id] = await api.call(
                        "GET", f"/v1/deliveries/{row.delivery_id}"
                    )
            if all(d["state"] in TERMINAL for d in latest.values()):
                break
            if time.monotonic() > deadline:
                states = sorted({d["state"] for d in latest.values()})
                raise StackError(f"not settled after {SETTLE_TIMEOUT:g}s (states: {states})")
            await asyncio.sleep(POLL_S)
        settled = time.monotonic()
        # Re-read each once more so the attempts of terminal rows are complete.
        for row in rows:
            latest[row.delivery_id] = await api.call("GET", f"/v1/deliveries/{row.delivery_id}")
        dead_page = await api.call("GET", "/v1/dead-letters?limit=100")
        dead = {str(d["id"]) for d in dead_page["items"]}
        for row in rows:
            _check(row, latest[row.delivery_id], receiver, dead)
        unexpected = [h for h in receiver.hits if h.webhook_id not in {r.event_id for r in rows}]
        workers = {a["worker_id"] for d in latest.values() for a in d["attempts"] if a["worker_id"]}

    _print_table(rows)
    failures = sum(1 for r in rows if r.problems)
    print(
        f"\n{len(rows)} deliveries, {len(receiver.hits)} requests received, "
        f"{len(workers)} worker(s) made attempts; settled {settled - enqueued:.1f}s after "
        f"enqueue, {settled - started:.1f}s after start"
    )
    if unexpected:
        print(f"MISMATCH: {len(unexpected)} requests for events this run did not send")
        failures += 1
    print("RESULT: " + ("ok" if failures == 0 else f"{failures} mismatch(es)"))
    return 0 if failures == 0 else 1


async def _run(data_dir: Path, logs: Path) -> int:
    tenant = f"smoke-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "COURIER_SECRET_KEY": generate_key(),
        "COURIER_ALLOW_PRIVATE_DESTINATIONS": "true",
        # Its own tenant only: on a shared database another run's tenants have secrets
        # under another key, and a worker refuses to start with a key that cannot open them.
        "COURIER_WORKER_TENANTS": tenant,
        "COURIER_WORKER_POLL_INTERVAL": "0.2",
        "COURIER_WORKER_LEASE_SECONDS": "5",
        "COURIER_WORKER_SHUTDOWN_GRACE_SECONDS": "2",
        "COURIER_LOG_FORMAT": "json",
    }
    embedded = not env.get("COURIER_DATABASE_URL")
    if embedded:
        env["COURIER_DATA_DIR"] = str(data_dir)
    stack = Stack(env=env, logs=logs)
    receiver = Receiver()
    where = f"embedded PostgreSQL in {data_dir}" if embedded else "COURIER_DATABASE_URL"
    print(f"courier smoke: database = {where}; logs in {logs}")
    try:
        stack.cli("migrate")
        out = stack.cli("tenants", "create", tenant)
        keys = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("api_key")]
        if not keys or not keys[0].startswith("ck_"):
            raise StackError(f"`courier tenants create` printed no api_key: {out!r}")
        await receiver.start()
        port = _free_port()
        stack.start("serve", "serve", "--host", "127.0.0.1", "--port", str(port))
        stack.start("worker-1", "worker")
        stack.start("worker-2", "worker")
        return await _drive(stack, receiver, f"http://127.0.0.1:{port}", keys[0])
    except StackError as exc:
        print(f"courier smoke: {exc}", file=sys.stderr)
        stack.tail_logs()
        return 2
    finally:
        exits = stack.stop()
        await receiver.stop()
        print("stopped: " + ", ".join(exits) if exits else "stopped: nothing was running")
        note = _stop_embedded(data_dir) if embedded else None
        if note:
            print(f"note: {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="courier-smoke-"))
    folder.chmod(0o755)  # the embedded server runs as its own user when we are root
    logs = folder / "logs"
    logs.mkdir()
    logs.chmod(0o755)
    code = 2
    try:
        code = asyncio.run(_run(folder / "data", logs))
    finally:
        if args.keep or code != 0:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
