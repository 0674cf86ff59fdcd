"""The `redis_stream` adapter: one `XADD` per attempt to `config.stream`.

The entry's fields are the signed headers (webhook-id, webhook-timestamp,
webhook-signature, courier-event-type) and `body`, the event payload. With
`config.maxlen` the stream is trimmed to about that many entries (`MAXLEN ~`).

Succeeds when Redis returns the entry id. Permanent: refused credentials, or a key that
is not a stream (WRONGTYPE). Retryable: connection failures, timeouts, other errors.
Each worker keeps one client per (tenant, broker URL), whose pool holds at most the
destination's `max_in_flight` connections; broken connections are replaced by the pool.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
import redis.exceptions as redis_errors

from courier.adapters import brokers
from courier.adapters.base import AttemptResult, DeliveryRequest
from courier.adapters.resolver import LookupFailed

CONNECT_TIMEOUT_S = 5.0


async def _open(url: str, size: int) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max(1, size), socket_connect_timeout=CONNECT_TIMEOUT_S
    )
    return aioredis.Redis(connection_pool=pool)


async def _close(client: aioredis.Redis) -> None:
    await client.aclose(close_connection_pool=True)


class RedisStreamAdapter(brokers.PooledBrokerAdapter[aioredis.Redis]):
    def __init__(self, guard: brokers.AddressGuard) -> None:
        super().__init__(guard, brokers.ClientPool(_open, _close))

    async def _publish(self, request: DeliveryRequest, started: float) -> AttemptResult:
        try:
            url = brokers.broker_url(request)
            stream = str(request.config.get("stream", ""))
            maxlen = request.config.get("maxlen")
            fields: dict[Any, Any] = {**brokers.signed_headers(request), "body": request.body}
            connect_url = await self._guard.vetted_url(url)
        except brokers.BrokerRefused as exc:
            return brokers.result(request, started, "permanent_failure", str(exc))
        except ValueError as exc:
            return brokers.result(request, started, "permanent_failure", f"cannot sign: {exc}")
        except LookupFailed as exc:
            text = f"DNS lookup failed: {exc.reason}"
            return brokers.result(request, started, "retryable_failure", text)
        client = await self._pool.get(request.tenant_id, url, connect_url, request.max_in_flight)
        try:
            await client.xadd(
                stream,
                fields,
                maxlen=maxlen if isinstance(maxlen, int) else None,
                approximate=True,
            )
        except redis_errors.AuthenticationError as exc:
            text = f"access refused: {brokers.describe(exc)}"
            return brokers.result(request, started, "permanent_failure", text)
        except redis_errors.ResponseError as exc:
            message = str(exc)
            if message.startswith(("WRONGTYPE", "NOAUTH", "WRONGPASS", "NOPERM")):
                text = f"refused: {brokers.describe(exc)}"
                return brokers.result(request, started, "permanent_failure", text)
            text = f"XADD failed: {brokers.describe(exc)}"
            return brokers.result(request, started, "retryable_failure", text)
        except (OSError, redis_errors.RedisError) as exc:
            text = f"XADD failed: {brokers.describe(exc)}"
            return brokers.result(request, started, "retryable_failure", text)
        return brokers.result(request, started, "succeeded", None)
