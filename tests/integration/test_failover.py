"""Failover: `courier serve` and two `courier worker` processes on a PostgreSQL primary
with a synchronous standby, reached through one multi-host URL; events arrive through
the API at a steady rate while the test SIGKILLs the primary and promotes the standby.

Afterwards every event the API acknowledged (202) has reached the receiver and the API
reports it delivered; an event the receiver saw twice has the attempts that explain it;
the API and the workers are the processes that started (nothing restarted them); events
sent after the promotion are delivered too. The figures (kill -> first 202, kill ->
first delivery, per round) are printed.

The short run (one failover) is part of `make test`; `make failover` (COURIER_FAILOVER=
full) runs three rounds, cloning a new standby from the promoted server between rounds.
The test owns its two servers (PostgreSQL 15 binaries from COURIER_PG_BIN), whatever
COURIER_DATABASE_URL says.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web

from courier.crypto import SecretBox, generate_key
from courier.destinations import create_destination
from courier.store.migrate import migrate
from courier.tenancy import create_tenant
from tests.support.failover import Cluster, available
from tests.support.ports import free_port

DBNAME = "courier"
RATE = 25.0  # events per second sent through the API
MAX_IN_FLIGHT = 100  # requests the sender lets wait before it skips a beat
REQUEST_TIMEOUT_S = 15.0
STARTUP_TIMEOUT_S = 60.0
SETTLE_TIMEOUT_S = 90.0  # after the last event: every acknowledged one delivered
POLL_S = 0.25


@dataclass(frozen=True)
class Plan:
    name: str
    rounds: int
    warm_s: float  # steady sending before each kill
    detect_s: float  # from the kill to `pg_ctl promote` (a failure detector's delay)
    after_s: float  # sending after the promotion, before the next clone / the end


SHORT = Plan("short", rounds=1, warm_s=4.0, detect_s=1.0, after_s=6.0)
FULL = Plan("full", rounds=3, warm_s=5.0, detect_s=2.0, after_s=8.0)
FULL_SELECTED = os.environ.get("COURIER_FAILOVER") == "full"


# -- the receiver and the sender ---------------------------------------------------------


@dataclass
class Receiver:
    hits: list[tuple[str, float]] = field(default_factory=list)  # webhook-id, monotonic
    port: int = 0
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.hits.append((request.headers.get("webhook-id", ""), time.monotonic()))
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class Sent:
    seq: int
    sent_at: float
    answered_at: float = 0.0
    status: int | None = None  # None: no answer (connection error or timeout)
    event_id: str | None = None


@dataclass
class Sender:
    base: str
    api_key: str
    sent: list[Sent] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def _post(self, session: aiohttp.ClientSession, item: Sent) -> None:
        try:
            async with session.post(
                f"{self.base}/v1/events",
                json={
                    "type": "failover.test",
                    "payload": {"seq": item.seq},
                    "idempotency_key": f"failover-{item.seq}",
                },
                headers={"Authorization": f"Bearer {self.api_key}"},
            ) as resp:
                body = await resp.json(content_type=None)
                item.status = resp.status
                if resp.status == 202:
                    item.event_id = str(body["id"])
        except (aiohttp.ClientError, TimeoutError):
            item.status = None
        item.answered_at = time.monotonic()

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            began = time.monotonic()
            n = 0
            while not stop.is_set():
                if len(self._tasks) < MAX_IN_FLIGHT:
                    item = Sent(seq=len(self.sent), sent_at=time.monotonic())
                    self.sent.append(item)
                    task = asyncio.create_task(self._post(session, item))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                n += 1
                await asyncio.sleep(max(0.0, began + n / RATE - time.monotonic()))
            if self._tasks:
                await asyncio.wait(set(self._tasks))

    def acked(self) -> list[Sent]:
        return [s for s in self.sent if s.status == 202]


# -- the courier processes ---------------------------------------------------------------


@dataclass
class Stack:
    env: dict[str, str]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "courier", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def pids(self) -> dict[str, int | None]:
        """Each process's pid while it runs, None once it has exited."""
        return {n: (p.pid if p.poll() is None else None) for n, p in self.procs.items()}

    def stop(self) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                codes[name] = None
        return codes

    def tail(self, lines: int = 30) -> str:
        out: list[str] = []
        for path in sorted(self.logs.glob("*.log")):
            out.append(f"--- {path.name} ---")
            out.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(out)


