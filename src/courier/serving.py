"""Serving ASGI apps with uvicorn: inside an already running event loop, and in
several processes.

The worker's `/metrics` and the `courier up --demo` receiver run beside other work in
one loop. `uvicorn.Server.serve` would install its own SIGINT/SIGTERM handlers for the
whole process; here the owner of the loop keeps its signals and stops the server itself.

`supervise` runs `courier serve --workers N`: N forked processes on one listening socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from courier.errors import CourierError

STARTUP_TIMEOUT = 10.0  # seconds


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the caller owns the process's signals


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on (host, port); port 0 picks a free one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class PortUnavailable(CourierError, ValueError):
    """The listen address cannot be bound; the message is one line naming the setting."""


def listen(host: str, port: int, setting: str = "COURIER_PORT or --port") -> socket.socket:
    """A listening socket on (host, port), or PortUnavailable naming `setting`.

    Bound before anything says the service is up, so a busy port is one clear line.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise PortUnavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        raise PortUnavailable(
            f"cannot listen on {host}:{port}: {reason} (choose another with {setting})"
        ) from None
    sock.set_inheritable(True)
    return sock


def uvicorn_logging(level: str) -> dict[str, Any]:
    """uvicorn.Config arguments that leave logging to courier's own handler.

    With no log_config uvicorn installs no handlers of its own: its error and access
    lines propagate to the root logger and so get courier's format (JSON or human).
    """
    return {"log_config": None, "log_level": level}


async def wait_started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    """Wait until `server` accepts connections; False if its task ended first."""
    while not server.started:
        if task.done():
            return False
        await asyncio.sleep(0.01)
    return True


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, sock: socket.socket) -> AsyncIterator[int]:
    """Serve `app` on `sock` while inside; yields the bound port."""
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="courier-asgi-server")
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                    raise RuntimeError("the server stopped while starting")
                await asyncio.sleep(0.01)
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


MAX_DEFAULT_WORKERS = 8  # `courier serve` processes when COURIER_SERVE_WORKERS is unset
RESPAWN_PAUSE_S = 1.0  # seconds before a worker process that died is replaced
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, and a cgroup v2 CPU quota
    (a container's limit) when one is set."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    cores = cores or os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    return cores


def default_workers() -> int:
    return min(usable_cores(), MAX_DEFAULT_WORKERS)


PR_SET_PDEATHSIG = 1  # prctl(2)


def _stop_with(parent: int) -> None:
    """Have the kernel send this process SIGTERM when `parent` dies (Linux), so workers
    never outlive a supervisor that was killed outright; elsewhere nothing is done."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)


def supervise(
    workers: int,
    serve_one: Callable[[], None],
    log: logging.Logger,
    started: Callable[[], None] = lambda: None,
) -> int:
    """Run `serve_one` in `workers` forked processes sharing the listening socket the
    caller already holds; answer the exit code once they have all stopped. `started`
    runs once they are forked, with the stop signals already handled here.

    Fork before anything starts a thread or an event loop: each child builds its own app,
    pool and caches. SIGTERM or SIGINT here is passed on to every child (each stops
    gracefully, as one process would); a child that dies otherwise is replaced after
    RESPAWN_PAUSE_S.
    """
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False
    parent = os.getpid()

    def spawn(number: int) -> None:
        # Signals wait until each side has its own handlers: the child must not run the
        # parent's, nor the parent miss a child it is about to record.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid == 0:  # the child: its own signals, and never back into the caller's code
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                _stop_with(parent)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
                serve_one()
                code = 0
            except KeyboardInterrupt:
                code = 0
            except BaseException:
                log.exception("API worker process %d failed", number)
            finally:
                os._exit(code)
        children[pid] = number
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    failed = False
    try:
        for number in range(workers):
            if not stopping:
                spawn(number)
        started()
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in children:
                continue
            number = children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if stopping:
                failed = failed or code not in (0, -signal.SIGTERM)
                continue
            log.error("API worker process %d exited with %s; starting another", number, code)
            time.sleep(RESPAWN_PAUSE_S)
            if not stopping:
                spawn(number)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failed else 0
