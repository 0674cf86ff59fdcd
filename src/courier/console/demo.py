"""`courier up --demo`: a demo tenant whose deliveries show every outcome in the console.

A small receiver runs inside `courier up` on 127.0.0.1 (a free port) with one route per
behaviour, and the `demo` tenant gets one destination per route:

    orders-service   /ok     200                              → delivered
    crm-sync         /flaky  503 twice per message, then 200  → retried, then delivered
    shipping-api     /down   503 always, long backoff         → retrying (retry_scheduled)
    ledger           /down   503 always, 3 attempts, short    → dead-lettered
    legacy-erp       /bad    400                              → failed

Seeding is idempotent: destinations are found by name (and pointed at this run's
receiver port), events carry idempotency keys, so running it again sends nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from courier.crypto import SecretBox
from courier.destinations import create_destination
from courier.enqueue import enqueue_event
from courier.serving import bind, serving
from courier.store.destinations import destination_ids_by_name, point_destination
from courier.tenancy import create_api_key, create_tenant, resolve_tenants

DEMO_TENANT = "demo"
FLAKY_FAILURES = 2  # /flaky answers 503 this many times per message before 200


@dataclass(frozen=True, slots=True)
class DemoDestination:
    name: str
    path: str
    event_types: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)


DESTINATIONS = (
    DemoDestination("orders-service", "/ok", ("order.*",)),
    DemoDestination(
        "crm-sync", "/flaky", ("customer.*",), {"backoff_initial_ms": 1000, "backoff_max_ms": 2000}
    ),
    DemoDestination(
        "shipping-api",
        "/down",
        ("shipment.*",),
        {"max_attempts": 8, "backoff_initial_ms": 30_000, "backoff_max_ms": 3_600_000},
    ),
    DemoDestination(
        "ledger",
        "/down",
        ("invoice.*",),
        {"max_attempts": 3, "backoff_initial_ms": 500, "backoff_max_ms": 1000},
    ),
    DemoDestination("legacy-erp", "/bad", ("invoice.*",)),
)
EVENTS = (
    ("order.created", {"order_id": 1001, "total": "42.00"}),
    ("order.created", {"order_id": 1002, "total": "17.50"}),
    ("order.shipped", {"order_id": 1001}),
    ("customer.updated", {"customer_id": "c_77", "plan": "pro"}),
    ("customer.updated", {"customer_id": "c_78", "plan": "team"}),
    ("shipment.created", {"shipment_id": "s_9", "carrier": "post"}),
    ("invoice.paid", {"invoice_id": "in_5", "amount": "99.00"}),
)


class DemoReceiver:
    """The demo's endpoints: /ok, /flaky (per webhook-id), /down and /bad."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._seen: Counter[str] = Counter()
        self._stack = contextlib.AsyncExitStack()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def _ok(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def _flaky(self, request: Request) -> PlainTextResponse:
        message = request.headers.get("webhook-id", "")
        self._seen[message] += 1
        if self._seen[message] <= FLAKY_FAILURES:
            return PlainTextResponse("warming up, try again", status_code=503)
        return PlainTextResponse("ok")

    async def _down(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("upstream unavailable", status_code=503)

    async def _bad(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse('{"error": "unknown field: total"}', status_code=400)

    async def start(self) -> DemoReceiver:
        app = Starlette(
            routes=[
                Route("/ok", self._ok, methods=["POST"]),
                Route("/flaky", self._flaky, methods=["POST"]),
                Route("/down", self._down, methods=["POST"]),
                Route("/bad", self._bad, methods=["POST"]),
            ]
        )
        self.port = await self._stack.enter_async_context(serving(app, bind(self.host, self.port)))
        return self

    async def stop(self) -> None:
        await self._stack.aclose()


def demo_tenant_key(url: str) -> str:
    """A fresh API key of the demo tenant (the tenant is created on first use)."""
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            (tenant_id,) = resolve_tenants(conn, [DEMO_TENANT])
        except ValueError:
            return create_tenant(conn, DEMO_TENANT)[1].key
        return create_api_key(conn, tenant_id, name="courier up --demo").key


def seed(url: str, box: SecretBox, receiver: DemoReceiver) -> int:
    """Create or re-point the demo destinations and send the demo events (idempotent).

    Returns how many events were new.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        (tenant_id,) = resolve_tenants(conn, [DEMO_TENANT])
        existing = destination_ids_by_name(conn, tenant_id)
        for spec in DESTINATIONS:
            target = receiver.url(spec.path)
            if spec.name in existing:
                point_destination(conn, tenant_id, existing[spec.name], target)
            else:
                create_destination(
                    conn,
                    box,
                    tenant_id,
                    name=spec.name,
                    url=target,
                    event_types=spec.event_types,
                    **spec.settings,
                )
        return sum(
            _send(conn, tenant_id, index, kind, payload)
            for index, (kind, payload) in enumerate(EVENTS)
        )


def _send(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, index: int, kind: str, payload: Any
) -> int:
    result = enqueue_event(conn, tenant_id, kind, payload, idempotency_key=f"demo-{index}")
    return 1 if result.created else 0


async def start_demo(url: str, box: SecretBox) -> DemoReceiver:
    """Start the demo receiver and seed the demo tenant against it."""
    receiver = await DemoReceiver().start()
    await asyncio.to_thread(seed, url, box, receiver)
    return receiver
