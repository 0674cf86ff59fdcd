"""The `nats` adapter: one JetStream publish per attempt on `config.subject`.

`Nats-Msg-Id` is the event id, so a stream with a duplicate window keeps one message
however often an attempt is repeated (a lost ack, a retry, a replay): the broker answers
a repeat with a duplicate ack, which counts as success.

Succeeds on the stream's ack. Permanent: no stream listens on the subject, or the
server refuses the credentials. Retryable: a timeout, a closed connection, any other
JetStream error. One connection per (tenant, broker URL) per worker (NATS multiplexes,
so `max_in_flight` publishes share it); a closed one is made again on the next attempt.
"""

from __future__ import annotations

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client

from courier.adapters import brokers
from courier.adapters.base import AttemptResult, DeliveryRequest
from courier.adapters.resolver import LookupFailed

CONNECT_TIMEOUT_S = 5  # seconds; nats-py takes whole seconds
MSG_ID_HEADER = "Nats-Msg-Id"


async def _quiet(exc: Exception) -> None:
    """nats-py logs every error itself by default; ours go to the attempt instead."""


async def _open(url: str, size: int) -> Client:
    # No reconnect loop of its own: a closed client fails the attempt (retryable) and the
    # pool makes a new one for the next, so a delivery never waits on a hidden retry.
    return await nats.connect(
        url,
        allow_reconnect=False,
        connect_timeout=CONNECT_TIMEOUT_S,
        max_reconnect_attempts=0,
        error_cb=_quiet,
    )


async def _close(client: Client) -> None:
    await client.close()


def _alive(client: Client) -> bool:
    return client.is_connected


class NatsAdapter(brokers.PooledBrokerAdapter[Client]):
    def __init__(self, guard: brokers.AddressGuard) -> None:
        super().__init__(guard, brokers.ClientPool(_open, _close, _alive))

    async def _publish(self, request: DeliveryRequest, started: float) -> AttemptResult:
        try:
            url = brokers.broker_url(request)
            subject = str(request.config.get("subject", ""))
            headers = {**brokers.signed_headers(request), MSG_ID_HEADER: request.event_id}
            connect_url = await self._guard.vetted_url(url)
        except brokers.BrokerRefused as exc:
            return brokers.result(request, started, "permanent_failure", str(exc))
        except ValueError as exc:
            return brokers.result(request, started, "permanent_failure", f"cannot sign: {exc}")
        except LookupFailed as exc:
            text = f"DNS lookup failed: {exc.reason}"
            return brokers.result(request, started, "retryable_failure", text)
        try:
            client = await self._pool.get(request.tenant_id, url, connect_url, 1)
        except nats.errors.AuthorizationError as exc:
            text = f"access refused: {brokers.describe(exc)}"
            return brokers.result(request, started, "permanent_failure", text)
        except (OSError, nats.errors.Error) as exc:
            if "authorization" in str(exc).lower():
                text = f"access refused: {brokers.describe(exc)}"
                return brokers.result(request, started, "permanent_failure", text)
            text = f"cannot connect: {brokers.describe(exc)}"
            return brokers.result(request, started, "retryable_failure", text)
        try:
            await client.jetstream().publish(
                subject, request.body, timeout=request.timeout_s, headers=headers
            )
        except nats.js.errors.NoStreamResponseError:
            text = f"no stream for the subject {subject!r}"
            return brokers.result(request, started, "permanent_failure", text)
        except nats.errors.TimeoutError:
            text = f"no acknowledgement within {request.timeout_s:g}s"
            return brokers.result(request, started, "retryable_failure", text)
        except (OSError, nats.errors.Error) as exc:
            if not _alive(client):
                await self._pool.discard(request.tenant_id, url, client)
            text = f"publish failed: {brokers.describe(exc)}"
            return brokers.result(request, started, "retryable_failure", text)
        return brokers.result(request, started, "succeeded", None)
