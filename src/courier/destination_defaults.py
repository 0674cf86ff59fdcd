"""A destination's settings when whoever creates it does not choose them, in one place:
the API's request bodies, the console's new-destination form, the trusted create
(courier.destinations) and the retry policy all take them from here, and a test holds
the schema's column defaults to the same values.

The retry defaults allow 8 attempts within 3 days, waiting 5 s after the first failure,
doubling each time, never more than 10 hours between tries.
"""

from __future__ import annotations

from typing import Final

MAX_ATTEMPTS: Final = 8  # attempts in total, the first one included
MAX_AGE_SECONDS: Final = 259_200  # 3 days: no attempt later than this after the event
TIMEOUT_MS: Final = 10_000  # one request, connect to last byte
BACKOFF_INITIAL_MS: Final = 5_000  # the wait after the first failed attempt
BACKOFF_MAX_MS: Final = 36_000_000  # 10 hours: the longest wait between attempts
MAX_IN_FLIGHT: Final = 16  # deliveries to one destination at once, across workers
ORDERING: Final = "unordered"
PAYLOAD_FORMAT: Final = "raw"
