"""Keyset pagination: `?limit=&cursor=`, the cursor naming the last row of a page.

Rows are walked by primary key. Ids are time-ordered UUIDv7, so `id DESC` is newest
first, and a row inserted while a client pages lands before its cursor: no row the
client has not seen yet is skipped, and none is repeated. The cursor is the last row's
id as text; attempts walk oldest first by their attempt number, and their cursor is
that number in decimal. Both are plain positions rather than encoded tokens so the
OpenAPI document can give their exact pattern: every string that matches it is a
position the API accepts (an id or number no row has simply ends the walk there).

The store's list functions fetch one row more than the page; `split_page` and
`keyset_page` turn those rows into the page and the cursor of the next one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Query
from pydantic import BaseModel

from courier.api.schemas import Page
from courier.store.rows import Row
from courier.web.destination_input import EVENT_TYPE_PATTERN, UUID_TEXT_PATTERN
from courier.web.pagination import split_page
from courier.web.problems import invalid_field

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
ID_CURSOR_PATTERN = UUID_TEXT_PATTERN
NUMBER_CURSOR_PATTERN = r"^[0-9]{1,9}$"  # attempt numbers fit PostgreSQL's integer
NAME_CURSOR_PATTERN = EVENT_TYPE_PATTERN  # lists walked by name (event types)
NAME_CURSOR_CHARS = 255  # the longest name a name cursor carries

LimitQuery = Annotated[
    int,
    Query(ge=1, le=MAX_LIMIT, description=f"page size (default {DEFAULT_LIMIT})"),
]
CursorQuery = Annotated[
    str | None,
    Query(
        pattern=ID_CURSOR_PATTERN,
        description="`next_cursor` of the previous page, as returned (the id of its last item)",
    ),
]
NameCursorQuery = Annotated[
    str | None,
    Query(
        pattern=NAME_CURSOR_PATTERN,
        max_length=NAME_CURSOR_CHARS,
        description="`next_cursor` of the previous page, as returned (the name of its last item)",
    ),
]
NumberCursorQuery = Annotated[
    str | None,
    Query(
        pattern=NUMBER_CURSOR_PATTERN,
        description="`next_cursor` of the previous page, as returned (the number of its "
        "last attempt)",
    ),
]


def _not_ours() -> Exception:
    return invalid_field("cursor", "not a cursor this API issued", "query")


def id_cursor(last_id: uuid.UUID) -> str:
    return str(last_id)


def after_id(cursor: str | None) -> uuid.UUID | None:
    if cursor is None:
        return None
    if re.fullmatch(ID_CURSOR_PATTERN, cursor) is None:
        raise _not_ours()
    return uuid.UUID(cursor)


def number_cursor(last: int) -> str:
    return str(last)


def after_number(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if re.fullmatch(NUMBER_CURSOR_PATTERN, cursor) is None:
        raise _not_ours()
    return int(cursor)


def name_cursor(last: str) -> str:
    """The cursor after a row walked by a name (event types): the name itself."""
    return last


def after_name(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    if len(cursor) > NAME_CURSOR_CHARS or re.fullmatch(NAME_CURSOR_PATTERN, cursor) is None:
        raise _not_ours()
    return cursor


ItemT = TypeVar("ItemT", bound=BaseModel)


def row_id_cursor(row: Row) -> str:
    """The cursor after a row walked by its id (all lists but attempts)."""
    return id_cursor(row["id"])


def row_attempt_cursor(row: Row) -> str:
    """The cursor after an attempt row, walked by its attempt number."""
    return number_cursor(row["attempt_number"])


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
