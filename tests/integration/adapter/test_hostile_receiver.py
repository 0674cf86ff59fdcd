"""A real `courier worker` process delivers for two tenants while one of them points at a
receiver that answers with whatever hypothesis draws: responses split anywhere, slow,
huge or endless, malformed heads, answers before the request body is read, trailers and
endless trailers, 1xx floods, stray bytes after a response, hang-ups mid-body.

Tenant A's destination is the hostile receiver. Tenant B has one destination on a
healthy loopback receiver and one on the hostile receiver's well-behaved path (`/ok`),
the same origin as A's, so a connection A's answers left in a bad state is within
reach of B's requests. After every drawn script:

- B's deliveries all succeed on their first attempt, within their timeout;
- the worker's peak RSS (VmHWM) stays under 150 MB;
- no attempt's error summary holds a marker of another tenant's payload (each payload
  carries a unique marker at both ends, and the receiver echoes what it reads);
- A's attempts end within their timeout, those reading an endless stream sooner (at
  the client's bound on a response's bytes), and the worker process is still running.

Examples share one worker (starting one per example would take most of the budget), so
shrinking is off and each failure is reported as drawn. The drawn examples are the same
on every run (derandomized); the explicit ones hold what today's client got wrong: a
connection pooled across tenants carried one tenant's unread request body, or a stray
second answer, into another tenant's attempt, and endless trailers or chunk extensions
were read until the timeout (an endless trailer also held the worker's event loop).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from hypothesis import HealthCheck, Phase, example, given, note, settings
from hypothesis import strategies as st

from courier.crypto import SecretBox
from courier.destinations import create_destination
from courier.enqueue import enqueue_event
from courier.tenancy import create_tenant
from tests.support.engine import TERMINAL, worker_process
from tests.support.hostile import ECHO, Endless, Exchange, HostileServer, Read
from tests.support.receiver import Receiver

T = TypeVar("T")

RSS_LIMIT_KB = 150 * 1024
A_TIMEOUT_MS = 1_000
B_TIMEOUT_MS = 2_000
# Claiming is by polling (0.1 s) on a loaded machine: the slack between an enqueue and
# the attempt's start.
B_CLAIM_SLACK_S = 2.0
# An attempt's own timer fires on time unless something holds the event loop.
A_TIMER_SLACK_MS = 500
BIG_PAD = 300_000  # bytes: more than loopback buffers take while the receiver reads none
BUDGET_S = 60.0  # wall time for all examples; past it the drawn ones return at once
MARKER = re.compile(r"MK[0-9a-f]{16}")


def framed(status: int, body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d X\r\n%scontent-length: %d\r\n\r\n%s" % (status, extra, len(body), body)


def chunked(status: int, chunks: list[bytes], trailers: bytes = b"") -> bytes:
    out = [b"HTTP/1.1 %d X\r\ntransfer-encoding: chunked\r\n\r\n" % status]
    out += [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c]
    return b"".join([*out, b"0\r\n", trailers, b"\r\n"])


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"

MALFORMED = [
    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n"
    b"3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nx-a: a\r\n folded\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\ncontent-length: 0\n\n",
    b"HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/9.9 200 OK\r\ncontent-length: 0\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nx\x00y: z\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nconnection: upgrade\r\nupgrade: h2c\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\ncontent-length: 10\r\n\r\n0123456789",
    b"HTTP/1.1 200 OK\r\n" + b"x-a: b\r\n" * 300 + b"content-length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nx-long: " + b"a" * 20_000 + b"\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/1.1 200 " + b"R" * 70_000 + b"\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nended by close",
    b"\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
]

ENDLESS = [
    Endless(b"HTTP/1.1 500 X\r\ncontent-length: 99999999999\r\n\r\n", b"E" * 65536),
    Endless(b"HTTP/1.1 200 OK\r\n\r\n", b"B" * 65536),  # ended only by close
    Endless(CHUNKED_HEAD + b"2\r\nok\r\n0\r\nx-t: ", b"a" * 65536),  # one trailer, no end
    Endless(CHUNKED_HEAD + b"2\r\nok\r\n0\r\n", b"x-t: aaaaaaaa\r\n" * 4096),  # trailers
    Endless(b"HTTP/1.1 200 OK\r\nx-h: ", b"h" * 65536),  # a header without end
    Endless(b"", CONTINUE * 2048),  # a 1xx flood
    Endless(b"", EARLY_HINTS * 1024),
    Endless(CHUNKED_HEAD, b"1\r\nc\r\n" * 10_000),  # tiny chunks without end
    Endless(CHUNKED_HEAD + b"2;", b"e" * 65536),  # a chunk extension without end
    Endless(b"HTTP/1.1 200 ", b"r" * 65536),  # a reason phrase without end
]

bodies = st.one_of(
    st.sampled_from([b"", b"echo: " + ECHO, b"x" * 300]),
    st.binary(max_size=300).filter(lambda b: ECHO not in b),
)
statuses = st.sampled_from([200, 204, 301, 400, 429, 500, 503])


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A response and whether only the connection's close ends it."""
    status = draw(statuses)
    body = draw(bodies)
    kind = draw(st.sampled_from(["length", "chunked", "close"]))
    if kind == "length":
        extra = draw(st.sampled_from([b"", b"connection: close\r\n", b"retry-after: 1\r\n"]))
        return framed(status, body, extra), False
    if kind == "chunked":
        cut = draw(st.integers(0, len(body)))
        trailers = draw(st.sampled_from([b"", b"x-t: 1\r\n", b"x-t: 1\r\nx-u: " + ECHO + b"\r\n"]))
        return chunked(status, [body[:cut], body[cut:]], trailers), False
    return b"HTTP/1.1 %d X\r\n\r\n%s" % (status, body), True


