"""The delivery worker: claim → deliver → record, with leases and group-committed completions."""

from courier.worker.worker import Worker, WorkerConfig

__all__ = ["Worker", "WorkerConfig"]
