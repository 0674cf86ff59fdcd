from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from courier.retry import (
    RETRYABLE_STATUSES,
    Decision,
    Outcome,
    RetryPolicy,
    backoff_delay,
    classify_status,
    decide,
    describe_reason,
    parse_retry_after,
)

pytestmark = pytest.mark.delivery_retry

NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
DEFAULT = RetryPolicy()


def half() -> float:
    return 0.5


# --- classify_status ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (range(100, 200), "permanent"),
        (range(200, 300), "success"),
        (range(300, 400), "permanent"),
        ([400, 401, 403, 404, 405, 406, 407, 409, 410, 413, 415, 422, 424, 426, 451], "permanent"),
        ([408, 425, 429], "retryable"),
        (range(500, 600), "retryable"),
        ([0, -1, 99, 600, 999], "permanent"),
    ],
)
def test_classify_status(statuses: range | list[int], expected: str) -> None:
    for status in statuses:
        assert classify_status(status) == expected, status


def test_retryable_statuses() -> None:
    assert frozenset({408, 425, 429}) == RETRYABLE_STATUSES


@given(st.integers(min_value=400, max_value=499))
def test_4xx_is_permanent_unless_listed(status: int) -> None:
    expected = "retryable" if status in RETRYABLE_STATUSES else "permanent"
    assert classify_status(status) == expected


# --- parse_retry_after --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("  120 ", 120.0),
        ("0", 0.0),
        ("007", 7.0),
        ("9" * 5000, 2.0**31),  # RFC 9111: too large is taken as 2**31
        ("Fri, 01 Mar 2024 12:01:30 GMT", 90.0),  # IMF-fixdate
        ("Friday, 01-Mar-24 12:01:30 GMT", 90.0),  # obsolete RFC 850
        ("Fri Mar  1 12:01:30 2024", 90.0),  # obsolete asctime
        ("Fri, 01 Mar 2024 12:01:30 -0000", 90.0),
        ("Fri, 01 Mar 2024 11:59:59 GMT", 0.0),  # in the past
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Fri, 01 Mar 2024 12:00:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "-5", "1.5", "+5", "5s", "soon", "²", "Fri, 32 Mar 2024 12:00:00 GMT", "1 2"],
)
def test_parse_retry_after_garbage(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_parse_retry_after_naive_now_is_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert parse_retry_after("Fri, 01 Mar 2024 12:01:30 GMT", naive) == 90.0


@given(st.text(max_size=60))
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value, NOW)
    assert result is None or result >= 0.0


@given(st.integers(min_value=0, max_value=2**31))
def test_parse_retry_after_seconds(seconds: int) -> None:
    assert parse_retry_after(str(seconds), NOW) == float(seconds)


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9000, 1, 1)))
def test_parse_retry_after_dates(when: datetime) -> None:
    when = when.replace(microsecond=0, tzinfo=UTC)
    header = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(header, NOW) == max(0.0, (when - NOW).total_seconds())


# --- RetryPolicy --------------------------------------------------------------------


def test_policy_defaults() -> None:
    assert DEFAULT.max_attempts == 8
    assert DEFAULT.max_age_seconds == 259_200
    assert DEFAULT.backoff_initial_ms == 5_000
    assert DEFAULT.backoff_max_ms == 36_000_000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_age_seconds": 0},
        {"backoff_initial_ms": 0},
        {"backoff_initial_ms": 10, "backoff_max_ms": 9},
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


# --- backoff_delay ------------------------------------------------------------------


def test_backoff_doubles_without_jitter() -> None:
    delays = [backoff_delay(n, DEFAULT, half) for n in range(1, 16)]
    assert delays[:5] == [5.0, 10.0, 20.0, 40.0, 80.0]
    assert delays[-1] == 36_000.0


def test_backoff_jitter_bounds() -> None:
    assert backoff_delay(3, DEFAULT, lambda: 0.0) == pytest.approx(16.0)
    assert backoff_delay(3, DEFAULT, lambda: 1.0) == pytest.approx(24.0)
    # clamped: never below the initial delay, never above the maximum
    assert backoff_delay(1, DEFAULT, lambda: 0.0) == 5.0
    assert backoff_delay(100, DEFAULT, lambda: 1.0) == 36_000.0


