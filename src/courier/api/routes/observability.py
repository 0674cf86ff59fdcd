"""The observability routes in one router: the lifecycle feed and stream, and /metrics.

Each carries its own lifespan (the LISTEN hub, the queue-gauge collector); including
this router merges them into the app's.
"""

from __future__ import annotations

from fastapi import APIRouter

from courier.api.routes import delivery_events, metrics

router = APIRouter()
router.include_router(delivery_events.router)
router.include_router(metrics.router)
