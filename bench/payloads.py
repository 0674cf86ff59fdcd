"""The small JSON body every contestant sends (about 200 bytes), keyed by an id."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

EVENT_TYPE = "order.created"


def payload(event_id: str, n: int) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": EVENT_TYPE,
        "data": {
            "order": n,
            "amount": 1999 + n % 1000,
            "currency": "EUR",
            "customer": f"cus_{n:010d}",
            "items": 1 + n % 5,
        },
    }


def body(event_id: str, n: int) -> bytes:
    return orjson.dumps(payload(event_id, n))


def new_id() -> str:
    return str(uuid.uuid4())
