"""The adapter seam: the worker hands a request to an adapter and gets one result back.

Shaped like httpx's transport (`handle_request(request) -> response`): an adapter never
raises for a failed delivery; every failure comes back as an `AttemptResult`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from courier.states import ResultOutcome

EVENT_TYPE_HEADER: Final = "courier-event-type"  # on every request or message, every kind
AttemptOutcome = ResultOutcome


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """A destination's options with their secrets decrypted; one per destination per claim.

    `auth` holds the destination's auth object (`type` and its fields). `secrets` is every
    secret value here, for redaction. `key` names these exact options, so that what an
    adapter caches for them (TLS contexts, connections, OAuth2 tokens) is never shared
    with other options.
    """

    key: str
    headers: tuple[tuple[str, str], ...] = ()  # Authorization included, for basic and bearer
    head: bytes | None = b""  # `headers` as request lines; None: one holds a line break
    user_agent: str | None = None  # replaces courier's own
    auth: Mapping[str, str] | None = None
    client_certificate: tuple[str, str] | None = None  # (certificate PEM, private key PEM)
    ca_certificate: str | None = None
    capture_response_body: bool = False
    secrets: tuple[str, ...] = ()


# Not frozen: a frozen dataclass's __init__ sets every field through object.__setattr__
# (about 5x slower), and the worker builds several of these per delivery.
@dataclass(slots=True)
class DeliveryRequest:
    """One attempt to deliver one event to one destination."""

    url: str
    event_id: str  # sent as webhook-id: the same on every retry and replay
    body: bytes  # the exact bytes that are signed and sent
    secrets: tuple[str, ...]  # live `whsec_…` secrets, newest first; one signature each
    timeout_s: float  # total time for the whole attempt, connect to last body byte
    # Whose delivery this is: adapters keep connections apart per tenant.
    tenant_id: str = ""
    # Which adapter delivers it, and what a broker kind needs: its config with the secret
    # fields decrypted (`config_secrets` holds their plaintext values, for redaction).
    kind: str = "webhook"
    event_type: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    config_secrets: tuple[str, ...] = ()
    max_in_flight: int = 16  # bounds the connections or channels a broker adapter opens
    # Which delivery this is, for adapters that keep state of their own (ticketing, tokens).
    destination_id: uuid.UUID | None = None
    delivery_id: uuid.UUID | None = None
    attempt_number: int = 1
    options: RequestOptions | None = None  # None: no extra headers, auth, TLS or capture


@dataclass(slots=True)
class AttemptResult:
    """What one attempt came to. `error_summary` is already redacted and bounded."""

    outcome: AttemptOutcome
    http_status: int | None
    duration_ms: int
    error_summary: str | None = None
    retry_after_s: float | None = None  # from Retry-After on 429/503, seconds from now
    response_body_excerpt: str | None = None  # redacted, at most 4 KiB; only when captured

    @property
    def retryable(self) -> bool:
        return self.outcome == "retryable_failure"


def finished(
    started: float,
    outcome: AttemptOutcome,
    status: int | None,
    summary: str | None,
    retry_after_s: float | None = None,
    captured: str | None = None,
) -> AttemptResult:
    """The result of an attempt that began at `started` (`time.perf_counter()`), now;
    `captured` is the response body's redacted excerpt, when the destination keeps it."""
    return AttemptResult(
        outcome=outcome,
        http_status=status,
        duration_ms=int((time.perf_counter() - started) * 1000),
        error_summary=summary,
        retry_after_s=retry_after_s,
        response_body_excerpt=captured,
    )


class DeliveryAdapter(Protocol):
    async def deliver(self, request: DeliveryRequest) -> AttemptResult: ...

    async def close(self) -> None: ...
