"""What the orchestrator needs from each queue it measures (courier and its peers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import psycopg


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    processes: int = 1
    concurrency: int = 64  # jobs in flight per process
    batch: int = 64  # jobs claimed per fetch, where the queue has such a setting

    @property
    def label(self) -> str:
        return f"{self.processes}p × c{self.concurrency} × b{self.batch}"


@dataclass(frozen=True, slots=True)
class WorkerCommand:
    argv: list[str]
    env: dict[str, str]


class Enqueuer(Protocol):
    """Enqueues one job at a time, each in its own committed transaction."""

    async def enqueue_one(self, n: int) -> str:
        """Enqueue job number n; returns the id the receiver sees as `webhook-id`."""
        ...

    async def close(self) -> None: ...


class Contestant(Protocol):
    name: str
    ready_marker: str  # printed by a worker process once it is serving

    async def install(self, url: str) -> None:
        """Install the schema into an empty database (done once, into a template)."""
        ...

    async def prepare(self, url: str, receiver_url: str) -> None:
        """Per-run setup in a fresh clone (courier: its tenant and destination)."""
        ...

    async def enqueue_bulk(self, url: str, events: int) -> tuple[float, float]:
        """Enqueue `events` jobs committed at once; returns (commit time, enqueue rate/s)."""
        ...

    def workers(self, url: str, receiver_url: str, spec: WorkerSpec) -> list[WorkerCommand]: ...

    async def done_count(self, conn: psycopg.AsyncConnection[Any]) -> int:
        """How many jobs are durably finished (committed as succeeded)."""
        ...

    async def open_enqueuer(self, url: str) -> Enqueuer: ...
