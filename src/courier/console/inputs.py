"""Console form fields and query parameters, checked before any of them reaches PostgreSQL.

Each reader takes the field's name and its raw text and answers the typed value, None for
an absent or empty field, or raises `BadField` naming the field; the console answers that
with a 422 page saying which field was wrong. PostgreSQL refuses some text that Python
accepts (a NUL byte in a text value, a time beyond its range once moved to UTC), so those
are refused here, with every value's length bounded.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from urllib.parse import parse_qs

MAX_FORM_FIELDS = 50  # fields in one posted form
UUID_MAX_CHARS = 45  # the longest spelling uuid.UUID accepts: "urn:uuid:" + 36
TIME_MAX_CHARS = 40  # "2026-01-02T03:04:05.123456+05:30" and room to spare
INT_MAX_CHARS = 12  # beyond every bound a console form checks
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what secrets.token_urlsafe writes, bounded


class BadField(ValueError):
    """A field's value the console cannot use; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _present(field: str, value: str | None, max_chars: int) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > max_chars:
        raise BadField(field, f"is too long (at most {max_chars} characters)")
    if "\x00" in value:
        raise BadField(field, "contains a NUL character")
    return value


def uuid_field(field: str, value: str | None) -> uuid.UUID | None:
    text = _present(field, value, UUID_MAX_CHARS)
    if text is None:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        raise BadField(field, "is not an id (a UUID)") from None


def path_id(value: str) -> uuid.UUID | None:
    """An id in the path; a malformed one names nothing (404), like an unknown one."""
    try:
        return uuid_field("id", value)
    except BadField:
        return None


def time_field(field: str, value: str | None) -> datetime | None:
    """An ISO 8601 date and time, in UTC; one without a zone (an HTML datetime-local) is UTC."""
    text = _present(field, value, TIME_MAX_CHARS)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadField(field, "is not a date and time (YYYY-MM-DDTHH:MM)") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # its offset moves it past year 1 or 9999
        raise BadField(field, "is out of range") from None


def choice_field(field: str, value: str | None, choices: Collection[str]) -> str | None:
    if value is None or value == "":
        return None
    if value not in choices:
        raise BadField(field, "must be one of " + ", ".join(sorted(choices)))
    return value


def text_field(field: str, value: str | None, max_chars: int) -> str | None:
    """Free text of at most `max_chars` characters, without NUL."""
    return _present(field, value, max_chars)


def token_field(field: str, value: str | None) -> str | None:
    """A token the console wrote into a form (letters, digits, `-` and `_`, at most 64)."""
    if value is None or value == "":
        return None
    if TOKEN.fullmatch(value) is None:
        raise BadField(field, "is not a token this console wrote")
    return value


def form_fields(body: bytes) -> dict[str, str]:
    """A url-encoded form body as its fields (the first value of each)."""
    text = body.decode("utf-8", errors="replace")
    try:
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        raise BadField("form", f"has too many fields (at most {MAX_FORM_FIELDS})") from None
    return {name: values[0] for name, values in fields.items()}


def int_field(field: str, value: str | None) -> int | None:
    """A whole number written in decimal digits (the model checks its bounds)."""
    text = _present(field, value, INT_MAX_CHARS)
    if text is None:
        return None
    if not text.isascii() or not text.isdigit():
        raise BadField(field, "must be a whole number")
    return int(text)


def form_lists(body: bytes, max_fields: int = MAX_FORM_FIELDS) -> dict[str, list[str]]:
    """A url-encoded form body as every value of each field (checkbox groups, rows)."""
    text = body.decode("utf-8", errors="replace")
    try:
        return parse_qs(text, keep_blank_values=True, max_num_fields=max_fields)
    except ValueError:
        raise BadField("form", f"has too many fields (at most {max_fields})") from None
