"""Keyset pagination: `?limit=&cursor=`, the cursor an opaque token naming the last row.

Rows are walked by primary key. Ids are time-ordered UUIDv7, so `id DESC` is newest
first, and a row inserted while a client pages lands before its cursor: no row the
client has not seen yet is skipped, and none is repeated. Attempts walk oldest first by
their attempt number; their cursor holds that number instead.

The store's list functions fetch one row more than the page; `split_page` and
`keyset_page` turn those rows into the page and the cursor of the next one.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Query
from pydantic import BaseModel

from courier.api.problems import invalid_field
from courier.api.schemas import Page
from courier.store.rows import Row

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


ItemT = TypeVar("ItemT", bound=BaseModel)


def row_id_cursor(row: Row) -> str:
    """The cursor after a row walked by its id (all lists but attempts)."""
    return id_cursor(row["id"])


def row_attempt_cursor(row: Row) -> str:
    """The cursor after an attempt row, walked by its attempt number."""
    return number_cursor(row["attempt_number"])


def split_page(rows: list[Row], limit: int) -> tuple[list[Row], Row | None]:
    """The first `limit` of up to `limit + 1` rows, and the last of them when more follow
    (None on the last page)."""
    page = rows[:limit]
    return page, (page[-1] if len(rows) > limit else None)


def keyset_page(
    item: type[ItemT],
    rows: list[Row],
    limit: int,
    cursor_of: Callable[[Row], str] = row_id_cursor,
) -> Page[ItemT]:
    """The `Page` envelope of up to `limit + 1` rows: `limit` items and, when another
    page follows, `next_cursor` naming the last of them."""
    page, last = split_page(rows, limit)
    return Page[item](  # type: ignore[valid-type]  # the concrete model, as response_model has it
        items=[item.model_validate(r) for r in page],
        next_cursor=cursor_of(last) if last is not None else None,
    )
