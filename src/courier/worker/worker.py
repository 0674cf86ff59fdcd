"""One delivery worker process.

The loop claims up to its free slots in one statement, delivers each claimed row in its
own task through the adapter, and hands the result to the completer, which writes
results in batches. A few claimed rows wait in memory (`prefetch`), so a slot that
frees starts its next delivery at once instead of after a database round trip. Side
tasks keep leases alive (heartbeat) and listen for NOTIFY. When idle it sleeps until a
NOTIFY, the next due retry, or the jittered poll interval, whichever comes first. Every
worker hears every NOTIFY: one whose last NOTIFY-started claim found nothing (another
worker took the rows) looks at what falls due before it claims again (`_defer`).

A claimed row whose destination's signing secret no key of this worker opens (a wrong
or incomplete COURIER_SECRET_KEY) is not attempted: its claim is undone without
spending an attempt and it waits `unsignable_delay_s`, loudly (an ERROR line per
destination, `courier_secret_decrypt_failures_total`), so a misconfigured worker never
burns retries or dead-letters deliveries it never sent.

Stopping (SIGTERM/SIGINT): no new claims; in-flight deliveries get a grace period; what
is still unfinished then is cancelled and its lease handed back (expired at once), so
another worker picks it up immediately and closes the lost attempt as `abandoned`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from courier.adapters.base import (
    AttemptResult,
    DeliveryAdapter,
    DeliveryRequest,
    RequestOptions,
)
from courier.crypto import SecretBox, SecretKeyError
from courier.destination_options import envelope, open_options, request_options
from courier.errors import CourierError
from courier.logs import batched_log_lines
from courier.metrics import CourierMetrics
from courier.redact import summarize
from courier.retry import RetryPolicy, decide
from courier.store import deliveries as store
from courier.store.database import describe_url, hot_path_options
from courier.store.deliveries import ClaimedDelivery, Completed, Completion
from courier.store.notify import listen
from courier.store.pooler import is_pooled, pooled_kwargs
from courier.worker.completer import Completer
from courier.worker.delivery_log import log_completion
from courier.worker.maintenance import Service, run_maintenance

logger = logging.getLogger("courier.worker")

DB_RETRY_INITIAL_S = 0.1  # first wait after a database error
DB_RETRY_MAX_S = 5.0  # longest wait between reconnect attempts
SLOT_GATHER_S = 0.002  # once a slot frees, wait this long for more before claiming
POLL_JITTER = 0.1  # ±10% on the poll interval, so many workers do not poll in step
CAPPED_RETRY_S = 0.05  # re-claim delay while due work is held back by in-flight caps
# A worker whose last NOTIFY-started claim found nothing gives the others this many
# times its own claim's round trip (kept between the two bounds) before it looks, so
# that the look usually sees the row already taken.
DEFER_CLAIM_RTTS = 2.0
DEFER_MIN_S = 0.001
DEFER_MAX_S = 0.005

Key = tuple[uuid.UUID, uuid.UUID]
# The live signing secrets of a claimed row, or why it cannot be signed.
Secrets = tuple[str, ...] | Exception
# A broker kind's config with its secret fields decrypted, and those secrets' values.
KindConfig = tuple[dict[str, Any], tuple[str, ...]]
_NO_CONFIG: KindConfig = ({}, ())
# What a claimed row is delivered with besides its payload.
Prepared = tuple[ClaimedDelivery, Secrets, KindConfig, RequestOptions | None]


class LoopDied(CourierError, RuntimeError):
    """One of a worker's loops (listener, heartbeat, maintenance, completer) ended alone."""

    exit_code = 1  # not a refusal: a supervisor restarts the worker

    def __init__(self, loops: str) -> None:
        super().__init__(f"worker stopped: a loop ended unexpectedly: {loops}")
        self.loops = loops


