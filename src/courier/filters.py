"""Payload filters: which events a destination takes, by the content of their payload.

A filter is a JSON object matched against the event payload:

    {"data.amount": {"$gte": 100}, "data.currency": {"$in": ["EUR", "USD"]}}

Keys are dotted paths into the payload, or `$and` / `$or` (a non-empty list of filters)
or `$not` (a filter). A path's condition is an object of operators (`$eq $ne $gt $gte
$lt $lte $in $nin $exists $not`, all of them must hold) or any other JSON value, which
means `$eq` that value. Every key of a filter must hold; `{}` matches every payload.

The rules, the same here and in PostgreSQL (migration 020: the filter is compiled to a
plan when it is written, and `courier_filter_matches` evaluates the plan in the fan-out
statement that writes the deliveries):

* A path walks objects only: `a.b` is key `b` of the object at key `a`. A step into
  anything but an object (an array, a string, ...) finds nothing: the path is missing.
* `$eq` is JSON equality: same type and same value, numbers by their decimal value
  (`1 == 1.0`), arrays in order, objects by their keys; `true` is not `1`. A missing
  path equals nothing, not even `null`. `$ne` is its negation, so it matches a
  missing path; `$in` is `$eq` to one of a list, `$nin` its negation.
* `$gt $gte $lt $lte` take a number or a string and match only a value of the same
  type: numbers by decimal value, strings by Unicode code point. `"150"` is not greater
  than 100, and a missing path matches none of them.
* `$exists: true` matches a path that is present (even as `null`), `false` one that is
  missing. `$not` negates a filter (at the top) or a condition (under a path).
* A payload PostgreSQL cannot hold as jsonb (a string with a NUL character) matches
  no filter.

`problems` lists what is wrong with a document (each naming its place, e.g.
`$or[1].data.amount.$gte`); `matches` is the reference evaluator that the SQL
function is tested against.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

MAX_DEPTH = 8  # nested $and / $or / $not / conditions
MAX_BYTES = 16_384  # the filter as JSON text
MAX_IN = 1_000  # values of one $in / $nin
LOGICAL = frozenset({"$and", "$or", "$not"})
ORDERED = frozenset({"$gt", "$gte", "$lt", "$lte"})
OPERATORS = ORDERED | frozenset({"$eq", "$ne", "$in", "$nin", "$exists", "$not"})


@dataclass(frozen=True, slots=True)
class FilterProblem:
    where: str  # the place in the filter, e.g. `data.amount.$gte`; "" for the whole filter
    message: str


class _Missing:
    """The value of a path that is not in the payload."""


MISSING = _Missing()


def _place(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def problems(document: Any) -> list[FilterProblem]:
    """What is wrong with a filter document; empty when it is valid."""
    if not isinstance(document, dict):
        return [FilterProblem("", "must be a JSON object")]
    found = list(_document(document, "", 1))
    if not found and len(orjson.dumps(document)) > MAX_BYTES:
        found.append(FilterProblem("", f"must be at most {MAX_BYTES} bytes as JSON"))
    return found


def _document(document: Mapping[str, Any], where: str, depth: int) -> Iterator[FilterProblem]:
    if depth > MAX_DEPTH:
        yield FilterProblem(where, f"nests deeper than {MAX_DEPTH} levels")
        return
    for key, value in document.items():
        place = _place(where, key)
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                yield FilterProblem(place, "must be a non-empty list of filters")
                continue
            for n, item in enumerate(value):
                if not isinstance(item, dict):
                    yield FilterProblem(f"{place}[{n}]", "must be a filter (a JSON object)")
                else:
                    yield from _document(item, f"{place}[{n}]", depth + 1)
        elif key == "$not":
            if not isinstance(value, dict):
                yield FilterProblem(place, "must be a filter (a JSON object)")
            else:
                yield from _document(value, place, depth + 1)
        elif key.startswith("$"):
            yield FilterProblem(place, "unknown operator (paths do not start with `$`)")
        else:
            yield from _path(key, place)
            yield from _condition(value, place, depth + 1)


def _path(key: str, place: str) -> Iterator[FilterProblem]:
    if any(step == "" for step in key.split(".")):
        yield FilterProblem(place, "a path is dot-separated keys, none of them empty")
    else:
        yield from _text(key, place)


def _text(text: str, place: str) -> Iterator[FilterProblem]:
    if "\x00" in text:
        yield FilterProblem(place, "must not contain NUL characters")
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        yield FilterProblem(place, "must be valid Unicode text")


def _is_operators(value: Any) -> bool:
    return isinstance(value, dict) and any(key.startswith("$") for key in value)


def _condition(value: Any, where: str, depth: int) -> Iterator[FilterProblem]:
    if depth > MAX_DEPTH:
        yield FilterProblem(where, f"nests deeper than {MAX_DEPTH} levels")
        return
    if not _is_operators(value):
        yield from _value(value, where)
        return
    for op, operand in value.items():
        place = _place(where, op)
        if op not in OPERATORS:
            yield FilterProblem(place, f"unknown operator; one of {', '.join(sorted(OPERATORS))}")
        elif op in ORDERED:
            if _kind(operand) not in ("number", "string"):
                yield FilterProblem(place, "must be a number or a string")
            else:
                yield from _value(operand, place)
        elif op in ("$in", "$nin"):
            if not isinstance(operand, list):
                yield FilterProblem(place, "must be a list of values")
            elif len(operand) > MAX_IN:
                yield FilterProblem(place, f"must hold at most {MAX_IN} values")
            else:
                for n, item in enumerate(operand):
                    yield from _value(item, f"{place}[{n}]")
        elif op == "$exists":
            if not isinstance(operand, bool):
                yield FilterProblem(place, "must be true or false")
        elif op == "$not":
            yield from _condition(operand, place, depth + 1)
        else:  # $eq, $ne
            yield from _value(operand, place)


def _value(value: Any, where: str) -> Iterator[FilterProblem]:
    """A JSON value PostgreSQL can store (finite numbers, text without NUL)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        yield FilterProblem(where, "numbers must be finite")
    elif isinstance(value, str):
        yield from _text(value, where)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _value(item, f"{where}[{n}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _text(key, where)
            yield from _value(item, _place(where, key))
    elif value is not None and not isinstance(value, bool | int | float):
        yield FilterProblem(where, "must be a JSON value")


# The evaluator. Payloads and filters are what JSON decodes to (dict, list, str, int,
# float, bool, None); numbers are compared as the decimal they are written as, as
# PostgreSQL's numeric does.


def matches(document: Mapping[str, Any], payload: Any) -> bool:
    """Whether `payload` matches the (valid) filter `document`."""
    if _holds_nul(payload):
        return False
    return _matches(document, payload)


def _matches(document: Mapping[str, Any], payload: Any) -> bool:
    for key, value in document.items():
        if key == "$and":
            if not all(_matches(item, payload) for item in value):
                return False
        elif key == "$or":
            if not any(_matches(item, payload) for item in value):
                return False
        elif key == "$not":
            if _matches(value, payload):
                return False
        elif not _holds(_lookup(payload, key), value):
            return False
    return True


def _lookup(payload: Any, path: str) -> Any:
    found = payload
    for step in path.split("."):
        if not isinstance(found, dict) or step not in found:
            return MISSING
        found = found[step]
    return found


def _holds(found: Any, condition: Any) -> bool:
    if not _is_operators(condition):
        return _equal(found, condition)
    return all(_operator(op, found, operand) for op, operand in condition.items())


def _operator(op: str, found: Any, operand: Any) -> bool:
    if op == "$eq":
        return _equal(found, operand)
    if op == "$ne":
        return not _equal(found, operand)
    if op == "$in":
        return any(_equal(found, item) for item in operand)
    if op == "$nin":
        return not any(_equal(found, item) for item in operand)
    if op == "$exists":
        return (found is not MISSING) is operand
    if op == "$not":
        return not _holds(found, condition=operand)
    kind = _kind(found)
    if kind != _kind(operand):
        return False
    left, right = (_number(found), _number(operand)) if kind == "number" else (found, operand)
    if op == "$gt":
        return bool(left > right)
    if op == "$gte":
        return bool(left >= right)
    if op == "$lt":
        return bool(left < right)
    return bool(left <= right)  # $lte


def _kind(value: Any) -> str:
    if value is MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number(value: int | float) -> Decimal:
    # repr: the shortest text that reads back as this float, i.e. how JSON writes it
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def _equal(left: Any, right: Any) -> bool:
    kind = _kind(left)
    if kind == "missing" or kind != _kind(right):
        return False
    if kind == "number":
        return _number(left) == _number(right)
    if kind == "array":
        return len(left) == len(right) and all(map(_equal, left, right))
    if kind == "object":
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    return bool(left == right)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any("\x00" in key or _holds_nul(item) for key, item in value.items())
    return False
