"""Every string a documented pattern admits is one the API accepts: cursors parse, and a
destination URL passes the URL checks with the default settings."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from courier.api.pagination import (
    ID_CURSOR_PATTERN,
    NUMBER_CURSOR_PATTERN,
    after_id,
    after_number,
    id_cursor,
    number_cursor,
)
from courier.api.routes.delivery_events import LAST_EVENT_ID_PATTERN
from courier.replay import decode_cursor, encode_cursor
from courier.settings import Settings
from courier.store.feed import CURSOR_PATTERN, FeedPosition
from courier.web.destination_input import URL_PATTERN
from courier.web.urls import url_problem

DEFAULTS = Settings(database_url=None)


@given(st.from_regex(ID_CURSOR_PATTERN, fullmatch=True))
def test_every_id_cursor_the_pattern_admits_is_a_position(cursor: str) -> None:
    after = after_id(cursor)
    assert after is not None and id_cursor(after) == cursor.lower()
    assert decode_cursor(cursor) == after and encode_cursor(after) == cursor.lower()


@given(st.from_regex(NUMBER_CURSOR_PATTERN, fullmatch=True))
def test_every_attempt_cursor_the_pattern_admits_is_a_position(cursor: str) -> None:
    assert number_cursor(after_number(cursor)) == str(int(cursor))


@given(st.from_regex(CURSOR_PATTERN, fullmatch=True))
def test_every_feed_cursor_the_pattern_admits_is_a_position(cursor: str) -> None:
    position = FeedPosition.from_cursor(cursor)
    assert 0 <= position.txid < 2**64 and 0 <= position.seq < 2**63
    assert re.fullmatch(LAST_EVENT_ID_PATTERN, cursor)


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**63 - 1))
def test_feed_cursors_round_trip_and_match_the_pattern(txid: int, seq: int) -> None:
    cursor = FeedPosition(txid, seq).cursor()
    assert re.fullmatch(CURSOR_PATTERN, cursor)
    assert FeedPosition.from_cursor(cursor) == FeedPosition(txid, seq)


@given(st.from_regex(URL_PATTERN, fullmatch=True).filter(lambda u: len(u) <= 2048))
def test_every_url_the_pattern_admits_passes_the_default_checks(url: str) -> None:
    assert url_problem(url, DEFAULTS) is None, url