def _fresh_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="courier-failover-"))
    folder.chmod(0o755)  # the servers run as another user when we are root
    (folder / "logs").mkdir()
    (folder / "pg").mkdir()
    return folder


def _start_cluster(cluster: Cluster) -> str:
    """Primary and synchronous standby, a migrated database; returns its multi-host URL."""
    cluster.start()
    assert cluster.primary is not None
    with psycopg.connect(cluster.primary.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DBNAME}")
    url = cluster.url(DBNAME)
    migrate(url)
    return url


def _setup(url: str, receiver_port: int, box: SecretBox) -> str:
    """One tenant with one destination (the receiver); returns the tenant's API key."""
    with psycopg.connect(url, autocommit=True) as conn:
        tenant_id, key = create_tenant(conn, "failover")
        create_destination(
            conn,
            box,
            tenant_id,
            name="receiver",
            url=f"http://127.0.0.1:{receiver_port}/hook",
            max_attempts=50,
            backoff_initial_ms=100,
            backoff_max_ms=1000,
            timeout_ms=2000,
        )
    return key.key


async def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{base}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, "the API never became ready"
            await asyncio.sleep(POLL_S)


async def _deliveries(base: str, api_key: str) -> dict[str, dict[str, Any]]:
    """Every delivery the API lists, by event id."""
    out: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {api_key}"}) as s:
        while True:
            params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
            async with s.get(f"{base}/v1/deliveries", params=params) as resp:
                assert resp.status == 200, await resp.text()
                page = await resp.json()
            for item in page["items"]:
                out[str(item["event_id"])] = item
            cursor = page["next_cursor"]
            if not cursor:
                return out


# -- the run -----------------------------------------------------------------------------


@dataclass
class Round:
    number: int
    started_at: float  # before the clone (the first round: when sending began)
    kill_at: float = 0.0  # the last SIGKILL sent
    promoted_at: float = 0.0  # `pg_ctl promote -w` returned: the standby takes writes
    ended_at: float = 0.0  # the next round's start, or the end of sending
    kill_s: float = 0.0  # from the SIGKILLs until every process of the primary was reaped
    promote_s: float = 0.0
    clone_s: float = 0.0


def _first_after(times: list[float], after: float) -> float | None:
    later = [t for t in times if t > after]
    return min(later) if later else None


PLANS = [pytest.param(SHORT, id="short", marks=[pytest.mark.slow, pytest.mark.timeout(240)])]
if FULL_SELECTED:
    PLANS.append(
        pytest.param(
            FULL,
            id="full",
            marks=[pytest.mark.failover, pytest.mark.slow, pytest.mark.timeout(600)],
        )
    )


