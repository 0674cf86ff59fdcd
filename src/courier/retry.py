"""Retry policy: which responses are worth retrying, when, and when to give up.

Pure functions of their arguments; the clock and the random source are passed in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

from courier import destination_defaults as defaults
from courier.states import DecisionState, ResultOutcome

__all__ = [
    "RETRYABLE_STATUSES",
    "Decision",
    "DeliveryDecisionState",
    "Outcome",
    "RetryPolicy",
    "StatusClass",
    "backoff_delay",
    "classify_status",
    "decide",
    "describe_reason",
    "parse_retry_after",
]

# Request Timeout, Too Early, Too Many Requests; every 5xx is retryable as well.
RETRYABLE_STATUSES = frozenset({408, 425, 429})

# RFC 9111 §1.2.2: a delta-seconds too large to represent is taken as 2**31 seconds.
_MAX_DELTA_SECONDS = 2**31

StatusClass = Literal["success", "retryable", "permanent"]
DeliveryDecisionState = DecisionState
Outcome = ResultOutcome


def classify_status(status: int) -> StatusClass:
    """2xx succeeds; 408, 425, 429 and 5xx are retried; anything else is permanent.

    Permanent includes 1xx and 3xx: redirects are not followed, since a webhook receiver
    that moved must be re-registered rather than silently chased.
    """
    if 200 <= status <= 299:
        return "success"
    if status in RETRYABLE_STATUSES or 500 <= status <= 599:
        return "retryable"
    return "permanent"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from `now` according to a Retry-After header, or None if unusable.

    Accepts delta-seconds (a non-negative integer) or an HTTP-date; a date in the past
    gives 0.0. HTTP-dates are always GMT, so a date without a zone, and a naive `now`,
    are read as UTC.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        digits = value.lstrip("0") or "0"
        # Compare by length before converting: int() refuses more than 4300 digits.
        if len(digits) > len(str(_MAX_DELTA_SECONDS)):
            return float(_MAX_DELTA_SECONDS)
        return float(min(int(digits), _MAX_DELTA_SECONDS))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long and how often to retry one delivery (defaults: courier.destination_defaults)."""

    max_attempts: int = defaults.MAX_ATTEMPTS
    max_age_seconds: int = defaults.MAX_AGE_SECONDS
    backoff_initial_ms: int = defaults.BACKOFF_INITIAL_MS
    backoff_max_ms: int = defaults.BACKOFF_MAX_MS

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be positive")
        if self.backoff_initial_ms <= 0:
            raise ValueError("backoff_initial_ms must be positive")
        if self.backoff_max_ms < self.backoff_initial_ms:
            raise ValueError("backoff_max_ms must be at least backoff_initial_ms")


def backoff_delay(
    attempt_number: int, policy: RetryPolicy, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after failed attempt `attempt_number` (1 for the first attempt).

    Exponential: initial * 2**(attempt_number - 1), capped at the maximum, then jittered
    by ±20% so that deliveries failing together do not retry together, and finally kept
    within [initial, max].
    """
    if attempt_number < 1:
        raise ValueError("attempt_number starts at 1")
    initial_ms, max_ms = policy.backoff_initial_ms, policy.backoff_max_ms
    doublings = attempt_number - 1
    # Past max_ms.bit_length() doublings the product exceeds max_ms whatever initial_ms
    # is (>= 1): cap first instead of building a huge integer for a huge attempt number.
    doublings = min(doublings, max_ms.bit_length())
    base_ms = min(max_ms, initial_ms << doublings)
    jittered_ms = base_ms * (0.8 + 0.4 * rand())
    return min(max(jittered_ms, initial_ms), max_ms) / 1000.0


# Not frozen: a frozen dataclass's __init__ sets every field through object.__setattr__
# (about 5x slower), and the worker builds several of these per delivery.
@dataclass(slots=True)
class Decision:
    """What becomes of a delivery after an attempt.

    `next_attempt_at` is set only for retry_scheduled; `reason` (a code that
    `describe_reason` explains) only for failed and dead_lettered.
    """

    state: DeliveryDecisionState
    next_attempt_at: datetime | None = None
    reason: str | None = None


def decide(
    outcome: Outcome,
    attempt_number: int,
    policy: RetryPolicy,
    created_at: datetime,
    now: datetime,
    retry_after_s: float | None = None,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """The delivery's next state after attempt `attempt_number` (1-based) came to `outcome`.

    A retryable failure is retried after `backoff_delay`, or after the receiver's
    Retry-After if that is longer, though never longer than the policy's maximum backoff
    (a receiver cannot park a delivery for a week). It is dead-lettered instead when the
    attempts are used up or the retry would fall after `created_at + max_age_seconds`.
    """
    if outcome == "succeeded":
        return Decision("delivered")
    if outcome == "permanent_failure":
        return Decision("failed", reason="permanent_failure")
    if attempt_number >= policy.max_attempts:
        return Decision("dead_lettered", reason="max_attempts_exhausted")
    delay_s = backoff_delay(attempt_number, policy, rand)
    if retry_after_s is not None and not math.isnan(retry_after_s):
        delay_s = max(delay_s, min(retry_after_s, policy.backoff_max_ms / 1000.0))
    next_attempt_at = now + timedelta(seconds=delay_s)
    if next_attempt_at > created_at + timedelta(seconds=policy.max_age_seconds):
        return Decision("dead_lettered", reason="max_age_exceeded")
    return Decision("retry_scheduled", next_attempt_at=next_attempt_at)


_REASONS = {
    "max_attempts_exhausted": (
        "Every allowed delivery attempt failed with a temporary error, so delivery was given up."
    ),
    "max_age_exceeded": (
        "The event became too old to retry: the next attempt would have fallen after its "
        "maximum age."
    ),
    "permanent_failure": (
        "The destination answered with a response that retrying will not change (such as "
        "a 4xx status or a redirect), so delivery was not retried."
    ),
    "destination_missing": "The destination was deleted before the event could be delivered.",
    "destination_disabled": "The destination is disabled, so the event was not delivered.",
}


def describe_reason(reason: str) -> str:
    """A plain-words sentence for a reason code; an unknown code is returned as it is."""
    return _REASONS.get(reason, reason)
