"""courier delivering to a message broker instead of the HTTP receiver: the same worker,
claim and group commit, one broker destination per run (RabbitMQ with publisher
confirms, NATS JetStream, Redis Streams), against the brokers running on this machine.

The run is scored as the webhook run is: the clock stops when the deliveries table
shows every event delivered (the broker confirmed, acknowledged or returned the entry
id). Before each run the broker's target is emptied, so runs do not grow it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from bench.courier_run import Courier, _lift_in_flight_cap
from courier.crypto import SecretBox
from courier.destinations import create_destination
from courier.tenancy import create_tenant

AMQP_URL: Final = "amqp://guest:guest@127.0.0.1:5672/"
NATS_URL: Final = "nats://127.0.0.1:4222"
REDIS_URL: Final = "redis://127.0.0.1:6379/0"
QUEUE: Final = "courier-bench"  # RabbitMQ: a durable queue, reached by the default exchange
STREAM: Final = "COURIER_BENCH"  # NATS: a file-backed JetStream stream on SUBJECT
SUBJECT: Final = "courier.bench"
REDIS_KEY: Final = "courier:bench"

# kind -> the destination's config (bench/report.py names each kind)
KINDS: Final[dict[str, dict[str, Any]]] = {
    "rabbitmq": {"url": AMQP_URL, "exchange": "", "routing_key": QUEUE},
    "nats": {"url": NATS_URL, "subject": SUBJECT},
    "redis_stream": {"url": REDIS_URL, "stream": REDIS_KEY},
}
PORTS: Final = {"rabbitmq": 5672, "nats": 4222, "redis_stream": 6379}


def available(kind: str) -> str | None:
    """Why `kind` cannot be measured here (its broker is not listening), or None."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", PORTS[kind]), 1):
        return None
    return f"nothing listens on 127.0.0.1:{PORTS[kind]}"


async def empty_target(kind: str) -> None:
    """Create the broker's target if missing and empty it."""
    if kind == "rabbitmq":
        import aio_pika

        connection = await aio_pika.connect(AMQP_URL)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(QUEUE, durable=True)
            await queue.purge()
        finally:
            await connection.close()
    elif kind == "nats":
        import nats
        import nats.js.errors

        client = await nats.connect(NATS_URL)
        try:
            js = client.jetstream()
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(STREAM)
            await js.add_stream(name=STREAM, subjects=[SUBJECT])
        finally:
            await client.close()
    else:
        import redis.asyncio as aioredis

        redis_client = aioredis.Redis.from_url(REDIS_URL)
        try:
            await redis_client.delete(REDIS_KEY)
        finally:
            await redis_client.aclose()


async def remove_target(kind: str) -> None:
    """Leave the shared brokers as they were."""
    if kind == "rabbitmq":
        import aio_pika

        connection = await aio_pika.connect(AMQP_URL)
        try:
            await (await connection.channel()).queue_delete(QUEUE)
        finally:
            await connection.close()
    elif kind == "nats":
        import nats

        client = await nats.connect(NATS_URL)
        try:
            with contextlib.suppress(Exception):
                await client.jetstream().delete_stream(STREAM)
        finally:
            await client.close()
    else:
        import redis.asyncio as aioredis

        redis_client = aioredis.Redis.from_url(REDIS_URL)
        try:
            await redis_client.delete(REDIS_KEY)
        finally:
            await redis_client.aclose()


@dataclass
class CourierToBroker(Courier):
    """courier whose one destination is a broker of `kind`; the receiver is unused."""

    kind: str = "rabbitmq"
    uses_receiver: bool = False

    def __post_init__(self) -> None:
        self.name = f"courier-{self.kind}"

    async def prepare(self, url: str, receiver_url: str) -> None:
        await empty_target(self.kind)
        await asyncio.to_thread(self._prepare_broker, url)

    def _prepare_broker(self, url: str) -> None:
        config = KINDS[self.kind]
        with psycopg.connect(url, autocommit=True) as conn:
            tenant_id, _ = create_tenant(conn, "bench")
            row, _ = create_destination(
                conn,
                SecretBox(self.secret_key),
                tenant_id,
                name=self.kind,
                url="",
                kind=self.kind,
                config=config,
            )
            _lift_in_flight_cap(conn, tenant_id, row["id"])
        self.tenants[url] = tenant_id
        self.destinations[url] = row["id"]
