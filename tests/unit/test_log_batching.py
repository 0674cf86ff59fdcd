"""Log lines of a completion batch go out in one write, in order, and none is lost."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

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