def test_backoff_huge_attempt_number() -> None:
    assert backoff_delay(10**12, DEFAULT, half) == 36_000.0


def test_backoff_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError):
        backoff_delay(0, DEFAULT)


def test_backoff_default_rand_is_random() -> None:
    delays = {backoff_delay(5, DEFAULT) for _ in range(50)}
    assert len(delays) > 1
    assert all(80.0 * 0.8 <= d <= 80.0 * 1.2 for d in delays)


policies = st.builds(
    lambda initial, factor, attempts, age: RetryPolicy(
        max_attempts=attempts,
        max_age_seconds=age,
        backoff_initial_ms=initial,
        backoff_max_ms=initial * factor,
    ),
    st.integers(min_value=1, max_value=600_000),
    st.integers(min_value=1, max_value=100_000),
    st.integers(min_value=1, max_value=50),
    st.integers(min_value=1, max_value=30 * 86_400),
)
attempts = st.one_of(st.integers(min_value=1, max_value=80), st.integers(min_value=1))
rands = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@given(policy=policies, attempt=attempts, r=rands)
def test_backoff_within_bounds(policy: RetryPolicy, attempt: int, r: float) -> None:
    delay = backoff_delay(attempt, policy, lambda: r)
    assert policy.backoff_initial_ms / 1000 <= delay <= policy.backoff_max_ms / 1000


@given(policy=policies, attempt=st.integers(min_value=1, max_value=200))
def test_backoff_non_decreasing(policy: RetryPolicy, attempt: int) -> None:
    assert backoff_delay(attempt, policy, half) <= backoff_delay(attempt + 1, policy, half)


# --- decide -------------------------------------------------------------------------


def test_decide_success() -> None:
    assert decide("succeeded", 1, DEFAULT, NOW, NOW) == Decision("delivered")


def test_decide_permanent_failure() -> None:
    decision = decide("permanent_failure", 1, DEFAULT, NOW, NOW)
    assert decision == Decision("failed", reason="permanent_failure")


def test_decide_retry_scheduled() -> None:
    decision = decide("retryable_failure", 1, DEFAULT, NOW, NOW, rand=half)
    assert decision == Decision("retry_scheduled", next_attempt_at=NOW + timedelta(seconds=5))


def test_decide_attempts_exhausted() -> None:
    for attempt in (8, 9, 100):
        decision = decide("retryable_failure", attempt, DEFAULT, NOW, NOW, rand=half)
        assert decision == Decision("dead_lettered", reason="max_attempts_exhausted")
    assert decide("retryable_failure", 7, DEFAULT, NOW, NOW, rand=half).state == "retry_scheduled"


def test_decide_max_age_exceeded() -> None:
    created = NOW - timedelta(seconds=DEFAULT.max_age_seconds - 4)
    decision = decide("retryable_failure", 1, DEFAULT, created, NOW, rand=half)
    assert decision == Decision("dead_lettered", reason="max_age_exceeded")
    created = NOW - timedelta(seconds=DEFAULT.max_age_seconds - 5)
    decision = decide("retryable_failure", 1, DEFAULT, created, NOW, rand=half)
    assert decision.state == "retry_scheduled"  # exactly at the deadline is still allowed


def test_decide_honours_longer_retry_after() -> None:
    decision = decide("retryable_failure", 1, DEFAULT, NOW, NOW, retry_after_s=120.0, rand=half)
    assert decision.next_attempt_at == NOW + timedelta(seconds=120)


def test_decide_keeps_backoff_when_retry_after_is_shorter() -> None:
    decision = decide("retryable_failure", 3, DEFAULT, NOW, NOW, retry_after_s=1.0, rand=half)
    assert decision.next_attempt_at == NOW + timedelta(seconds=20)


