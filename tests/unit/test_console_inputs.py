"""Console field readers: any text gives a value PostgreSQL accepts, None, or BadField."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from courier.console.inputs import (
    MAX_FORM_FIELDS,
    BadField,
    choice_field,
    form_fields,
    time_field,
    token_field,
    uuid_field,
)


@given(st.text())
def test_any_text_is_a_time_in_utc_none_or_a_bad_field(text: str) -> None:
    try:
        value = time_field("since", text)
    except BadField as exc:
        assert exc.field == "since" and str(exc).startswith("since: ")
        return
    assert value is None or value.utcoffset() == UTC.utcoffset(None)


@given(st.datetimes(timezones=st.timezones()))
def test_times_round_trip_as_the_same_instant(moment: datetime) -> None:
    try:
        expected = moment.astimezone(UTC)
    except OverflowError:
        with pytest.raises(BadField):
            time_field("until", moment.isoformat())
        return
    assert time_field("until", moment.isoformat()) == expected


@given(st.text())
def test_any_text_is_a_uuid_none_or_a_bad_field(text: str) -> None:
    try:
        value = uuid_field("after", text)
    except BadField as exc:
        assert exc.field == "after"
        return
    assert value is None or isinstance(value, uuid.UUID)


@given(st.uuids())
def test_uuids_round_trip(value: uuid.UUID) -> None:
    assert uuid_field("after", str(value)) == value


@given(st.text())
def test_a_token_has_no_nul_and_a_bounded_length(text: str) -> None:
    try:
        token = token_field("replay_token", text)
    except BadField:
        return
    assert token is None or ("\x00" not in token and len(token) <= 64)


@pytest.mark.parametrize("value", ["\x00", "a\x00", "x" * 65, "a b", "é"])
def test_bad_tokens_are_refused(value: str) -> None:
    with pytest.raises(BadField, match=r"^replay_token: "):
        token_field("replay_token", value)


def test_choices_empty_means_none_and_others_are_refused() -> None:
    assert choice_field("state", "", ("a", "b")) is None
    assert choice_field("state", "b", ("a", "b")) == "b"
    with pytest.raises(BadField, match="must be one of a, b"):
        choice_field("state", "c\x00", ("a", "b"))


def test_a_form_with_too_many_fields_is_a_bad_field() -> None:
    assert form_fields(b"a=1&a=2&b=") == {"a": "1", "b": ""}
    body = "&".join(f"f{n}=x" for n in range(MAX_FORM_FIELDS + 1)).encode()
    with pytest.raises(BadField, match=r"^form: "):
        form_fields(body)
