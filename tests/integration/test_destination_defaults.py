"""The schema's column defaults for a destination are courier.destination_defaults', so a
row written without them (a manual INSERT, an old client) behaves as the API's default."""

from __future__ import annotations

from typing import Any

import psycopg

from courier import destination_defaults as defaults
from courier.retry import RetryPolicy
from courier.web.destination_input import DestinationCreate

COLUMNS = {
    "max_attempts": defaults.MAX_ATTEMPTS,
    "max_age_seconds": defaults.MAX_AGE_SECONDS,
    "timeout_ms": defaults.TIMEOUT_MS,
    "backoff_initial_ms": defaults.BACKOFF_INITIAL_MS,
    "backoff_max_ms": defaults.BACKOFF_MAX_MS,
    "max_in_flight": defaults.MAX_IN_FLIGHT,
    "ordering": defaults.ORDERING,
    "payload_format": defaults.PAYLOAD_FORMAT,
}


def test_the_schema_the_api_and_the_retry_policy_share_the_defaults(
    conn: psycopg.Connection[Any],
) -> None:
    rows = conn.execute(
        "SELECT column_name, column_default FROM information_schema.columns"
        " WHERE table_name = 'destinations' AND column_name = ANY(%s)",
        (list(COLUMNS),),
    ).fetchall()
    # column_default is the expression's text: 8, 'unordered'::text, ...
    in_schema = {name: str(expr).split("::")[0].strip("'") for name, expr in rows}
    assert in_schema == {name: str(value) for name, value in COLUMNS.items()}
    body = DestinationCreate.model_validate({"name": "d", "url": "https://example.com/h"})
    assert {name: getattr(body, name) for name in COLUMNS} == COLUMNS
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.max_age_seconds) == (
        defaults.MAX_ATTEMPTS,
        defaults.MAX_AGE_SECONDS,
    )
    assert (policy.backoff_initial_ms, policy.backoff_max_ms) == (
        defaults.BACKOFF_INITIAL_MS,
        defaults.BACKOFF_MAX_MS,
    )
