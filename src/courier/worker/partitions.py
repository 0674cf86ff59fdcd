"""Makes the history tables' day partitions ahead of time (courier.store.history).

Run by the maintenance ticker in every worker (one pass at a time: an advisory lock).
Days are made `days_ahead` ahead, so a worker that stops ticking for a while still
writes into day partitions; past that, rows go to the default partition, and the day's
partition, made later, takes them over.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from courier.store import history
from courier.store.maintenance import exclusive_pass

PARTITIONS_LOCK_KEY = 7_240_314_163  # pg_try_advisory_lock key of this pass
DAYS_AHEAD = 7


@dataclass(slots=True)
class PartitionRun:
    ran: bool  # False: another process holds the lock
    created: list[str] = field(default_factory=list)


class HistoryPartitions:
    def __init__(self, database_url: str, days_ahead: int = DAYS_AHEAD) -> None:
        self.database_url = database_url
        self.days_ahead = days_ahead

    async def run_once(self) -> PartitionRun:
        async with exclusive_pass(self.database_url, PARTITIONS_LOCK_KEY) as cur:
            if cur is None:
                return PartitionRun(ran=False)
            return PartitionRun(ran=True, created=await history.create_ahead(cur, self.days_ahead))
