"""The adapter seam: the worker hands a request to an adapter and gets one result back.

Shaped like httpx's transport (`handle_request(request) -> response`): an adapter never
raises for a failed delivery; every failure comes back as an `AttemptResult`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

AttemptOutcome = Literal["succeeded", "retryable_failure", "permanent_failure"]


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


@dataclass(slots=True)
class AttemptResult:
    """What one attempt came to. `error_summary` is already redacted and bounded."""

    outcome: AttemptOutcome
    http_status: int | None
    duration_ms: int
    error_summary: str | None = None
    retry_after_s: float | None = None  # from Retry-After on 429/503, seconds from now

    @property
    def retryable(self) -> bool:
        return self.outcome == "retryable_failure"


class DeliveryAdapter(Protocol):
    async def deliver(self, request: DeliveryRequest) -> AttemptResult: ...

    async def close(self) -> None: ...