@dataclass(slots=True)
class WorkerConfig:
    database_url: str
    worker_id: str
    tenant_ids: Sequence[uuid.UUID] | None  # None: every tenant
    concurrency: int = 64
    batch_size: int = 64
    poll_interval_s: float = 1.0
    lease_seconds: float = 60.0
    shutdown_grace_s: float = 30.0
    completion_interval_s: float = 0.02
    # How long a delivery this worker cannot sign waits before it is claimed again.
    unsignable_delay_s: float = 30.0
    # Claimed rows kept ready beyond the in-flight slots; None: half the concurrency, at
    # most one batch.
    prefetch: int | None = None
    # PostgreSQL itself when database_url is a transaction-mode pooler: the LISTEN
    # connection goes here (see courier.store.pooler). None: database_url.
    direct_url: str | None = None
    tenant_filter: frozenset[str] = field(init=False)
    pooled: bool = field(init=False)

    def __post_init__(self) -> None:
        self.tenant_filter = frozenset(str(t) for t in self.tenant_ids or ())
        self.pooled = is_pooled(self.database_url, self.direct_url)
        if self.prefetch is None:
            self.prefetch = min(self.batch_size, max(1, self.concurrency // 2))


class Worker:
    def __init__(
        self,
        config: WorkerConfig,
        adapter: DeliveryAdapter,
        secret_box: SecretBox,
        metrics: CourierMetrics | None = None,
        maintenance: Sequence[Service] = (),
        maintenance_interval_s: float = 300.0,
    ) -> None:
        self.config = config
        self._maintenance = list(maintenance)
        self._maintenance_interval_s = maintenance_interval_s
        self.adapter = adapter
        self.secret_box = secret_box
        self.metrics = metrics or CourierMetrics(api=False)
        self._held: dict[Key, int] = {}  # claimed and not yet committed -> attempt number
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._loops: list[asyncio.Task[None]] = []  # side tasks and completer, while running
        self._died: list[str] = []  # loops that ended alone: the worker is stopping for them
        # Claimed (leased, attempt row written) but not started: started as slots free.
        self._ready: collections.deque[Prepared] = collections.deque()
        self._slot_freed = asyncio.Event()
        # The claim loop tops up ready rows once they fall to this many (half the prefetch).
        self._low_water = (config.prefetch or 0) // 2
        self._wake = asyncio.Event()
        self._wake_cause = "notify"  # what set _wake last: the trigger of the claim it starts
        # Set when a NOTIFY-started claim found nothing (another worker took the rows),
        # cleared when a claim gets rows: see _defer.
        self._deferring = False
        # A moving average of the claim's wall time: how long a peer's claim may take.
        self._claim_rtt_s = DEFER_MIN_S / DEFER_CLAIM_RTTS
        self._claim_conn: psycopg.AsyncConnection[Any] | None = None
        self._claim_cursor = store.ClaimCursor()
        self._db_failures = 0
        self._completer = Completer(
            worker_id=config.worker_id,
            connect=self._connect,
            interval_s=config.completion_interval_s,
            max_pending=max(4 * config.concurrency, 256),
            batch_target=config.batch_size,
            on_committed=self._on_committed,
            on_db_error=self._db_error,
            pooled=config.pooled,
        )
        self.claimed_total = 0
        self.completed_total = 0

    # -- connections -------------------------------------------------------------------

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        """A connection for the claim, completions and leases (through the pooler, if any)."""
        url = self.config.database_url
        # A pooler refuses `options`; the store sets HOT_PATH_SETTINGS per transaction.
        session = pooled_kwargs(True) if self.config.pooled else {"options": hot_path_options(url)}
        conn = await psycopg.AsyncConnection.connect(
            url,
            autocommit=True,
            application_name=f"courier-worker {self.config.worker_id}"[:63],
            **session,
        )
        self._db_failures = 0
        return conn

    async def _connect_direct(self) -> psycopg.AsyncConnection[Any]:
        """The LISTEN connection: a NOTIFY reaches only the session that listens, so it
        bypasses a transaction-mode pooler."""
        if not self.config.pooled:
            return await self._connect()
        assert self.config.direct_url is not None
        conn = await psycopg.AsyncConnection.connect(
            self.config.direct_url,
            autocommit=True,
            application_name=f"courier-listen {self.config.worker_id}"[:63],
        )
        self._db_failures = 0
        return conn

    async def _db_error(self, exc: BaseException) -> None:
        """One clear line, then back off before the caller reconnects."""
        self.metrics.database_errors_total.inc()
        self._db_failures += 1
        delay = min(DB_RETRY_MAX_S, DB_RETRY_INITIAL_S * 2 ** min(self._db_failures - 1, 10))
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        logger.warning(
            "database error (%s: %s) at %s; retrying in %.1fs",
            type(exc).__name__,
            summarize(first_line),
            describe_url(self.config.database_url),
            delay,
        )
        await asyncio.sleep(delay * (0.5 + random.random() / 2))

    async def _claim_connection(self) -> psycopg.AsyncConnection[Any]:
        if self._claim_conn is None or self._claim_conn.closed:
            self._claim_conn = await self._connect()
        return self._claim_conn

    async def _drop_claim_connection(self) -> None:
        conn, self._claim_conn = self._claim_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    # -- the main loop -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop`; raises LoopDied if one of the worker's loops ended alone.

        A loop that dies (an unexpected exception, or a return while not stopping) would
        leave the worker claiming without wake-ups, leases or completions: the worker stops
        as if signalled, hands back what it holds, and raises, so that the process exits
        non-zero and its supervisor starts a fresh one.
        """
        halt = asyncio.Event()  # the caller's stop, or a loop's death
        forward = asyncio.create_task(_forward(stop, halt), name="courier-stop")
        died: list[str] = []

        def supervise(task: asyncio.Task[None]) -> None:
            if halt.is_set() and (task.cancelled() or task.exception() is None):
                return  # a loop ending because we stop
            error = None if task.cancelled() else task.exception()
            if error is not None:
                reason = f"{type(error).__name__}: {error}"
            else:
                reason = "cancelled" if task.cancelled() else "it returned"
            died.append(f"{task.get_name()} ({reason})")
            self._died.append(task.get_name())
            logger.error(
                "worker loop %s stopped unexpectedly (%s); stopping the worker",
                task.get_name(),
                reason,
                exc_info=error,
            )
            halt.set()

        completer_stop = asyncio.Event()
        side = [
            asyncio.create_task(self._listen(halt), name="courier-listen"),
            asyncio.create_task(self._heartbeat(halt), name="courier-heartbeat"),
        ]
        if self._maintenance and self._maintenance_interval_s > 0:
            side.append(
                asyncio.create_task(
                    run_maintenance(self._maintenance, self._maintenance_interval_s, halt),
                    name="courier-maintenance",
                )
            )
        completer = asyncio.create_task(self._completer.run(completer_stop), name="completer")
        self._loops = [*side, completer]
        for task in self._loops:
            task.add_done_callback(supervise)
        try:
            await self._claim_loop(halt)
        finally:
            self._loops = []
            for task in (*side, completer):
                task.remove_done_callback(supervise)
            forward.cancel()
            await self._shutdown(completer, completer_stop, side)
        if died:
            raise LoopDied(", ".join(died))

    def dead_loops(self) -> list[str] | None:
        """Loops that ended while the worker ran (liveness); None when it is not running.

        A loop that died stays listed while the worker stops because of it.
        """
        if self._died:
            return list(self._died)
        if not self._loops:
            return None
        return [task.get_name() for task in self._loops if task.done()]

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        cfg = self.config
        capacity = cfg.concurrency + (cfg.prefetch or 0)
        gather_threshold = max(1, min(cfg.batch_size, capacity) // 4)
        gathered = False
        trigger = "start"
        overlapped = False  # the last claim got rows and a NOTIFY landed while it ran
        while not stop.is_set():
            # A slot frees when its HTTP exchange ends, not when the result commits: the
            # completer's bounded queue is what holds back a worker the database can't
            # keep up with.
            free = capacity - len(self._tasks) - len(self._ready)
            if free <= 0 or len(self._ready) > self._low_water:
                # Full, or enough is ready to start as slots free: top up in batches.
                self._slot_freed.clear()
                await _wait_any(stop, self._slot_freed, timeout=None)
                trigger = "refill"
                continue
            if self._tasks and not self._ready and free < gather_threshold and not gathered:
                # Claim in batches, not one row per freed slot: give others a moment.
                self._slot_freed.clear()
                await _wait_any(stop, self._slot_freed, timeout=SLOT_GATHER_S)
                gathered = True
                trigger = "refill"
                continue
            gathered = False
            if trigger == "notify" and (self._deferring or overlapped):
                # The NOTIFY that landed during our own claim is often for a row that
                # claim took already: look (at once) before claiming again.
                due_now, trigger = await self._defer(stop, grace=self._deferring)
                overlapped = False
                if not due_now:
                    continue
            limit = min(free, cfg.batch_size)
            # Cleared before the claim, so a NOTIFY that lands while it runs is not lost.
            self._wake.clear()
            started = asyncio.get_running_loop().time()
            try:
                conn = await self._claim_connection()
                claimed = await store.claim_deliveries(
                    conn,
                    worker_id=cfg.worker_id,
                    limit=limit,
                    lease_seconds=cfg.lease_seconds,
                    tenant_ids=cfg.tenant_ids,
                    cursor=self._claim_cursor,
                    pooled=cfg.pooled,
                )
            except (psycopg.Error, OSError) as exc:
                await self._drop_claim_connection()
                await self._db_error(exc)
                trigger = "error"
                continue
            self._db_failures = 0
            took = asyncio.get_running_loop().time() - started
            self._claim_rtt_s += (took - self._claim_rtt_s) / 8
            self.metrics.claims_total.labels(trigger, "rows" if claimed else "empty").inc()
            if claimed:
                self._deferring = False
            elif trigger == "notify":
                self._deferring = True
            unsignable = self._hold(claimed)
            if unsignable:
                await self._hand_back(conn, unsignable)
            if len(claimed) == limit:
                trigger = "more"
                continue  # there is probably more
            if self._wake.is_set():
                # Enqueued while we claimed: _idle_wait would return at once, so skip
                # its query of what falls due next.
                trigger = self._wake_cause
                overlapped = bool(claimed)
                continue
            trigger = await self._idle_wait(stop)

    def _wake_up(self, cause: str) -> None:
        self._wake_cause = cause
        self._wake.set()

    async def _defer(self, stop: asyncio.Event, *, grace: bool) -> tuple[bool, str]:
        """A NOTIFY woke a worker that lost the last race for one: look before claiming.

        Every worker hears every NOTIFY. With nothing to tell them apart, all of them
        claim and all but one find nothing, and an empty claim costs PostgreSQL about
        ten times the look at what falls due next (docs/benchmarks.md, "Wake-ups"). So
        the loser of the last race waits for the winner's claim to commit, then looks:
        nothing due, and it goes back to waiting without claiming; something due (the
        winner was full, slow or gone), and it claims now. Whichever worker gets rows
        claims at once on the next NOTIFY; a worker that only finds nothing defers.
        Without `grace` it looks at once (a NOTIFY that landed during its own claim).

        Returns (claim now, the trigger of the next claim).
        """
        self._wake.clear()  # a NOTIFY from here on is for work this look may not see
        if grace:
            wait = min(DEFER_MAX_S, max(DEFER_MIN_S, DEFER_CLAIM_RTTS * self._claim_rtt_s))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
            if stop.is_set():
                return False, "notify"
        due = await self._next_due()
        if isinstance(due, str):
            return False, due
        if due is not None and due <= datetime.now(UTC):
            self.metrics.deferred_wakeups_total.labels("claimed").inc()
            return True, "notify"
        self.metrics.deferred_wakeups_total.labels("skipped").inc()
        return False, await self._wait(stop, due)

    async def _next_due(self) -> datetime | str | None:
        """When the next waiting delivery falls due, or "error" after a database error."""
        try:
            conn = await self._claim_connection()
            return await store.next_due_at(conn, tenant_ids=self.config.tenant_ids)
        except (psycopg.Error, OSError) as exc:
            await self._drop_claim_connection()
            await self._db_error(exc)
            return "error"

    async def _idle_wait(self, stop: asyncio.Event) -> str:
        """Wait for a reason to claim again; returns it (a `claims_total` trigger)."""
        due = await self._next_due()
        if isinstance(due, str):
            return due
        return await self._wait(stop, due)

    async def _wait(self, stop: asyncio.Event, due: datetime | None) -> str:
        """Until a wake-up, `due`, or the poll interval; returns what ended the wait."""
        cfg = self.config
        timeout = cfg.poll_interval_s * (1 + POLL_JITTER * (2 * random.random() - 1))
        events = [self._wake]
        reason = "poll"
        if due is not None:
            until_due = (due - datetime.now(UTC)).total_seconds()
            if until_due > 0:
                if until_due < timeout:
                    timeout, reason = until_due, "due"
            elif self._claim_cursor.at_start:
                # Work is due but this claim got less than it asked: the destinations
                # are at their in-flight caps or other workers hold the rows. Retry
                # when one of ours commits, or shortly, instead of spinning.
                timeout, reason = min(timeout, CAPPED_RETRY_S), "capped"
                self._slot_freed.clear()
                events.append(self._slot_freed)
            else:
                return "more"  # the walk stopped early; more destinations follow the cursor
        await _wait_any(stop, *events, timeout=timeout)
        return self._wake_cause if self._wake.is_set() else reason

    def _hold(self, claimed: Sequence[ClaimedDelivery]) -> list[ClaimedDelivery]:
        """Queue what can be signed; returns the rows whose secrets do not decrypt."""
        # Rows of one destination share one secrets list: resolve each list once.
        now = datetime.now(UTC).isoformat()
        resolved: dict[int, Secrets] = {}
        configs: dict[int, KindConfig | SecretKeyError] = {}
        options: dict[tuple[int, int, bool], RequestOptions | SecretKeyError] = {}
        unsignable: list[ClaimedDelivery] = []
        for row in claimed:
            secrets = resolved.get(id(row.signing_secrets))
            if secrets is None:
                secrets = resolved[id(row.signing_secrets)] = self._live_secrets(row, now)
            if isinstance(secrets, SecretKeyError):
                unsignable.append(row)
                continue
            config = _NO_CONFIG
            if row.config_secrets:
                found = configs.get(id(row.config_secrets))
                if found is None:
                    found = configs[id(row.config_secrets)] = self._kind_config(row)
                if isinstance(found, SecretKeyError):
                    unsignable.append(row)  # handed back like a secret that won't open
                    continue
                config = found
            elif row.config:
                config = (row.config, ())
            opened: RequestOptions | None = None
            if row.options or row.capture_response_body:
                # Rows with equal options share their parsed dicts (the secrets' tokens
                # differ per destination): opened once per claim.
                slot = (id(row.options), id(row.option_secrets), row.capture_response_body)
                found_options = options.get(slot)
                if found_options is None:
                    found_options = options[slot] = self._request_options(row)
                if isinstance(found_options, SecretKeyError):
                    unsignable.append(row)
                    continue
                opened = found_options
            self._held[row.key] = row.attempt_number
            self._ready.append((row, secrets, config, opened))
        self.claimed_total += len(claimed) - len(unsignable)
        self.metrics.in_flight.set(len(self._held))
        self._start_ready()
        return unsignable

    async def _hand_back(
        self, conn: psycopg.AsyncConnection[Any], rows: list[ClaimedDelivery]
    ) -> None:
        """Undo the claims of rows we cannot sign: no attempt spent, and say so loudly."""
        delay = self.config.unsignable_delay_s
        self.metrics.secret_decrypt_failures_total.inc(len(rows))
        by_destination = collections.Counter(row.destination_id for row in rows)
        for destination_id, count in by_destination.items():
            logger.error(
                "destination %s: its signing secret (or a secret config field or option) cannot be "
                "decrypted with COURIER_SECRET_KEY (wrong key, or the key that encrypted it "
                "was removed); %d delivery(ies) handed back without spending an attempt, "
                "retrying in %.0fs",
                destination_id,
                count,
                delay,
            )
        try:
            await store.hand_back_unsignable(
                conn, worker_id=self.config.worker_id, claimed=rows, delay_s=delay
            )
        except (psycopg.Error, OSError) as exc:
            # Not handed back: the leases expire and the next claim closes the attempts
            # as abandoned, as for any lost worker.
            await self._drop_claim_connection()
            await self._db_error(exc)

    def _start_ready(self) -> None:
        while self._ready and len(self._tasks) < self.config.concurrency:
            row, secrets, config, opened = self._ready.popleft()
            self._tasks[row.key] = asyncio.create_task(self._deliver(row, secrets, config, opened))

    # -- one delivery --------------------------------------------------------------------

    def _live_secrets(self, row: ClaimedDelivery, now: str) -> Secrets:
        try:
            return tuple(
                self.secret_box.decrypt(s["token"])
                for s in row.signing_secrets
                if not s.get("expires_at") or s["expires_at"] > now
            )
        except Exception as exc:  # a destination we cannot sign for must not crash us
            return exc

    def _kind_config(self, row: ClaimedDelivery) -> KindConfig | SecretKeyError:
        try:
            opened = {k: self.secret_box.decrypt(t) for k, t in row.config_secrets.items()}
        except SecretKeyError as exc:
            return exc
        return {**row.config, **opened}, tuple(opened.values())

    def _request_options(self, row: ClaimedDelivery) -> RequestOptions | SecretKeyError:
        try:
            opened = {k: self.secret_box.decrypt(t) for k, t in row.option_secrets.items()}
        except SecretKeyError as exc:
            return exc
        whole = open_options(row.options, opened)
        return request_options(whole, row.capture_response_body)

    async def _deliver(
        self,
        row: ClaimedDelivery,
        secrets: Secrets,
        config: KindConfig,
        opened: RequestOptions | None,
    ) -> None:
        try:
            if isinstance(secrets, Exception):  # not a key problem (those are handed back)
                result = AttemptResult(
                    outcome="retryable_failure",
                    http_status=None,
                    duration_ms=0,
                    error_summary=summarize(f"cannot sign: {secrets}"),
                )
            else:
                request = DeliveryRequest(
                    url=row.url,
                    event_id=str(row.event_id),
                    body=row.payload if row.payload_format == "raw" else _envelope(row),
                    secrets=secrets,
                    timeout_s=row.timeout_ms / 1000,
                    tenant_id=str(row.tenant_id),
                    kind=row.kind,
                    event_type=row.event_type,
                    config=config[0],
                    config_secrets=config[1],
                    max_in_flight=row.max_in_flight,
                    destination_id=row.destination_id,
                    delivery_id=row.id,
                    attempt_number=row.attempt_number,
                    options=opened,
                )
                result = await self.adapter.deliver(request)
            completion = self._decide(row, result)
            self.metrics.attempt(
                row.destination_id, result.outcome, result.duration_ms / 1000, row.kind
            )
            await self._completer.submit(completion)
        finally:
            self._tasks.pop(row.key, None)
            self._start_ready()
            if len(self._ready) <= self._low_water:  # else the claim loop has nothing to do
                self._slot_freed.set()

    def _decide(self, row: ClaimedDelivery, result: AttemptResult) -> Completion:
        policy = _retry_policy(
            max_attempts=row.max_attempts,
            max_age_seconds=row.max_age_seconds,
            backoff_initial_ms=row.backoff_initial_ms,
            backoff_max_ms=row.backoff_max_ms,
        )
        now = datetime.now(UTC)
        decision = decide(
            result.outcome,
            row.attempt_number,
            policy,
            row.created_at,
            now,
            retry_after_s=result.retry_after_s,
        )
        delay = (
            (decision.next_attempt_at - now).total_seconds()
            if decision.next_attempt_at is not None
            else None
        )
        return Completion(
            tenant_id=row.tenant_id,
            delivery_id=row.id,
            attempt_number=row.attempt_number,
            state=decision.state,
            outcome=result.outcome,
            retry_delay_s=delay,
            http_status=result.http_status,
            error_summary=result.error_summary,
            duration_ms=result.duration_ms,
            reason=decision.reason,
            response_body_excerpt=result.response_body_excerpt,
        )

    def _on_committed(self, batch: list[Completion], written: list[Completed]) -> None:
        done = {(c.tenant_id, c.id) for c in written}
        with batched_log_lines():  # one line per attempt, one write per batch
            for completion in batch:
                # Only forget a row if it still is the attempt we hold (not a newer claim).
                if self._held.get(completion.key) == completion.attempt_number:
                    del self._held[completion.key]
                if completion.key not in done:
                    self.metrics.stale_completions_total.inc()
                    logger.warning(
                        "completion of delivery %s attempt %d dropped: the lease was taken over",
                        completion.delivery_id,
                        completion.attempt_number,
                    )
                else:
                    log_completion(completion, self.config.worker_id)
        for c in written:
            self.completed_total += 1
            if c.state == "delivered":
                self.metrics.deliveries_total.labels("delivered").inc()
                self.metrics.delivery_latency_seconds.observe(
                    max(0.0, (c.completed_at - c.created_at).total_seconds())
                )
            elif c.state == "retry_scheduled":
                self.metrics.retries_scheduled_total.inc()
                self._wake_up("retry")  # an idle loop re-reads when the next retry falls due
            else:
                self.metrics.deliveries_total.labels(c.state).inc()
                if c.state == "dead_lettered":
                    self.metrics.dead_letters_total.inc()
        self.metrics.in_flight.set(len(self._held))
        self._slot_freed.set()

    # -- side tasks ----------------------------------------------------------------------

    async def _listen(self, stop: asyncio.Event) -> None:
        """Turn NOTIFYs for the tenants we serve into wake-ups; reconnect on failure."""
        served = self.config.tenant_filter

        def woken(tenant: str) -> None:
            if not served or tenant in served:
                self.metrics.notifications_total.inc()
                self._wake_up("notify")

        await listen(
            self._connect_direct,
            stop,
            on_notify=woken,
            # anything enqueued while we were not listening
            on_listening=functools.partial(self._wake_up, "notify"),
            on_error=self._db_error,
        )

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        """Keep the leases of held rows alive while their requests run."""
        interval = self.config.lease_seconds / 3
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)
                if stop.is_set() or not self._held:
                    continue
                keys = list(self._held)
                try:
                    if conn is None or conn.closed:
                        conn = await self._connect()
                    await store.extend_leases(
                        conn,
                        worker_id=self.config.worker_id,
                        keys=keys,
                        lease_seconds=self.config.lease_seconds,
                        pooled=self.config.pooled,
                    )
                except (psycopg.Error, OSError) as exc:
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            await conn.close()
                    conn = None
                    await self._db_error(exc)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    # -- stopping ------------------------------------------------------------------------

    async def _shutdown(
        self,
        completer: asyncio.Task[None],
        completer_stop: asyncio.Event,
        side: list[asyncio.Task[None]],
    ) -> None:
        # Rows claimed but never started are handed back below with the unfinished ones.
        self._ready.clear()
        tasks = list(self._tasks.values())
        if tasks:
            logger.info(
                "stopping: waiting up to %.0fs for %d in-flight deliveries",
                self.config.shutdown_grace_s,
                len(tasks),
            )
            _, unfinished = await asyncio.wait(tasks, timeout=self.config.shutdown_grace_s)
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.wait(unfinished)
        completer_stop.set()
        # The completer writes what it has, then exits; a dead database must not hang us.
        # (A completer that died already is reported by run(): nothing more to wait for.)
        await asyncio.wait({completer}, timeout=max(5.0, self.config.shutdown_grace_s))
        if not completer.done():
            completer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await completer
        for task in side:
            task.cancel()
        for task in side:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._held:
            keys = list(self._held)
            try:
                conn = await self._claim_connection()
                released = await store.release_leases(
                    conn, worker_id=self.config.worker_id, keys=keys, pooled=self.config.pooled
                )
                logger.info("stopping: handed back %d unfinished deliveries", released)
            except (psycopg.Error, OSError) as exc:
                logger.warning(
                    "stopping: could not hand back %d deliveries (%s); their leases will expire",
                    len(keys),
                    type(exc).__name__,
                )
        await self._drop_claim_connection()
        await self.adapter.close()


# Destinations repeat: one validated policy per distinct setting, not one per attempt.
_retry_policy = functools.lru_cache(maxsize=1024)(RetryPolicy)


async def _forward(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


async def _wait_any(stop: asyncio.Event, *events: asyncio.Event, timeout: float | None) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in (stop, *events)]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


def _envelope(row: ClaimedDelivery) -> bytes:
    return envelope(row.event_type, row.event_created_at or row.created_at, row.payload)
