"""The adapter a worker delivers through: the webhook's, a broker kind's or a ticketing
kind's (which keeps its links between correlation keys and tickets in `database_url`).
Ticketing kinds speak HTTP and go through the egress proxy as webhooks do; broker kinds
speak their own protocols and connect directly.

Broker adapters are built on first use, so an installation without an optional extra
(aio-pika, nats-py, redis) still delivers webhooks and every other kind; a destination of
a kind whose extra is missing fails its attempts as permanent, saying which extra.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Final

from courier import kinds
from courier.adapters.base import AttemptResult, DeliveryAdapter, DeliveryRequest
from courier.adapters.brokers import AddressGuard

# kind -> (module, class) of its adapter; each takes an AddressGuard.
_ADAPTERS: Final = {
    "rabbitmq": ("courier.adapters.rabbitmq", "RabbitMQAdapter"),
    "nats": ("courier.adapters.nats", "NatsAdapter"),
    "redis_stream": ("courier.adapters.redis_stream", "RedisStreamAdapter"),
    "redmine": ("courier.adapters.redmine", "RedmineAdapter"),
}


class KindRouter:
    """`DeliveryAdapter` that hands each request to the adapter of its kind."""

    def __init__(
        self,
        webhook: DeliveryAdapter,
        *,
        allow_private: bool = False,
        allowed_networks: Sequence[str] = (),
        dns_servers: Sequence[str] = (),
        database_url: str | None = None,
        pooled: bool = False,
        egress_proxy: str | None = None,
    ) -> None:
        self._webhook = webhook
        self._database_url = database_url
        self._pooled = pooled
        self._egress_proxy = egress_proxy
        self._guard = AddressGuard(allow_private, allowed_networks, dns_servers)
        self._adapters: dict[str, DeliveryAdapter] = {}

    def _adapter(self, kind: str) -> DeliveryAdapter | str:
        adapter = self._adapters.get(kind)
        if adapter is not None:
            return adapter
        if kind not in _ADAPTERS:
            return f"no adapter for the destination kind {kind!r}"
        missing = kinds.extra_missing(kind)
        if missing is not None:
            return missing
        module, name = _ADAPTERS[kind]
        factory = getattr(importlib.import_module(module), name)
        made: DeliveryAdapter = (
            factory(
                self._guard,
                self._database_url,
                pooled=self._pooled,
                egress_proxy=self._egress_proxy,
            )
            if kind in kinds.TICKETING
            else factory(self._guard)
        )
        self._adapters[kind] = made
        return made

    async def deliver(self, request: DeliveryRequest) -> AttemptResult:
        if request.kind == "webhook":
            return await self._webhook.deliver(request)
        adapter = self._adapter(request.kind)
        if isinstance(adapter, str):
            return AttemptResult("permanent_failure", None, 0, adapter)
        return await adapter.deliver(request)

    async def close(self) -> None:
        adapters, self._adapters = list(self._adapters.values()), {}
        for adapter in (self._webhook, *adapters):
            await adapter.close()
        await self._guard.close()


__all__ = ["KindRouter"]
