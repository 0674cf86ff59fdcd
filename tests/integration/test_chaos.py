"""Chaos: real `courier worker` processes deliver thousands of deliveries to a receiver
that answers at random, while the test SIGKILLs workers, restarts PostgreSQL and pauses
the receiver. At the end nothing is lost, nothing is stuck, every delivery is in the
state the receiver's answers imply, attempts are contiguous and never overlap (except
one closed as `abandoned`), and duplicates are bounded by the attempts that were lost.

The short run is part of `make test`; the full one (10,000 deliveries, three database
restarts, a kill every four seconds) runs with `make chaos` (COURIER_CHAOS=full).

The test owns its PostgreSQL: an embedded server in a fresh folder, whatever
COURIER_DATABASE_URL says, because it restarts it.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import stat
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from courier.crypto import SecretBox, generate_key
from courier.destinations import create_destination
from courier.enqueue import enqueue_event
from courier.store.embedded import EmbeddedPostgres
from courier.store.migrate import migrate
from courier.tenancy import create_tenant
from tests.support.chaos import (
    STATUS_OF,
    SUCCESS_KINDS,
    ChaosReceiver,
    Record,
    WorkerPool,
    implied_state,
)

TERMINAL = ("delivered", "failed", "dead_lettered")
SEED = int(os.environ.get("COURIER_CHAOS_SEED", "20240607"))
MAX_ATTEMPTS = 12  # generous: a delivery survives a pause, a kill and its own bad luck
BACKOFF_INITIAL_MS = 100
BACKOFF_MAX_MS = 1000
TIMEOUT_MS = 1000  # per attempt
HANG_S = 1.5  # a `timeout` answer: well past TIMEOUT_MS
BUSY_WAIT_POLLS = 20  # a kill waits up to 2 s for a worker that holds leases
RECONNECT_S = 0.2  # between tries of the test's own statements while PostgreSQL restarts


@dataclass(frozen=True)
class Plan:
    name: str
    tenants: int
    destinations_per_tenant: int
    events: int
    workers: int
    waves: int  # the events are enqueued in this many transactions...
    wave_every_s: float  # ...this far apart
    kill_at: tuple[float, ...]  # seconds after start: SIGKILL a random worker, start another
    restart_at: tuple[float, ...]  # seconds after start: restart PostgreSQL
    outage_s: float  # the last restart keeps PostgreSQL down this long (past the lease)
    pause_at: float  # seconds after start: the receiver stops answering...
    pause_s: float  # ...for this long
    timeout_s: float  # the whole run, faults and settling

    @property
    def deliveries(self) -> int:
        return self.events * self.destinations_per_tenant


SHORT = Plan(
    name="short",
    tenants=3,
    destinations_per_tenant=2,
    events=750,
    workers=3,
    waves=5,
    wave_every_s=2.0,
    kill_at=(3.0, 8.0),
    restart_at=(5.0,),
    outage_s=0.0,
    pause_at=10.0,
    pause_s=1.5,
    timeout_s=150.0,
)
FULL = Plan(
    name="full",
    tenants=4,
    destinations_per_tenant=2,
    events=5000,
    workers=3,
    waves=10,
    wave_every_s=3.0,
    kill_at=tuple(4.0 * i for i in range(1, 11)),
    restart_at=(10.0, 24.0, 37.0),
    outage_s=6.0,
    pause_at=17.0,
    pause_s=3.0,
    timeout_s=600.0,
)
FULL_SELECTED = os.environ.get("COURIER_CHAOS") == "full"


@dataclass
class Faults:
    started: float = field(default_factory=time.monotonic)
    log: list[str] = field(default_factory=list)
    kills: int = 0
    restarts: int = 0
    pauses: int = 0
    in_flight_killed: int = 0  # leases held by killed workers when they were killed
    last_fault: float = 0.0

    def note(self, what: str) -> None:
        self.last_fault = time.monotonic()
        self.log.append(f"t={self.last_fault - self.started:5.1f}s {what}")


def _fresh_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="courier-chaos-"))
    folder.chmod(folder.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
    return folder


def _setup(url: str, plan: Plan, box: SecretBox, receiver: ChaosReceiver) -> dict[str, Any]:
    """Tenants and destinations; returns tenant ids and destination id -> receiver path."""
    tenants: list[uuid.UUID] = []
    paths: dict[uuid.UUID, str] = {}
    dests: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    with psycopg.connect(url, autocommit=True) as conn:
        for t in range(plan.tenants):
            tenant_id, _ = create_tenant(conn, f"chaos-{t}")
            tenants.append(tenant_id)
            for j in range(plan.destinations_per_tenant):
                path = f"/t{t}/d{j}"
                row, _ = create_destination(
                    conn,
                    box,
                    tenant_id,
                    name=f"chaos-{t}-{j}",
                    url=receiver.url(path),
                    max_attempts=MAX_ATTEMPTS,
                    backoff_initial_ms=BACKOFF_INITIAL_MS,
                    backoff_max_ms=BACKOFF_MAX_MS,
                    timeout_ms=TIMEOUT_MS,
                )
                paths[row["id"]] = path
                dests[tenant_id].add(row["id"])
    return {"tenants": tenants, "paths": paths, "dests": dests}


def _enqueue_wave(url: str, tenants: list[uuid.UUID], first: int, last: int) -> None:
    """One transaction; idempotency keys make a retry after a lost commit harmless."""
    with psycopg.connect(url, connect_timeout=5) as conn, conn.transaction():
        for i in range(first, last):
            tenant = tenants[i % len(tenants)]
            enqueue_event(conn, tenant, "chaos.test", {"i": i}, idempotency_key=f"chaos-{i}")


async def _enqueue_all(url: str, plan: Plan, tenants: list[uuid.UUID], deadline: float) -> int:
    """Enqueue every wave on schedule; retries a wave the database interrupted."""
    retries = 0
    per_wave = -(-plan.events // plan.waves)
    started = time.monotonic()
    for wave in range(plan.waves):
        await asyncio.sleep(max(0.0, started + wave * plan.wave_every_s - time.monotonic()))
        first, last = wave * per_wave, min(plan.events, (wave + 1) * per_wave)
        while True:
            try:
                await asyncio.to_thread(_enqueue_wave, url, tenants, first, last)
                break
            except psycopg.OperationalError:
                retries += 1
                assert time.monotonic() < deadline, "could not enqueue before the deadline"
                await asyncio.sleep(RECONNECT_S)
    return retries


async def _leases_by_worker(url: str) -> dict[str, int]:
    """Deliveries in flight per worker id; empty if the database does not answer."""
    try:
        async with await psycopg.AsyncConnection.connect(
            url, autocommit=True, connect_timeout=2
        ) as conn:
            cur = await conn.execute(
                "SELECT locked_by, count(*) FROM deliveries"
                " WHERE state = 'delivering' AND locked_until > now() GROUP BY 1"
            )
            return {str(w): int(n) for w, n in await cur.fetchall()}
    except psycopg.OperationalError:
        return {}


async def _run_faults(
    plan: Plan,
    faults: Faults,
    pool: WorkerPool,
    pg: EmbeddedPostgres,
    receiver: ChaosReceiver,
    rng: random.Random,
) -> None:
    actions = sorted(
        [(t, "kill") for t in plan.kill_at]
        + [(t, "restart") for t in plan.restart_at]
        + [(plan.pause_at, "pause")]
    )
    for at, action in actions:
        await asyncio.sleep(max(0.0, faults.started + at - time.monotonic()))
        pool.check()
        if action == "kill":
            busy = await _leases_by_worker(pool.db_url)
            for _ in range(BUSY_WAIT_POLLS):  # a kill should lose attempts in flight
                if any(busy.get(pool.ids[p.pid], 0) for p in pool.live):
                    break
                await asyncio.sleep(0.1)
                busy = await _leases_by_worker(pool.db_url)
            pid = pool.kill_one(rng, busy)
            new = pool.start()
            faults.kills += 1
            held = busy.get(pool.ids[pid], 0)
            faults.in_flight_killed += held
            faults.note(f"SIGKILL worker pid {pid} ({held} in flight); started pid {new.pid}")
        elif action == "restart":
            began = time.monotonic()
            if plan.outage_s and faults.restarts == len(plan.restart_at) - 1:
                await asyncio.to_thread(pg.stop_server)
                await asyncio.sleep(plan.outage_s)  # every lease runs out meanwhile
                await asyncio.to_thread(pg.start_server)
            else:
                await asyncio.to_thread(pg.restart)
            faults.restarts += 1
            faults.note(f"PostgreSQL restarted ({time.monotonic() - began:.1f}s down)")
        else:
            await receiver.pause()
            faults.note(f"receiver paused for {plan.pause_s:g}s")
            await asyncio.sleep(plan.pause_s)
            await receiver.resume()
            faults.pauses += 1
            faults.note("receiver resumed")


async def _wait_settled(url: str, expected: int, deadline: float) -> dict[str, int]:
    """Poll until `expected` deliveries exist and all are terminal; survives restarts."""
    states: dict[str, int] = {}
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=5
            ) as conn:
                while True:
                    cur = await conn.execute("SELECT state, count(*) FROM deliveries GROUP BY 1")
                    states = {str(s): int(n) for s, n in await cur.fetchall()}
                    done = sum(n for s, n in states.items() if s in TERMINAL)
                    if done == expected == sum(states.values()):
                        return states
                    assert time.monotonic() < deadline, f"not settled: {states}"
                    await asyncio.sleep(0.1)
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, f"not settled: {states}"
            await asyncio.sleep(RECONNECT_S)


async def _watch_lag(lags: list[float], stop: asyncio.Event) -> None:
    """How late the test's event loop (the receiver's) wakes: its answers are that late."""
    while not stop.is_set():
        before = time.monotonic()
        await asyncio.sleep(0.05)
        lags.append(time.monotonic() - before - 0.05)


def _is_subsequence(small: list[int], big: list[int]) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.99 * (len(ordered) - 1))] if ordered else 0.0


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def fail(self, what: str, items: list[Any]) -> None:
        if items:
            self.problems.append(f"{what}: {len(items)}, e.g. {items[:3]}")


def _verify(url: str, plan: Plan, setup: dict[str, Any], receiver: ChaosReceiver) -> Verdict:
    v = Verdict()
    paths: dict[uuid.UUID, str] = setup["paths"]
    dests: dict[uuid.UUID, set[uuid.UUID]] = setup["dests"]
    with psycopg.connect(url, autocommit=True) as conn:
        events = conn.execute("SELECT id, tenant_id, idempotency_key FROM events").fetchall()
        deliveries = conn.execute(
            "SELECT id, event_id, tenant_id, destination_id, state, attempt_count,"
            " dead_letter_reason, failure_reason FROM deliveries"
        ).fetchall()
        attempt_rows = conn.execute(
            "SELECT delivery_id, attempt_number, outcome, http_status, error_summary"
            " FROM delivery_attempts"
            " ORDER BY delivery_id, attempt_number"
        ).fetchall()
        overlaps = conn.execute(
            """
            SELECT a.delivery_id, a.attempt_number, b.attempt_number FROM delivery_attempts a
              JOIN delivery_attempts b
                ON a.tenant_id = b.tenant_id AND a.delivery_id = b.delivery_id
               AND a.attempt_number < b.attempt_number
             WHERE a.outcome IS DISTINCT FROM 'abandoned'
               AND b.started_at < a.finished_at
            """
        ).fetchall()

    # Zero lost: every event enqueued once, with one delivery per destination of its tenant.
    keys = {k for _, _, k in events}
    v.fail("events missing", sorted({f"chaos-{i}" for i in range(plan.events)} - keys))
    v.fail("unexpected events", sorted(keys - {f"chaos-{i}" for i in range(plan.events)}))
    by_event: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for d in deliveries:
        by_event[d[1]].append(d[3])
    v.fail(
        "events without exactly one delivery per destination",
        [e for e, t, _ in events if sorted(by_event[e]) != sorted(dests[t])],
    )

    attempts: dict[uuid.UUID, list[tuple[int, str | None, int | None]]] = defaultdict(list)
    summaries: dict[uuid.UUID, list[str]] = defaultdict(list)
    for delivery_id, number, outcome, status, summary in attempt_rows:
        attempts[delivery_id].append((number, outcome, status))
        summaries[delivery_id].append(summary or "")
    log = receiver.by_delivery()
    known: set[tuple[str, str]] = set()
    not_terminal, gaps, unfinished, wrong_state, bad_status, bad_end = [], [], [], [], [], []
    unexplained_dupes: list[Any] = []
    dupes: Counter[str] = Counter()
    for delivery_id, event_id, _, dest, state, count, dl_reason, f_reason in deliveries:
        key = (paths[dest], str(event_id))
        known.add(key)
        records: list[Record] = log.get(key, [])
        mine = attempts[delivery_id]
        if state not in TERMINAL:
            not_terminal.append((delivery_id, state))
        if [n for n, _, _ in mine] != list(range(1, count + 1)):
            gaps.append((delivery_id, count, [n for n, _, _ in mine]))
        if any(o is None for _, o, _ in mine):
            unfinished.append(delivery_id)
        implied = implied_state(records)
        if state != implied:
            wrong_state.append((delivery_id, state, implied, [r.kind for r in records], mine))
        answered = [STATUS_OF[r.kind] for r in records if r.kind in STATUS_OF]
        recorded = [s for _, _, s in mine if s is not None]
        if not _is_subsequence(recorded, answered):
            bad_status.append((delivery_id, recorded, answered))
        last = mine[-1][1] if mine else None
        if not (
            (state == "delivered" and last == "succeeded")
            or (
                state == "failed"
                and last == "permanent_failure"
                and f_reason == "permanent_failure"
            )
            or (
                state == "dead_lettered"
                and last == "retryable_failure"
                and dl_reason == "max_attempts_exhausted"
                and count >= MAX_ATTEMPTS
            )
        ):
            bad_end.append((delivery_id, state, count, last, dl_reason, f_reason))
        # At-least-once: every 2xx the receiver gave beyond the one that counted must match
        # an attempt whose answer the worker never read: closed as `abandoned` (worker
        # killed, lease lost) or a retryable failure without an HTTP status (the receiver
        # reset the connection after accepting, or answered after the worker's timeout).
        accepted = sum(1 for r in records if r.kind in SUCCESS_KINDS)
        extra = accepted - (1 if state == "delivered" else 0)
        abandoned = sum(1 for _, o, _ in mine if o == "abandoned")
        unread = sum(1 for _, o, s in mine if o == "retryable_failure" and s is None)
        if extra > abandoned + unread:
            unexplained_dupes.append((delivery_id, [r.kind for r in records], mine))
        if accepted >= 2:
            if any(r.kind == "ok_reset" for r in records):
                dupes["after the receiver reset an accepted request"] += 1
            elif abandoned:
                dupes["after a lost (abandoned) attempt"] += 1
            elif any(x.startswith("timeout") for x in summaries[delivery_id]):
                dupes["after a 2xx that came too late (timeout)"] += 1
            else:
                dupes["other"] += 1

    v.fail("deliveries not terminal", not_terminal)
    v.fail("attempt numbers not contiguous", gaps)
    v.fail("attempts never finished", unfinished)
    v.fail("state differs from what the receiver's answers imply", wrong_state)
    v.fail("recorded HTTP statuses the receiver did not give (in order)", bad_status)
    v.fail("final attempt or reason inconsistent with the state", bad_end)
    v.fail("overlapping attempts", overlaps)
    v.fail("duplicates not explained by a lost attempt", unexplained_dupes)
    v.fail("requests for deliveries that do not exist", sorted(set(log) - known))

    outcomes = Counter(o for rows in attempts.values() for _, o, _ in rows)
    v.figures.update(
        {
            "events": len(events),
            "deliveries": len(deliveries),
            "states": dict(Counter(d[4] for d in deliveries)),
            "attempts": dict(outcomes),
            "requests": dict(receiver.kinds()),
            "duplicates (2xx received twice)": sum(dupes.values()),
            **{f"  {why}": n for why, n in sorted(dupes.items())},
        }
    )
    return v


# The full run exists only when asked for (`make chaos`), so `make test` neither runs
# nor skips it.
PLANS = [pytest.param(SHORT, id="short", marks=[pytest.mark.slow, pytest.mark.timeout(300)])]
if FULL_SELECTED:
    PLANS.append(
        pytest.param(
            FULL,
            id="full",
            marks=[pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(900)],
        )
    )


@pytest.mark.parametrize("plan", PLANS)
async def test_chaos(plan: Plan) -> None:
    rng = random.Random(SEED)
    folder = _fresh_folder()
    logs = folder / "logs"
    logs.mkdir()
    pg = EmbeddedPostgres(folder / "pg")
    receiver = ChaosReceiver(seed=SEED, hang_s=HANG_S)
    secret_key = generate_key()
    pool: WorkerPool | None = None
    passed = False
    lags: list[float] = []
    stop_watch = asyncio.Event()
    try:
        url = await asyncio.to_thread(pg.start)
        await asyncio.to_thread(migrate, url)
        await receiver.start()
        setup = await asyncio.to_thread(_setup, url, plan, SecretBox(secret_key), receiver)
        pool = WorkerPool(url, secret_key, logs)
        for _ in range(plan.workers):
            pool.start()
        faults = Faults()
        deadline = faults.started + plan.timeout_s
        watcher = asyncio.create_task(_watch_lag(lags, stop_watch))
        enqueue_retries, _ = await asyncio.gather(
            _enqueue_all(url, plan, setup["tenants"], deadline),
            _run_faults(plan, faults, pool, pg, receiver, rng),
        )
        states = await _wait_settled(url, plan.deliveries, deadline)
        settled = time.monotonic()
        stop_watch.set()
        await watcher
        pool.check()
        crashed = list(pool.crashed)
        killed = len(pool.killed)
        exits = pool.stop_all()
        verdict = await asyncio.to_thread(_verify, url, plan, setup, receiver)
        db_errors = pool.log_lines("database error")
        levels = pool.levels()
        stale = pool.log_lines("lease was taken over")

        print(f"\n=== chaos ({plan.name}, seed {SEED}) ===")
        for line in faults.log:
            print(f"  {line}")
        for name, value in verdict.figures.items():
            print(f"  {name:30} {value}")
        print(f"  {'final states':30} {states}")
        print(f"  {'workers started / killed':30} {pool.started} / {killed}")
        print(f"  {'leases held by killed workers':30} {faults.in_flight_killed}")
        print(f"  {'db restarts / receiver pauses':30} {faults.restarts} / {faults.pauses}")
        print(f"  {'enqueue waves retried':30} {enqueue_retries}")
        print(f"  {'worker db-error log lines':30} {db_errors}")
        print(f"  {'stale completions dropped':30} {stale}")
        print(f"  {'worker log lines by level':30} {levels}")
        print(f"  {'receiver loop lag max / p99':30} {max(lags):.2f}s / {_p99(lags):.2f}s")
        print(f"  {'settled after last fault':30} {settled - faults.last_fault:.1f}s")
        print(f"  {'whole run':30} {settled - faults.started:.1f}s")
        for problem in verdict.problems:
            print(f"  PROBLEM {problem}")

        assert not crashed, f"workers died without being killed: {crashed}"
        assert all(code == 0 for code in exits.values()), f"worker exits: {exits}"
        assert faults.kills >= len(plan.kill_at) and faults.restarts >= len(plan.restart_at)
        assert faults.in_flight_killed > 0, "no kill caught a worker with deliveries in flight"
        assert not verdict.problems, "\n".join(verdict.problems)
        passed = True
    finally:
        stop_watch.set()
        if pool is not None:
            pool.stop_all(timeout=10)
            if not passed:
                print(pool.tail())
        await receiver.stop()
        await asyncio.to_thread(pg.close)
        if os.environ.get("COURIER_CHAOS_KEEP"):
            print(f"kept {folder} (worker logs in {logs})")
        else:
            shutil.rmtree(folder, ignore_errors=True)