@pytest.mark.parametrize("plan", PLANS)
async def test_failover(plan: Plan) -> None:
    assert available(), "the failover test needs PostgreSQL server binaries (COURIER_PG_BIN)"
    folder = _fresh_folder()
    logs = folder / "logs"
    cluster = Cluster(folder / "pg", (free_port(), free_port()))
    receiver = Receiver()
    stack: Stack | None = None
    passed = False
    try:
        url = await asyncio.to_thread(_start_cluster, cluster)
        await receiver.start()
        secret_key = generate_key()
        api_key = await asyncio.to_thread(_setup, url, receiver.port, SecretBox(secret_key))
        api_port = free_port()
        base = f"http://127.0.0.1:{api_port}"
        stack = Stack(
            env={
                **os.environ,
                "COURIER_DATABASE_URL": url,
                "COURIER_SECRET_KEY": secret_key,
                "COURIER_WORKER_TENANTS": "*",
                "COURIER_ALLOW_PRIVATE_DESTINATIONS": "true",
                "COURIER_WORKER_POLL_INTERVAL": "0.5",
                "COURIER_WORKER_LEASE_SECONDS": "5",
                "COURIER_WORKER_SHUTDOWN_GRACE_SECONDS": "2",
                "COURIER_LOG_FORMAT": "json",
            },
            logs=logs,
        )
        stack.start("api", "serve", "--host", "127.0.0.1", "--port", str(api_port))
        for i in (1, 2):
            stack.env["COURIER_WORKER_ID"] = f"failover-{i}"
            stack.start(f"worker-{i}", "worker")
        await _wait_ready(base)
        pids_before = stack.pids()

        sender = Sender(base, api_key)
        stop_sending = asyncio.Event()
        sending = asyncio.create_task(sender.run(stop_sending))
        rounds: list[Round] = []
        for number in range(1, plan.rounds + 1):
            this = Round(number, started_at=time.monotonic())
            if rounds:
                rounds[-1].ended_at = this.started_at
                cluster.discard_dead()
                this.clone_s = await asyncio.to_thread(cluster.add_standby)
            await asyncio.sleep(plan.warm_s)
            this.kill_at = await asyncio.to_thread(cluster.kill_primary)
            this.kill_s = time.monotonic() - this.kill_at
            await asyncio.sleep(plan.detect_s)
            before = time.monotonic()
            await asyncio.to_thread(cluster.promote)
            this.promoted_at = time.monotonic()
            this.promote_s = this.promoted_at - before
            rounds.append(this)
            await asyncio.sleep(plan.after_s)
        stop_sending.set()
        await sending
        rounds[-1].ended_at = time.monotonic()

        # Settle: every acknowledged event delivered, as the API reports it.
        acked = sender.acked()
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            listed = await _deliveries(base, api_key)
            waiting = [
                s for s in acked if listed.get(str(s.event_id), {}).get("state") != "delivered"
            ]
            if not waiting or time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL_S)
        pids_after = stack.pids()

        hits = Counter(h for h, _ in receiver.hits)
        hit_times: dict[str, list[float]] = {}
        for h, at in receiver.hits:
            hit_times.setdefault(h, []).append(at)
        missing = [s.seq for s in acked if str(s.event_id) not in hits]
        undelivered = [(s.seq, listed.get(str(s.event_id), {}).get("state")) for s in waiting]
        unexplained = [
            (h, n, listed.get(h, {}).get("attempt_count"))
            for h, n in hits.items()
            if n > 1 and n > int(listed.get(h, {}).get("attempt_count") or 0)
        ]
        acked_ids = {str(s.event_id) for s in acked}
        unacked_delivered = [h for h in hits if h not in acked_ids]

        print(f"\n=== failover ({plan.name}, {plan.rounds} round(s), {RATE:g} events/s) ===")
        for line in cluster.log:
            print(f"  {line}")
        all_hits = sorted(t for _, t in receiver.hits)
        for r in rounds:
            mine = [s for s in sender.sent if r.started_at <= s.sent_at < r.ended_at]
            mine_acked = [s for s in mine if s.status == 202]
            before_kill = [s for s in mine_acked if s.answered_at < r.kill_at]
            after_promote = [s for s in mine_acked if s.sent_at >= r.promoted_at]
            refused = Counter(str(s.status) for s in mine if s.status != 202)
            # Recovery is measured on requests sent after the kill: one sent before it
            # may still be answered (or delivered) just after.
            new = [s for s in mine_acked if s.sent_at > r.kill_at]
            first_ack = _first_after([s.answered_at for s in new], r.kill_at)
            first_new = _first_after(
                [t for s in new for t in hit_times.get(str(s.event_id), [])], r.kill_at
            )
            first_any = _first_after(all_hits, r.promoted_at)
            delivered = sum(1 for s in mine_acked if str(s.event_id) in hits)
            dupes = sum(1 for s in mine_acked if hits.get(str(s.event_id), 0) > 1)
            print(
                f"  round {r.number}: sent {len(mine)}, acknowledged {len(mine_acked)}"
                f" ({len(before_kill)} before the kill, {len(after_promote)} sent after the"
                f" promotion), not acknowledged {dict(refused)}; delivered {delivered},"
                f" lost {len(mine_acked) - delivered}, duplicated {dupes}"
            )
            print(
                f"    clone {r.clone_s:.1f}s; reaped {r.kill_s:.2f}s, promote {r.promote_s:.2f}s;"
                f" kill -> promoted {r.promoted_at - r.kill_at:.1f}s,"
                f" -> first delivery after the promotion {(first_any or 0) - r.kill_at:.1f}s,"
                f" -> first 202 for a new event {(first_ack or 0) - r.kill_at:.1f}s,"
                f" -> its first delivery {(first_new or 0) - r.kill_at:.1f}s"
            )
            assert first_ack is not None, f"round {r.number}: no 202 after the kill"
            assert first_new is not None, f"round {r.number}: nothing new delivered"
            assert after_promote, f"round {r.number}: nothing acknowledged after promotion"
        print(
            f"  total: acknowledged {len(acked)}, delivered {len(acked) - len(missing)},"
            f" lost {len(missing)}, duplicated {sum(1 for n in hits.values() if n > 1)},"
            f" delivered though not acknowledged {len(unacked_delivered)}"
        )
        print(f"  pids before {pids_before} after {pids_after}")

        assert not missing, f"acknowledged events never delivered: {missing[:10]}"
        assert not undelivered, (
            f"acknowledged events the API does not report delivered: {undelivered[:10]}"
        )
        assert not unexplained, (
            f"duplicates without the attempts to explain them: {unexplained[:10]}"
        )
        assert pids_after == pids_before, "a courier process exited or was restarted"
        passed = True
    finally:
        if stack is not None:
            stack.stop()
            if not passed:
                print(stack.tail())
        await receiver.stop()
        await asyncio.to_thread(cluster.stop)
        if os.environ.get("COURIER_FAILOVER_KEEP"):
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
async def test_api_answers_at_once_after_failover() -> None:
    """The API's pooled connections die with the primary while the API is idle; once
    the standby is promoted, the next requests are answered 202, not 503 (one per dead
    pooled connection) until the pool has worn through them."""
    assert available(), "the failover test needs PostgreSQL server binaries (COURIER_PG_BIN)"
    folder = _fresh_folder()
    cluster = Cluster(folder / "pg", (free_port(), free_port()))
    stack: Stack | None = None
    try:
        url = await asyncio.to_thread(_start_cluster, cluster)
        secret_key = generate_key()
        api_key = await asyncio.to_thread(_setup, url, free_port(), SecretBox(secret_key))
        api_port = free_port()
        base = f"http://127.0.0.1:{api_port}"
        stack = Stack(
            env={**os.environ, "COURIER_DATABASE_URL": url, "COURIER_SECRET_KEY": secret_key},
            logs=folder / "logs",
        )
        stack.start("api", "serve", "--host", "127.0.0.1", "--port", str(api_port))
        await _wait_ready(base)
        sender = Sender(base, api_key)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:

            async def post() -> int | None:
                item = Sent(seq=len(sender.sent), sent_at=time.monotonic())
                sender.sent.append(item)
                await sender._post(session, item)
                return item.status

            # Concurrent requests fill the pool to its maximum.
            warm = await asyncio.gather(*(post() for _ in range(40)))
            assert set(warm) == {202}, warm
            await asyncio.to_thread(cluster.kill_primary)
            await asyncio.to_thread(cluster.promote)
            promoted = time.monotonic()
            after = [await post() for _ in range(15)]
            print(f"\n15 requests after the promotion: {time.monotonic() - promoted:.2f}s")
        assert after == [202] * 15, f"answers after the promotion: {after}"
    finally:
        if stack is not None:
            stack.stop()
        await asyncio.to_thread(cluster.stop)
        shutil.rmtree(folder, ignore_errors=True)
