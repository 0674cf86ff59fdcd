"""What an app keeps between requests, as one typed object instead of a bag of attributes.

`create_api` builds an `AppState` and `state_of(app)` returns it; the API and the console
read it from there. What belongs to one front end only (the API's key and schema caches,
the console's cookie signer and sign-in throttle) is kept by type with `own`, so this
module names no front end's classes and the layers still point one way.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request

from courier.crypto import SecretBox
from courier.metrics import CourierMetrics
from courier.queue_stats import QUEUE_STATS_INTERVAL_S, QueueStatsCollector
from courier.settings import Settings
from courier.web.event_stream import FeedHub, StreamConfig, StreamSlots

T = TypeVar("T")


@dataclass(eq=False)
class AppState:
    settings: Settings
    # where what must bypass a transaction-mode pooler connects (the stream's LISTEN)
    direct_url: str | None
    secret_box: SecretBox | None  # None: the server has no COURIER_SECRET_KEY
    metrics: CourierMetrics | None = None  # made on first use (courier.web.metrics)
    # opened by the lifespan, with when each connection was last given back whole
    pool: AsyncConnectionPool[Any] | None = None
    conn_returned_at: MutableMapping[Any, float] | None = None
    # the lifecycle stream: one LISTEN per app, a slot table per tenant, its timings
    feed_hub: FeedHub | None = None
    stream_slots: StreamSlots | None = None
    event_stream_config: StreamConfig = field(default_factory=StreamConfig)
    queue_stats: QueueStatsCollector | None = None
    queue_stats_interval_s: float = QUEUE_STATS_INTERVAL_S
    _owned: dict[type, object] = field(default_factory=dict)

    def own(self, kind: type[T], make: Callable[[], T]) -> T:
        """The app's one `kind`, made by `make` on first use."""
        found = self._owned.get(kind)
        if found is None:
            found = self._owned[kind] = make()
        assert isinstance(found, kind)
        return found

    def open_pool(self) -> AsyncConnectionPool[Any]:
        """The pool, which exists from the lifespan's start (a request never comes before)."""
        if self.pool is None:
            raise RuntimeError("the app's connection pool is not open: its lifespan has not run")
        return self.pool


def state_of(app: Starlette) -> AppState:
    state = app.state.courier
    assert isinstance(state, AppState), "not an app built by courier.api.create_api"
    return state


def request_state(request: Request) -> AppState:
    return state_of(request.app)
