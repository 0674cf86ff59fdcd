"""Plain words for the console: durations, and why a delivery failed or was dead-lettered.

    explain(delivery, attempts)
    → "8 attempts over 2 days 3 hours; last: HTTP 503"

Pure functions of their arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from courier.retry import describe_reason

_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))
_LAST_ERROR_CHARS = 120


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def human_duration(span: timedelta) -> str:
    """The two largest units of a span: "2 days 3 hours", "4 minutes 5 seconds", "0.3 seconds"."""
    seconds = max(0.0, span.total_seconds())
    if seconds < 10:
        return f"{seconds:.1f} seconds"
    whole = int(seconds)
    counts = []
    for word, size in _UNITS:
        count, whole = divmod(whole, size)
        counts.append((count, word))
    first = next(i for i, (count, _) in enumerate(counts) if count)
    shown = [(c, w) for c, w in counts[first : first + 2] if c]
    return " ".join(_plural(c, w) for c, w in shown)


def human_ms(ms: int | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    return f"{ms / 1000:.2f} s"


def last_outcome(attempt: Mapping[str, Any]) -> str:
    """How an attempt ended, in a few words: "HTTP 503", or the start of its error."""
    if attempt.get("http_status") is not None:
        return f"HTTP {attempt['http_status']}"
    summary = attempt.get("error_summary")
    if summary:
        text = str(summary)
        return text if len(text) <= _LAST_ERROR_CHARS else text[: _LAST_ERROR_CHARS - 1] + "…"
    outcome = attempt.get("outcome")
    return str(outcome).replace("_", " ") if outcome else "in flight"


# What a broker attempt did, in the words of its kind (a webhook's is its HTTP status).
_BROKER_ACTS = {
    "rabbitmq": ("AMQP publish", "confirmed by the broker"),
    "nats": ("JetStream publish", "acknowledged by the stream"),
    "redis_stream": ("XADD", "entry added"),
}


def attempt_medium(kind: str | None, attempt: Mapping[str, Any]) -> str:
    """How an attempt reached its destination: "HTTP 503" for a webhook, "no HTTP
    status" when none came back; for a broker kind what it did and, on success, what
    the broker said ("AMQP publish: confirmed by the broker")."""
    if attempt.get("http_status") is not None:
        return f"HTTP {attempt['http_status']}"
    acts = _BROKER_ACTS.get(kind or "webhook")
    if acts is None:
        return "no HTTP status"
    action, success = acts
    return f"{action}: {success}" if attempt.get("outcome") == "succeeded" else action


def explain(delivery: Mapping[str, Any], attempts: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a failed or dead-lettered delivery ended so, in one line; None for other states.

    Counts the attempts, the time from the first attempt's start to the last one's end,
    and names how the last ended.
    """
    if delivery.get("state") not in ("failed", "dead_lettered"):
        return None
    if not attempts:
        return "No attempt was made."
    first_started: datetime = attempts[0]["started_at"]
    last = attempts[-1]
    last_ended: datetime = last.get("finished_at") or last["started_at"]
    span = human_duration(last_ended - first_started)
    return f"{_plural(len(attempts), 'attempt')} over {span}; last: {last_outcome(last)}"


def reason_sentence(delivery: Mapping[str, Any]) -> str | None:
    """The reason code of a failed or dead-lettered delivery, as a sentence."""
    reason = delivery.get("dead_letter_reason") or delivery.get("failure_reason")
    return describe_reason(str(reason)) if reason else None
