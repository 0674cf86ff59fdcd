"""Loopback ports for the servers the tests start, stop and start again.

A port found by binding port 0 comes from the kernel's ephemeral range, and is free
for anyone the moment it is released. While a test's server is down (SIGKILLed, to be
restarted on the same port), any outgoing connection of the test process can be given
that port as its local end, and a client retrying a connect to it can even connect to
itself (TCP simultaneous open). The restarted server then cannot bind, or the test
talks to something that is not its server.

Ports here come from below the ephemeral range, from a block of their own for each
pytest-xdist worker (and for a plain run), and each is handed out once per session
before the block wraps around, so a port stays ours while its server is down.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

_LOW = 20000  # well above the well-known services this machine runs (5432, 5672, 6379, 4222)
_BLOCK = 1500


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _worker_index() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...; unset in a plain run
    return int(name[2:]) + 1 if name.startswith("gw") and name[2:].isdigit() else 0


def _block() -> range:
    blocks = max(1, (_ephemeral_low() - _LOW) // _BLOCK)
    start = _LOW + (_worker_index() % blocks) * _BLOCK
    return range(start, start + _BLOCK)


_candidates: Iterator[int] = itertools.cycle(_block())
_lock = threading.Lock()


def _bindable(port: int) -> bool:
    """Nothing listens on it and nothing holds it (a lingering TIME_WAIT included)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port no other test in this session has been given, free right now."""
    with _lock:
        for _ in range(_BLOCK):
            port = next(_candidates)
            if _bindable(port):
                return port
    raise RuntimeError(f"no free loopback port left in {_block()}")


def closed_port() -> int:
    """A loopback port nothing listens on (and nothing of ours will)."""
    return free_port()
