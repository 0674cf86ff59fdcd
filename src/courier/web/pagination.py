"""Keyset pages: a page is fetched as `limit + 1` rows, the extra one telling whether
another page follows."""

from __future__ import annotations

from typing import TypeVar

RowT = TypeVar("RowT")


def split_page(rows: list[RowT], limit: int) -> tuple[list[RowT], RowT | None]:
    """The first `limit` of up to `limit + 1` rows, and the last of them when more follow
    (None on the last page)."""
    page = rows[:limit]
    return page, (page[-1] if len(rows) > limit else None)