def test_decide_caps_retry_after_at_max_backoff() -> None:
    week_s = 7 * 86_400.0
    decision = decide("retryable_failure", 1, DEFAULT, NOW, NOW, retry_after_s=week_s, rand=half)
    assert decision.next_attempt_at == NOW + timedelta(seconds=36_000)


@pytest.mark.parametrize("odd", [float("nan"), float("inf"), -10.0])
def test_decide_odd_retry_after(odd: float) -> None:
    decision = decide("retryable_failure", 1, DEFAULT, NOW, NOW, retry_after_s=odd, rand=half)
    assert decision.state == "retry_scheduled"
    assert decision.next_attempt_at is not None
    assert NOW + timedelta(seconds=5) <= decision.next_attempt_at
    assert decision.next_attempt_at <= NOW + timedelta(seconds=36_000)


outcomes = st.sampled_from(["succeeded", "retryable_failure", "permanent_failure"])
retry_afters = st.one_of(
    st.none(), st.floats(min_value=0, max_value=10**9, allow_nan=False, allow_infinity=False)
)


@given(
    outcome=outcomes,
    policy=policies,
    attempt=attempts,
    age_s=st.integers(min_value=0, max_value=40 * 86_400),
    retry_after_s=retry_afters,
    r=rands,
)
def test_decide_properties(
    outcome: Outcome,
    policy: RetryPolicy,
    attempt: int,
    age_s: int,
    retry_after_s: float | None,
    r: float,
) -> None:
    created = NOW - timedelta(seconds=age_s)
    decision = decide(outcome, attempt, policy, created, NOW, retry_after_s, lambda: r)
    deadline = created + timedelta(seconds=policy.max_age_seconds)

    if outcome == "succeeded":
        assert decision == Decision("delivered")
        return
    if outcome == "permanent_failure":
        assert decision == Decision("failed", reason="permanent_failure")
        return

    if attempt >= policy.max_attempts:  # never more than max_attempts attempts
        assert decision == Decision("dead_lettered", reason="max_attempts_exhausted")
        return
    if decision.state == "dead_lettered":
        assert decision.reason == "max_age_exceeded"
        assert decision.next_attempt_at is None
        return

    assert decision.state == "retry_scheduled"
    assert decision.reason is None
    assert decision.next_attempt_at is not None
    assert decision.next_attempt_at <= deadline  # never beyond max_age
    wait = decision.next_attempt_at - NOW
    max_backoff = timedelta(milliseconds=policy.backoff_max_ms)
    assert timedelta(milliseconds=policy.backoff_initial_ms) <= wait <= max_backoff
    if retry_after_s is not None:  # honoured, but capped at the maximum backoff
        honoured = timedelta(seconds=min(retry_after_s, policy.backoff_max_ms / 1000))
        assert wait >= honoured - timedelta(microseconds=1)


@given(
    policy=policies,
    attempt=st.integers(min_value=1, max_value=60),
    age_s=st.integers(min_value=0, max_value=40 * 86_400),
    r=rands,
)
def test_dead_letters_for_age_only_when_the_retry_would_be_late(
    policy: RetryPolicy, attempt: int, age_s: int, r: float
) -> None:
    created = NOW - timedelta(seconds=age_s)
    decision = decide("retryable_failure", attempt, policy, created, NOW, rand=lambda: r)
    if decision.reason == "max_age_exceeded":
        delay = timedelta(seconds=backoff_delay(attempt, policy, lambda: r))
        assert NOW + delay > created + timedelta(seconds=policy.max_age_seconds)


# --- describe_reason ----------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "max_attempts_exhausted",
        "max_age_exceeded",
        "permanent_failure",
        "destination_missing",
        "destination_disabled",
    ],
)
def test_describe_reason(code: str) -> None:
    sentence = describe_reason(code)
    assert sentence != code
    assert sentence[0].isupper()
    assert sentence.endswith(".")
    assert "_" not in sentence


def test_describe_reason_falls_back_to_the_code() -> None:
    assert describe_reason("something_new") == "something_new"
