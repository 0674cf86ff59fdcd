"""SignInThrottle: failures count per address and per tenant, within a minute."""

from __future__ import annotations

import uuid

from courier.console.throttle import SignInThrottle

ACME, GLOBEX = uuid.UUID(int=1), uuid.UUID(int=2)


def test_the_limit_counts_failures_per_address_and_per_tenant() -> None:
    throttle = SignInThrottle(3)
    for _ in range(3):
        assert throttle.retry_after("198.51.100.1", ACME) is None
        throttle.failed("198.51.100.1", ACME)
    wait = throttle.retry_after("198.51.100.1", ACME)
    assert wait is not None and 1 <= wait <= 60
    assert throttle.retry_after("198.51.100.1", GLOBEX) is not None  # the address
    assert throttle.retry_after("198.51.100.2", ACME) is not None  # the tenant
    assert throttle.retry_after("198.51.100.2", GLOBEX) is None
    assert throttle.retry_after("198.51.100.2", None) is None


def test_failures_naming_no_tenant_count_against_the_address_alone() -> None:
    throttle = SignInThrottle(2)
    throttle.failed("198.51.100.3", None)
    throttle.failed("198.51.100.3", None)
    assert throttle.retry_after("198.51.100.3", None) is not None
    assert throttle.retry_after("198.51.100.4", ACME) is None