@st.composite
def exchanges(draw: st.DrawFn) -> Exchange:
    reads: list[Read] = ["line", "head", "all", "all"]
    read = draw(st.sampled_from(reads))
    prefix = draw(st.sampled_from([b"", b"", CONTINUE, EARLY_HINTS * 3, CONTINUE * 500]))
    if draw(st.integers(0, 4)) == 0:
        return Exchange(read, prefix, then=draw(st.sampled_from(ENDLESS)), end="close")
    shape = draw(st.sampled_from(["ok", "ok", "malformed", "random", "truncated", "stray"]))
    until_close = False
    if shape == "malformed":
        response = draw(st.sampled_from(MALFORMED))
    elif shape == "random":
        response = draw(st.binary(min_size=1, max_size=400))
    else:
        response, until_close = draw(well_formed())
        if shape == "truncated":  # a hang-up mid-response
            response = response[: draw(st.integers(1, max(1, len(response) - 1)))]
        elif shape == "stray":
            response += draw(
                st.sampled_from([framed(500, b"stray " + ECHO), b"garbage\r\n", b"\0" * 64])
            )
    data = prefix + response
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=6))
    pause = draw(st.sampled_from([0.0, 0.0, 0.001, 0.03, 0.3]))
    ends: list[Any] = (
        ["close", "reset", "hang"] if until_close else ["keep", "close", "reset", "hang"]
    )
    return Exchange(read, data, tuple(cuts), pause, None, draw(st.sampled_from(ends)))


def explicit_examples(test: Callable[..., None]) -> Callable[..., None]:
    """What hypothesis might take long to draw, tried on every run: each endless stream,
    an answer before the body is read on a kept connection (the body stays unsent or
    unread), a second answer 50 ms after the first, a hang-up mid-body."""
    ok = framed(200, b"ok")
    scripts = [[Exchange("all", b"", then=endless, end="close")] for endless in ENDLESS]
    scripts.append([Exchange("head", framed(200, b"early"), end="keep")] * 2)
    scripts.append([Exchange("all", ok + framed(500, b"late " + ECHO), (len(ok),), 0.05)])
    scripts.append([Exchange("all", framed(500, b"E" * 4000)[:500], end="close")])
    for script in reversed(scripts):
        test = example(script=script, big=len(script) == 2)(test)
    return test


