"""Setting mistakes described one line each, naming the variable; secrets never shown."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from courier.settings import Settings, describe_invalid
from courier.store.database import reason


def _lines(**values: object) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        Settings(**values)  # type: ignore[arg-type]
    return describe_invalid(caught.value)


@given(st.text(string.ascii_letters, min_size=1, max_size=20))
def test_a_word_for_a_number_names_the_variable(word: str) -> None:
    assert _lines(worker_concurrency=word) == [
        f"invalid setting COURIER_WORKER_CONCURRENCY={word!r}: not an integer"
    ]


@given(st.text(string.ascii_letters + string.digits + ":@/%", min_size=8, max_size=40))
def test_a_database_url_is_never_repeated(junk: str) -> None:
    url = f"mysql://user:{junk}@host/db"
    (line,) = _lines(database_url=url)
    assert line.startswith("invalid setting COURIER_DATABASE_URL: not a PostgreSQL URL")
    assert f":{junk}@" not in line and "mysql://" not in line


def test_flags_are_named_as_flags_and_bounds_are_stated() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(port=70000, worker_poll_interval=0)
    assert describe_invalid(caught.value, {"port": "--port"}) == [
        "invalid setting --port='70000': must be at most 65535",
        "invalid setting COURIER_WORKER_POLL_INTERVAL='0': must be greater than 0",
    ]


@given(st.text(string.ascii_letters + string.digits, min_size=6, max_size=30))
def test_the_servers_reason_is_kept_and_the_password_redacted(password: str) -> None:
    # A password that is part of the message's own words (or of the redaction marker)
    # is "in" any answer: not what this checks.
    assume(password not in 'password authentication failed for user "courier" [REDACTED]')
    url = f"postgresql://courier:{password}@db.internal:5432/courier"
    error = RuntimeError(
        'connection failed: connection to server at "10.0.0.5", port 5432 failed: '
        f'FATAL:  password authentication failed for user "courier" ({password})'
    )
    text = reason(url, error)
    assert text.startswith('password authentication failed for user "courier"')
    assert password not in text
