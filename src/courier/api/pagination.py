"""Keyset pagination: `?limit=&cursor=`, the cursor an opaque token naming the last row.

Rows are walked by primary key. Ids are time-ordered UUIDv7, so `id DESC` is newest
first, and a row inserted while a client pages lands before its cursor: no row the
client has not seen yet is skipped, and none is repeated. Attempts walk oldest first by
their attempt number; their cursor holds that number instead.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated

from fastapi import Query

from courier.api.problems import invalid_field

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_PREFIX_ID = "i:"
_PREFIX_NUMBER = "n:"

LimitQuery = Annotated[
    int,
    Query(ge=1, le=MAX_LIMIT, description=f"page size (default {DEFAULT_LIMIT})"),
]
CursorQuery = Annotated[
    str | None,
    Query(max_length=200, description="`next_cursor` of the previous page, as returned"),
]


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def _decode(cursor: str, prefix: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (UnicodeError, binascii.Error, ValueError):
        raise invalid_field("cursor", "not a cursor this API issued", "query") from None
    if not text.startswith(prefix):
        raise invalid_field("cursor", "not a cursor this API issued", "query")
    return text[len(prefix) :]


def id_cursor(last_id: uuid.UUID) -> str:
    return _encode(_PREFIX_ID + last_id.hex)


def after_id(cursor: str | None) -> uuid.UUID | None:
    if cursor is None:
        return None
    try:
        return uuid.UUID(hex=_decode(cursor, _PREFIX_ID))
    except ValueError:
        raise invalid_field("cursor", "not a cursor this API issued", "query") from None


def number_cursor(last: int) -> str:
    return _encode(f"{_PREFIX_NUMBER}{last}")


def after_number(cursor: str | None) -> int:
    if cursor is None:
        return 0
    text = _decode(cursor, _PREFIX_NUMBER)
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise invalid_field("cursor", "not a cursor this API issued", "query")
    return int(text)