class LoopThread:
    """An event loop in a thread, for the receivers while the test itself stays sync."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@contextmanager
def receivers() -> Iterator[tuple[LoopThread, HostileServer, Receiver]]:
    loop = LoopThread()
    hostile = loop.run(HostileServer().start())
    healthy = loop.run(Receiver().start())
    try:
        yield loop, hostile, healthy
    finally:
        loop.run(hostile.stop())
        loop.run(healthy.stop())
        loop.close()


def peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def test_hostile_receiver_cannot_harm_another_tenant_or_the_worker(
    conn: psycopg.Connection[Any], db_url: str, secret_key: str, secret_box: SecretBox
) -> None:
    tenant_a, _ = create_tenant(conn, f"hostile-a-{uuid.uuid4().hex[:6]}")
    tenant_b, _ = create_tenant(conn, f"healthy-b-{uuid.uuid4().hex[:6]}")
    owner: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}  # marker -> (tenant, delivery)

    def enqueue(tenant: uuid.UUID, event_type: str, pad: int) -> uuid.UUID:
        marker = f"MK{uuid.uuid4().hex[:16]}"
        payload = {"a": marker, "p": "x" * pad, "z": marker}
        (only,) = enqueue_event(conn, tenant, event_type, payload).deliveries
        owner[marker] = (tenant, only.id)
        return only.id

    with receivers() as (loop, hostile, healthy):

        def destination(tenant: uuid.UUID, url: str, event_type: str, **kw: Any) -> None:
            create_destination(
                conn, secret_box, tenant, name=event_type, url=url, event_types=[event_type],
                max_in_flight=1, backoff_initial_ms=100, backoff_max_ms=100, **kw,
            )  # fmt: skip

        destination(tenant_a, hostile.url("/a"), "a.hook", timeout_ms=A_TIMEOUT_MS, max_attempts=1)
        destination(tenant_b, healthy.url("/b"), "b.healthy", timeout_ms=B_TIMEOUT_MS)
        destination(tenant_b, hostile.url("/ok"), "b.shared", timeout_ms=B_TIMEOUT_MS)
        worker = worker_process(db_url, secret_key)
        try:
            # Started and delivering before the clock of any example starts.
            _wait_terminal(conn, [enqueue(tenant_b, "b.healthy", 64)], timeout=60.0)
            started = time.monotonic()
            _exercise(conn, loop, hostile, worker, enqueue, tenant_a, tenant_b, owner, started)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def _exercise(
    conn: psycopg.Connection[Any],
    loop: LoopThread,
    hostile: HostileServer,
    worker: subprocess.Popen[bytes],
    enqueue: Any,
    tenant_a: uuid.UUID,
    tenant_b: uuid.UUID,
    owner: dict[str, tuple[uuid.UUID, uuid.UUID]],
    started: float,
) -> None:
    runs: list[list[Exchange]] = []

    @settings(
        max_examples=40,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # each example depends on the worker's past
        suppress_health_check=list(HealthCheck),
    )
    @given(script=st.lists(exchanges(), min_size=1, max_size=3), big=st.booleans())
    @explicit_examples
    def one_script(script: list[Exchange], big: bool) -> None:
        runs.append(script)
        if time.monotonic() - started > BUDGET_S and len(runs) > len(ENDLESS) + 3:
            return  # the budget is spent (the explicit examples, run first, have run)
        note(f"script={script!r} big={big}")
        hostile.script = script
        hostile.played = 0
        pad = BIG_PAD if big else 64
        a_ids, b_ids = [], []
        for _ in script:
            a_ids.append(enqueue(tenant_a, "a.hook", pad))
            b_ids.append(enqueue(tenant_b, "b.healthy", 64))
            b_ids.append(enqueue(tenant_b, "b.shared", 64))
        _wait_terminal(conn, a_ids + b_ids, timeout=30.0)
        loop.run(hostile.drop_connections())
        assert worker.poll() is None, f"the worker exited with {worker.returncode}"
        rss = peak_rss_kb(worker.pid)
        problems = [f"worker peak RSS {rss // 1024} MB"] if rss >= RSS_LIMIT_KB else []
        problems += _check_markers(conn, a_ids + b_ids, owner)
        problems += _check_a(conn, a_ids, endless=len(script) == 1 and script[0].then is not None)
        problems += _check_b(conn, b_ids)
        assert not problems, "\n".join(problems)

    one_script()
    assert len(runs) > len(ENDLESS) + 3


def _wait_terminal(conn: psycopg.Connection[Any], ids: list[uuid.UUID], timeout: float) -> None:
    """Bounded: a script's worst case is its attempts' timeouts one after another."""
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute(
            "SELECT count(*) FROM deliveries WHERE id = ANY(%s) AND state = ANY(%s)",
            (ids, list(TERMINAL)),
        ).fetchone()
        if row and row[0] == len(ids):
            return
        assert time.monotonic() < deadline, f"deliveries did not end within {timeout:g} s"
        time.sleep(0.05)


def _check_b(conn: psycopg.Connection[Any], ids: list[uuid.UUID]) -> list[str]:
    rows = conn.execute(
        "SELECT d.state, a.attempt_number, a.outcome, a.duration_ms, a.error_summary,"
        " extract(epoch FROM d.delivered_at - d.created_at) FROM deliveries d"
        " JOIN delivery_attempts a ON a.delivery_id = d.id WHERE d.id = ANY(%s)",
        (ids,),
    ).fetchall()
    problems = []
    for state, number, outcome, duration_ms, summary, latency in rows:
        if (state, number, outcome) != ("delivered", 1, "succeeded"):
            problems.append(f"B: attempt {number} {outcome}, delivery {state}: {summary!r}")
        elif latency is None or float(latency) > B_TIMEOUT_MS / 1000 + B_CLAIM_SLACK_S:
            problems.append(f"B: delivered {latency} s after its enqueue ({duration_ms} ms)")
    return problems


def _check_a(conn: psycopg.Connection[Any], ids: list[uuid.UUID], endless: bool) -> list[str]:
    """A's attempts end by their timeout; one that reads an endless stream (sent at full
    speed) ends sooner, when the client's bound on the bytes of a response is reached."""
    rows = conn.execute(
        "SELECT duration_ms, error_summary FROM delivery_attempts WHERE delivery_id = ANY(%s)",
        (ids,),
    ).fetchall()
    problems = []
    for duration_ms, summary in rows:
        if duration_ms > A_TIMEOUT_MS + A_TIMER_SLACK_MS:
            problems.append(f"A: an attempt took {duration_ms} ms ({summary!r})")
        elif endless and (summary or "").startswith("timeout"):
            problems.append(f"A: an endless response was read until the timeout ({summary!r})")
    return problems


def _check_markers(
    conn: psycopg.Connection[Any],
    ids: list[uuid.UUID],
    owner: dict[str, tuple[uuid.UUID, uuid.UUID]],
) -> list[str]:
    """Another tenant's bytes in a summary are a leak. Another request of the same tenant
    to the same receiver is not: that receiver saw both requests and may answer one with
    the other (it does, when it leaves a body unread on a kept connection and parses the
    rest as the next request); once the bytes are in the kernel, no client can tell."""
    rows = conn.execute(
        "SELECT tenant_id, delivery_id, error_summary FROM delivery_attempts"
        " WHERE delivery_id = ANY(%s) AND error_summary LIKE '%%MK%%'",
        (ids,),
    ).fetchall()
    problems = []
    for tenant, delivery_id, summary in rows:
        for marker in MARKER.findall(summary):
            other_tenant, other_delivery = owner.get(marker, (None, None))
            if other_tenant != tenant:
                problems.append(f"another tenant's bytes in {summary!r}")
            elif other_delivery != delivery_id:
                note(f"the receiver answered with another request's bytes: {summary!r}")
    return problems
