"""Failed console sign-ins, counted per client address and per tenant.

An API key is long and random, so guessing one is hopeless; the limit is there so a
script cannot turn the sign-in form into a free oracle (or a cheap load on the database).
After `failures_per_minute` failed attempts within any 60 seconds from one address, or
against one tenant's keys (the tenant a well-formed key names), further attempts from that
address or for that tenant are refused, without checking the key, until the oldest
failure is a minute old. Counts live in this process (a moving window from the `limits`
library); a restart forgets them.
"""

from __future__ import annotations

import math
import time
import uuid

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

NAMESPACE = "courier-console-sign-in"


class SignInThrottle:
    def __init__(self, failures_per_minute: int) -> None:
        self._limit = RateLimitItemPerMinute(failures_per_minute)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    @staticmethod
    def _keys(address: str, tenant_id: uuid.UUID | None) -> list[tuple[str, str]]:
        keys = [("address", address)]
        if tenant_id is not None:
            keys.append(("tenant", str(tenant_id)))
        return keys

    def retry_after(self, address: str, tenant_id: uuid.UUID | None) -> int | None:
        """Whole seconds until an attempt is allowed again, or None when one is allowed now."""
        wait = 0.0
        for kind, value in self._keys(address, tenant_id):
            if not self._limiter.test(self._limit, NAMESPACE, kind, value):
                stats = self._limiter.get_window_stats(self._limit, NAMESPACE, kind, value)
                wait = max(wait, stats.reset_time - time.time())
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failed(self, address: str, tenant_id: uuid.UUID | None) -> None:
        """Count one failed attempt against the address and the tenant."""
        for kind, value in self._keys(address, tenant_id):
            self._limiter.hit(self._limit, NAMESPACE, kind, value)
