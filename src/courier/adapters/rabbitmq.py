"""The `rabbitmq` adapter: one persistent, mandatory AMQP 0-9-1 publish per attempt,
confirmed by the broker (publisher confirms).

Succeeds on the broker's ack. Retryable: a nack, a returned (unroutable) message, a
closed channel or connection, a timeout. Permanent: access refused (wrong credentials, or
no permission on the exchange) and a missing exchange: the same publish would fail the
same way until someone changes the broker or the destination.

Each worker keeps one connection per (tenant, broker URL) and on it at most the
destination's `max_in_flight` channels; a failed connection is dropped and made again on
the next attempt.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiormq
import aiormq.exceptions as amqp_errors
from aio_pika.abc import AbstractChannel, AbstractConnection
from pamqp.commands import Basic

from courier.adapters import brokers
from courier.adapters.base import AttemptResult, DeliveryRequest
from courier.adapters.resolver import LookupFailed

CONNECT_TIMEOUT_S = 10.0  # at most; an attempt's own timeout may end it sooner


@dataclass(slots=True)
class _Connection:
    connection: AbstractConnection
    size: int
    idle: list[AbstractChannel] = field(default_factory=list)
    open_channels: int = 0
    freed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def acquire(self) -> AbstractChannel:
        async with self.freed:
            while True:
                while self.idle:
                    channel = self.idle.pop()
                    if not channel.is_closed:
                        return channel
                    self.open_channels -= 1
                if self.open_channels < self.size:
                    self.open_channels += 1
                    break
                await self.freed.wait()
        try:
            return await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        except BaseException:
            async with self.freed:
                self.open_channels -= 1
                self.freed.notify()
            raise

    async def release(self, channel: AbstractChannel) -> None:
        async with self.freed:
            if channel.is_closed:
                self.open_channels -= 1
            else:
                self.idle.append(channel)
            self.freed.notify()


async def _open(url: str, size: int) -> _Connection:
    connection = await aio_pika.connect(url, timeout=CONNECT_TIMEOUT_S)
    return _Connection(connection, max(1, size))


async def _close(conn: _Connection) -> None:
    await conn.connection.close()


def _alive(conn: _Connection) -> bool:
    # aio-pika sets `is_closed` only when we close it; a connection the broker dropped
    # shows as `connected` cleared.
    return not conn.connection.is_closed and conn.connection.connected.is_set()


class RabbitMQAdapter(brokers.PooledBrokerAdapter[_Connection]):
    def __init__(self, guard: brokers.AddressGuard) -> None:
        super().__init__(guard, brokers.ClientPool(_open, _close, _alive))

    async def _publish(self, request: DeliveryRequest, started: float) -> AttemptResult:
        try:
            url = brokers.broker_url(request)
            exchange_name = str(request.config.get("exchange", ""))
            routing_key = str(request.config.get("routing_key", ""))
            headers: dict[str, Any] = dict(brokers.signed_headers(request))
            connect_url = await self._guard.vetted_url(url)
        except brokers.BrokerRefused as exc:
            return brokers.result(request, started, "permanent_failure", str(exc))
        except ValueError as exc:  # no usable signing secret
            return brokers.result(request, started, "permanent_failure", f"cannot sign: {exc}")
        except LookupFailed as exc:
            text = f"DNS lookup failed: {exc.reason}"
            return brokers.result(request, started, "retryable_failure", text)
        try:
            conn = await self._pool.get(request.tenant_id, url, connect_url, request.max_in_flight)
        except (amqp_errors.AuthenticationError, amqp_errors.ProbableAuthenticationError) as exc:
            text = f"access refused: {brokers.describe(exc)}"
            return brokers.result(request, started, "permanent_failure", text)
        except (OSError, amqp_errors.AMQPError) as exc:
            text = f"cannot connect: {brokers.describe(exc)}"
            return brokers.result(request, started, "retryable_failure", text)
        message = aio_pika.Message(
            request.body,
            headers=headers,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=request.event_id,
            type=request.event_type or None,
        )
        channel: AbstractChannel | None = None
        try:
            channel = await conn.acquire()
            if exchange_name:
                exchange = await channel.get_exchange(exchange_name, ensure=False)
            else:
                exchange = channel.default_exchange
            confirm = await exchange.publish(message, routing_key=routing_key, mandatory=True)
        except amqp_errors.PublishError as exc:
            frame = exc.frame
            reason = f"{getattr(frame, 'reply_code', '')} {getattr(frame, 'reply_text', '')}"
            text = f"returned by the broker (mandatory, unroutable): {reason.strip()}"
            return brokers.result(request, started, "retryable_failure", text)
        except amqp_errors.DeliveryError as exc:
            text = f"not confirmed by the broker: {brokers.describe(exc)}"
            return brokers.result(request, started, "retryable_failure", text)
        except amqp_errors.ChannelAccessRefused as exc:
            text = f"access refused: {brokers.describe(exc)}"
            return brokers.result(request, started, "permanent_failure", text)
        except amqp_errors.ChannelNotFoundEntity as exc:
            text = f"exchange not found: {brokers.describe(exc)}"
            return brokers.result(request, started, "permanent_failure", text)
        except (amqp_errors.ConnectionClosed, aiormq.exceptions.ChannelInvalidStateError) as exc:
            await self._pool.discard(request.tenant_id, url, conn)
            text = f"connection closed: {brokers.describe(exc)}"
            return brokers.result(request, started, "retryable_failure", text)
        except (OSError, amqp_errors.AMQPError, RuntimeError) as exc:
            if not _alive(conn):
                await self._pool.discard(request.tenant_id, url, conn)
            text = f"publish failed: {brokers.describe(exc)}"
            return brokers.result(request, started, "retryable_failure", text)
        finally:
            if channel is not None:
                await conn.release(channel)
        if isinstance(confirm, Basic.Ack):
            return brokers.result(request, started, "succeeded", None)
        text = f"not confirmed by the broker: {type(confirm).__name__}"
        return brokers.result(request, started, "retryable_failure", text)
