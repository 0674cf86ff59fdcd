"""Log lines of a completion batch go out in one write, in order, and none is lost."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from courier.logs import BatchingStreamHandler, JsonFormatter, batched_log_lines


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


@pytest.fixture
def stream() -> Iterator[CountingStream]:
    out = CountingStream()
    handler = BatchingStreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_lines_inside_a_batch_are_written_once_at_its_end(stream: CountingStream) -> None:
    log = logging.getLogger("courier.delivery")
    with batched_log_lines():
        for n in range(5):
            log.info("attempt %d", n, extra={"attempt_number": n})
        assert stream.getvalue() == ""  # nothing yet: held until the batch ends
    assert stream.writes == 1
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["attempt_number"] for line in lines] == [0, 1, 2, 3, 4]
    assert all(line["logger"] == "courier.delivery" for line in lines)


def test_outside_a_batch_each_line_is_written_at_once(stream: CountingStream) -> None:
    logging.getLogger("courier.worker").warning("one")
    assert json.loads(stream.getvalue())["msg"] == "one"
    logging.getLogger("courier.worker").warning("two")
    assert len(stream.getvalue().splitlines()) == 2


def test_nested_batches_write_when_the_outer_one_ends(stream: CountingStream) -> None:
    log = logging.getLogger("courier.delivery")
    with batched_log_lines():
        log.info("outer")
        with batched_log_lines():
            log.info("inner")
        assert stream.getvalue() == ""
    assert [json.loads(x)["msg"] for x in stream.getvalue().splitlines()] == ["outer", "inner"]


def test_a_batch_that_raises_still_writes_its_lines(stream: CountingStream) -> None:
    with pytest.raises(RuntimeError), batched_log_lines():
        logging.getLogger("courier.delivery").info("before the error")
        raise RuntimeError("boom")
    assert json.loads(stream.getvalue())["msg"] == "before the error"


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_json_timestamp_is_the_records_utc_time_rounded_like_isoformat(created: float) -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("courier.test", logging.INFO, "", 0, "m", None, None)
    expected = datetime.fromtimestamp(created, UTC)
    # Twice: the second call reuses the cached date and time of that second.
    for _ in range(2):
        record.created = created
        ts = datetime.fromisoformat(json.loads(formatter.format(record))["ts"])
        assert ts == expected and ts.utcoffset() == timedelta(0)


def test_json_timestamp_moves_on_with_the_second() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("courier.test", logging.INFO, "", 0, "m", None, None)
    stamps = []
    for created in (1_700_000_000.999999, 1_700_000_001.000001, 1_700_000_000.5):
        record.created = created
        stamps.append(json.loads(formatter.format(record))["ts"])
    assert stamps == [
        "2023-11-14T22:13:20.999999+00:00",
        "2023-11-14T22:13:21.000001+00:00",
        "2023-11-14T22:13:20.500000+00:00",
    ]
