"""Plain words for failed and dead-lettered deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from courier.console.explain import (
    attempt_medium,
    explain,
    human_duration,
    human_ms,
    reason_sentence,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def _attempts(n: int, span: timedelta, **last: Any) -> list[dict[str, Any]]:
    step = span / max(1, n - 1)
    rows: list[dict[str, Any]] = [
        {
            "attempt_number": i + 1,
            "started_at": T0 + step * i,
            "finished_at": T0 + step * i,
            "http_status": 503,
            "outcome": "retryable_failure",
            "error_summary": "HTTP 503: busy",
        }
        for i in range(n)
    ]
    rows[-1].update(last)
    return rows


@pytest.mark.parametrize(
    ("span", "words"),
    [
        (timedelta(seconds=0.4), "0.4 seconds"),
        (timedelta(seconds=12), "12 seconds"),
        (timedelta(minutes=4, seconds=12), "4 minutes 12 seconds"),
        (timedelta(hours=1, seconds=5), "1 hour"),
        (timedelta(days=2, hours=3, minutes=59), "2 days 3 hours"),
        (timedelta(days=1), "1 day"),
    ],
)
def test_durations_read_as_their_two_largest_units(span: timedelta, words: str) -> None:
    assert human_duration(span) == words


def test_a_dead_letter_is_explained_in_one_line() -> None:
    delivery = {"state": "dead_lettered", "dead_letter_reason": "max_attempts_exhausted"}
    attempts = _attempts(8, timedelta(days=2, hours=3, minutes=10))
    assert explain(delivery, attempts) == "8 attempts over 2 days 3 hours; last: HTTP 503"
    assert reason_sentence(delivery) is not None
    assert "Every allowed delivery attempt failed" in (reason_sentence(delivery) or "")


def test_a_failure_without_a_status_names_its_error() -> None:
    delivery = {"state": "failed", "failure_reason": "permanent_failure"}
    attempts = _attempts(1, timedelta(0), http_status=None, error_summary="connection refused")
    assert explain(delivery, attempts) == "1 attempt over 0.0 seconds; last: connection refused"


def test_a_long_error_is_cut() -> None:
    delivery = {"state": "failed"}
    attempts = _attempts(1, timedelta(0), http_status=None, error_summary="x" * 500)
    line = explain(delivery, attempts)
    assert line is not None and line.endswith("…") and len(line) < 200


def test_a_failure_before_any_attempt() -> None:
    delivery = {"state": "failed", "failure_reason": "destination_missing"}
    assert explain(delivery, []) == "No attempt was made."
    assert reason_sentence(delivery) == (
        "The destination was deleted before the event could be delivered."
    )


@pytest.mark.parametrize("state", ["pending", "delivering", "retry_scheduled", "delivered"])
def test_other_states_need_no_explanation(state: str) -> None:
    assert explain({"state": state}, _attempts(2, timedelta(seconds=3))) is None


def test_milliseconds() -> None:
    assert human_ms(None) == "—"
    assert human_ms(42) == "42 ms"
    assert human_ms(1500) == "1.50 s"


@pytest.mark.parametrize(
    ("kind", "attempt", "words"),
    [
        ("webhook", {"http_status": 503, "outcome": "retryable_failure"}, "HTTP 503"),
        ("webhook", {"http_status": None, "outcome": "retryable_failure"}, "no HTTP status"),
        (None, {"outcome": "abandoned"}, "no HTTP status"),
        ("rabbitmq", {"outcome": "succeeded"}, "AMQP publish: confirmed by the broker"),
        ("rabbitmq", {"outcome": "retryable_failure"}, "AMQP publish"),
        ("nats", {"outcome": "succeeded"}, "JetStream publish: acknowledged by the stream"),
        ("nats", {"outcome": None}, "JetStream publish"),
        ("redis_stream", {"outcome": "succeeded"}, "XADD: entry added"),
        ("redis_stream", {"outcome": "permanent_failure"}, "XADD"),
    ],
)
def test_an_attempt_reads_in_its_kinds_words(
    kind: str | None, attempt: dict[str, Any], words: str
) -> None:
    assert attempt_medium(kind, attempt) == words
