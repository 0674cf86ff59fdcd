"""A logged exception keeps its traceback, redacted, in both formats."""

from __future__ import annotations

import io
import json
import logging

from courier.logs import HumanFormatter, JsonFormatter

PLANTED = "PLANTED-PASSWORD"


def _failing() -> None:
    raise ConnectionError(f"cannot open postgresql://courier:{PLANTED}@db.internal/courier")


def _record() -> logging.LogRecord:
    try:
        _failing()
    except ConnectionError:
        return logging.LogRecord(
            "courier.worker", logging.ERROR, __file__, 1, "it broke", None, _exc()
        )
    raise AssertionError("unreachable")


def _exc() -> logging._SysExcInfoType:
    import sys

    return sys.exc_info()


def test_json_lines_keep_the_traceback_without_the_secret() -> None:
    entry = json.loads(JsonFormatter().format(_record()))
    assert entry["error"] == "ConnectionError"
    trace = entry["traceback"]
    assert trace.startswith("Traceback (most recent call last):")
    assert "in _failing" in trace  # the frames are there
    assert "ConnectionError: cannot open postgresql://[REDACTED]@db.internal/courier" in trace
    assert PLANTED not in trace


def test_human_lines_keep_the_traceback_without_the_secret() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(HumanFormatter())
    handler.emit(_record())
    text = stream.getvalue()
    assert "Traceback (most recent call last):" in text and "in _failing" in text
    assert PLANTED not in text
