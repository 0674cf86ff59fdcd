"""Typed functions over the statements behind the queue gauges."""

from __future__ import annotations

from dataclasses import dataclass

from courier.store.rows import AsyncConn, fetch_one


@dataclass(frozen=True, slots=True)
class QueueStats:
    pending: int
    retry_scheduled: int
    delivering: int
    oldest_due_seconds: float  # 0 when nothing is due

    def depth(self) -> dict[str, int]:
        """Deliveries by non-terminal state, as `courier_queue_depth{state}` shows them."""
        return {
            "pending": self.pending,
            "retry_scheduled": self.retry_scheduled,
            "delivering": self.delivering,
        }


async def read_queue_stats(conn: AsyncConn) -> QueueStats:
    row = await fetch_one(conn, "queue_stats")
    assert row is not None  # an aggregate always answers one row
    return QueueStats(
        pending=int(row["pending"]),
        retry_scheduled=int(row["retry_scheduled"]),
        delivering=int(row["delivering"]),
        oldest_due_seconds=float(row["oldest_due_seconds"]),
    )
