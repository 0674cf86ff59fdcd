"""The web app's metrics registry."""

from __future__ import annotations

from starlette.applications import Starlette

from courier.metrics import CourierMetrics
from courier.web.state import state_of


def app_metrics(app: Starlette) -> CourierMetrics:
    """The app's metrics (one registry per app), made on first use.

    Only the API's families and the queue gauges: the worker's families belong to the
    workers, which serve them on their own port. `courier up` passes in the registry it
    shares with its in-process worker.
    """
    state = state_of(app)
    if state.metrics is None:
        state.metrics = CourierMetrics(worker=False)
    return state.metrics
