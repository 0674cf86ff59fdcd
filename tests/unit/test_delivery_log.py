"""The per-attempt log line: its fields in JSON, and the human format for `courier up`."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from courier.logs import HumanFormatter, JsonFormatter
from courier.store.deliveries import Completion
from courier.worker.delivery_log import log_completion


def _completion(**kw: object) -> Completion:
    values: dict[str, object] = {
        "tenant_id": uuid.UUID(int=1),
        "delivery_id": uuid.UUID(int=2),
        "attempt_number": 2,
        "state": "retry_scheduled",
        "outcome": "retryable_failure",
        "retry_delay_s": 1.23456,
        "http_status": 503,
        "error_summary": "HTTP 503",
        "duration_ms": 41,
        "reason": None,
    }
    values.update(kw)
    return Completion(**values)  # type: ignore[arg-type]


def test_attempt_line_as_json_carries_the_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="courier.delivery"):
        log_completion(_completion(), "w1")
    (record,) = caplog.records
    line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == "courier.delivery" and line["level"] == "info"
    assert {k: line[k] for k in ("tenant_id", "delivery_id", "attempt_number")} == {
        "tenant_id": str(uuid.UUID(int=1)),
        "delivery_id": str(uuid.UUID(int=2)),
        "attempt_number": 2,
    }
    assert line["outcome"] == "retryable_failure" and line["state"] == "retry_scheduled"
    assert line["duration_ms"] == 41 and line["http_status"] == 503
    assert line["retry_in_s"] == 1.235 and line["worker_id"] == "w1"


def test_dead_letter_logs_a_warning_and_reads_well_in_human_format(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="courier.delivery"):
        log_completion(
            _completion(state="dead_lettered", retry_delay_s=None, reason="max_attempts_exhausted"),
            "w1",
        )
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    text = HumanFormatter().format(record)
    assert "attempt 2: retryable_failure (HTTP 503, 41 ms) -> dead_lettered" in text
    assert "reason=max_attempts_exhausted" in text and "retry_in_s" not in text
