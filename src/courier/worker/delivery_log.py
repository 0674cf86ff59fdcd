"""One structured log line per finished attempt and the transition it caused.

Logger `courier.delivery`, at INFO (WARNING for a dead letter or a failure). The JSON
formatter (courier.logs) writes the `extra` fields as top-level keys:

    {"ts": …, "level": "info", "logger": "courier.delivery",
     "msg": "delivery 0190… attempt 2: retryable_failure (HTTP 503, 41 ms) -> retry_scheduled",
     "tenant_id": …, "delivery_id": …, "attempt_number": 2, "outcome": "retryable_failure",
     "state": "retry_scheduled", "duration_ms": 41, "http_status": 503, "retry_in_s": 9.7,
     "reason": null, "error": "HTTP 503", "worker_id": …}

Only ids, numbers and the already-redacted error summary (courier.redact) are logged:
never a URL, a header, a payload or a secret.
"""

from __future__ import annotations

import logging

from courier.store.deliveries import Completion

logger = logging.getLogger("courier.delivery")

_LEVELS = {"dead_lettered": logging.WARNING, "failed": logging.WARNING}


def log_completion(completion: Completion, worker_id: str) -> None:
    c = completion
    level = _LEVELS.get(c.state, logging.INFO)
    if not logger.isEnabledFor(level):
        return
    delivery_id = str(c.delivery_id)  # once: the message and a field both carry it
    status = f"HTTP {c.http_status}, " if c.http_status is not None else ""
    logger.log(
        level,
        "delivery %s attempt %d: %s (%s%d ms) -> %s",
        delivery_id,
        c.attempt_number,
        c.outcome,
        status,
        c.duration_ms,
        c.state,
        extra={
            "tenant_id": str(c.tenant_id),
            "delivery_id": delivery_id,
            "attempt_number": c.attempt_number,
            "outcome": c.outcome,
            "state": c.state,
            "duration_ms": c.duration_ms,
            "http_status": c.http_status,
            "retry_in_s": round(c.retry_delay_s, 3) if c.retry_delay_s is not None else None,
            "reason": c.reason,
            "error": c.error_summary,
            "worker_id": worker_id,
        },
    )
