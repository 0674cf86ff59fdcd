"""The web app's metrics registry."""

from __future__ import annotations

from fastapi import FastAPI

from courier.metrics import CourierMetrics


def app_metrics(app: FastAPI) -> CourierMetrics:
    """The app's metrics (one registry per app), made on first use.

    Only the API's families and the queue gauges: the worker's families belong to the
    workers, which serve them on their own port. `courier up` passes in the registry it
    shares with its in-process worker.
    """
    metrics: CourierMetrics | None = getattr(app.state, "metrics", None)
    if metrics is None:
        metrics = CourierMetrics(worker=False)
        app.state.metrics = metrics
    return metrics
