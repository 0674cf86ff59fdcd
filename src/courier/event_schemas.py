"""Event-type schemas: JSON Schema 2020-12 checked when a type is put, and payloads
validated against it when events are sent.

A compiled validator is kept per (tenant, type) together with the catalog version it
was compiled from, in this process, in a bounded LRU (`SchemaCache`). A PUT or DELETE
in this process drops the entry at once. Another API process notices the change the next
time it looks, at most `RECHECK_S` later: an entry younger than that is used without
asking the database; an older one asks for the type's version only (the schema itself is
read again only when the version changed). Types without a schema, and names not in the
catalog, are cached the same way, so events of those types cost no extra query either.

Formats (`"format": "email"`) are annotations, as 2020-12 says, not assertions; a `$ref`
must resolve inside the schema (nothing is fetched over the network).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from referencing.exceptions import Unresolvable

from courier.errors import CourierError

RECHECK_S = 5.0  # seconds an entry is used before its version is asked for again
MAX_ENTRIES = 10_000  # (tenant, type) validators kept per process
MESSAGE_CHARS = 300  # the longest validation message answered


class InvalidSchema(CourierError, ValueError):
    """A schema that is not valid JSON Schema 2020-12; `path` names where, from `schema`."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class InvalidPayload(CourierError, ValueError):
    """A payload its type's schema refuses; `path` names the failing value."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def _path(root: str, parts: Any) -> str:
    out = root
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _short(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def compile_schema(schema: Any) -> Draft202012Validator:
    """A validator for `schema`, or InvalidSchema naming where it is wrong."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidSchema(_path("schema", exc.absolute_path), _short(exc.message)) from None
    return Draft202012Validator(schema)


def validate(validator: Draft202012Validator, payload: Any, root: str = "payload") -> None:
    """Raise InvalidPayload naming the most relevant failing path (e.g. `payload.amount`)."""
    try:
        error: ValidationError | None = best_match(validator.iter_errors(payload))
    except Unresolvable as exc:
        problem = _short(f"the type's schema has a $ref that does not resolve ({exc})")
        raise InvalidPayload(root, problem) from None
    if error is not None:
        raise InvalidPayload(_path(root, error.absolute_path), _short(error.message))


@dataclass(frozen=True, slots=True)
class Entry:
    version: int | None  # None: the type is not in the catalog
    validator: Draft202012Validator | None  # None: no schema
    checked_at: float  # time.monotonic()


Key = tuple[uuid.UUID, str]
# (tenant, type) -> its current version (None when not in the catalog)
VersionReader = Callable[[uuid.UUID, str], Awaitable[int | None]]
# (tenant, type) -> (version, schema or None), or None when not in the catalog
SchemaReader = Callable[[uuid.UUID, str], Awaitable[tuple[int, Any] | None]]


class SchemaCache:
    def __init__(self, max_entries: int = MAX_ENTRIES, recheck_s: float = RECHECK_S) -> None:
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._max = max_entries
        self._recheck_s = recheck_s

    def forget(self, tenant_id: uuid.UUID, name: str) -> None:
        """Drop a type's entry (its catalog entry changed in this process)."""
        self._entries.pop((tenant_id, name), None)

    async def validator(
        self,
        tenant_id: uuid.UUID,
        name: str,
        read_version: VersionReader,
        read_schema: SchemaReader,
    ) -> Draft202012Validator | None:
        """The validator of a type's current schema; None when it has none."""
        key = (tenant_id, name)
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now - entry.checked_at < self._recheck_s:
            self._entries.move_to_end(key)
            return entry.validator
        if entry is not None and await read_version(tenant_id, name) == entry.version:
            entry = Entry(entry.version, entry.validator, now)
        else:
            found = await read_schema(tenant_id, name)
            if found is None:
                entry = Entry(None, None, now)
            else:
                version, schema = found
                # A stored schema was checked when it was put; compile it as it is.
                compiled = None if schema is None else Draft202012Validator(schema)
                entry = Entry(version, compiled, now)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return entry.validator
