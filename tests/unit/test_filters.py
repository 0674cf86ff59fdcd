"""Payload filters: what a valid filter is, and the reference evaluator's rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given

from courier.filters import MAX_DEPTH, MAX_IN, matches, problems
from tests.support.filters import filters

ORDER = {"type": "order", "data": {"amount": 150, "currency": "EUR", "note": None}}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({}, True),
        ({"data.amount": 150}, True),
        ({"data.amount": 150.0}, True),  # numbers by value
        ({"data.amount": "150"}, False),  # never across types
        ({"data.amount": {"$gte": 100}}, True),
        ({"data.amount": {"$gt": "100"}}, False),
        ({"data.amount": {"$gt": 100, "$lt": 150}}, False),  # every operator must hold
        ({"data.currency": {"$in": ["EUR", "USD"]}}, True),
        ({"data.currency": {"$nin": ["EUR"]}}, False),
        ({"data.note": None}, True),
        ({"data.note": {"$exists": True}}, True),
        ({"data.missing": None}, False),  # missing is not null
        ({"data.missing": {"$exists": False}}, True),
        ({"data.missing": {"$ne": 1}}, True),
        ({"data.missing": {"$nin": [1]}}, True),
        ({"data.missing": {"$lt": 1}}, False),
        ({"type.length": {"$exists": True}}, False),  # paths walk objects only
        ({"data": {"amount": 150, "currency": "EUR", "note": None}}, True),
        ({"data": {"amount": 150}}, False),  # objects equal as a whole
        ({"$or": [{"type": "refund"}, {"data.amount": {"$gte": 100}}]}, True),
        ({"$and": [{"type": "order"}, {"data.amount": {"$lt": 100}}]}, False),
        ({"$not": {"type": "refund"}}, True),
        ({"data.amount": {"$not": {"$gte": 100}}}, False),
        ({"data.currency": {"$gt": "E", "$lt": "F"}}, True),
    ],
)
def test_the_rules(document: dict[str, Any], expected: bool) -> None:
    assert problems(document) == []
    assert matches(document, ORDER) is expected


def test_booleans_are_not_numbers() -> None:
    assert not matches({"a": 1}, {"a": True})
    assert not matches({"a": {"$gte": 0}}, {"a": False})
    assert matches({"a": {"$in": [True]}}, {"a": True})


def test_strings_order_by_code_point() -> None:
    # "Z" < "a" < "é" < "€" < "😀" by code point, whatever a collation says
    assert matches({"s": {"$gt": "Z", "$lt": "é"}}, {"s": "a"})
    assert matches({"s": {"$gt": "€"}}, {"s": "😀"})


def test_numbers_compare_as_written() -> None:
    assert matches({"n": {"$lt": 9.223372036854776e18}}, {"n": 2**63 - 1})
    assert matches({"n": 10**16}, {"n": 1e16})


def test_a_payload_with_nul_matches_no_filter() -> None:
    assert not matches({}, {"a": "x\x00"})
    assert not matches({"b": {"$exists": False}}, {"\x00": 1})


def test_a_payload_that_is_not_an_object_has_no_paths() -> None:
    assert matches({"a": {"$exists": False}}, [1, 2])
    assert not matches({"a": 1}, "a")


@pytest.mark.parametrize(
    ("document", "where", "message"),
    [
        ([], "", "JSON object"),
        ({"data.amount": {"$gte": True}}, "data.amount.$gte", "number or a string"),
        ({"data.amount": {"$gte": None}}, "data.amount.$gte", "number or a string"),
        ({"data.amount": {"$between": [1, 2]}}, "data.amount.$between", "unknown operator"),
        ({"data.amount": {"$gt": 1, "lt": 2}}, "data.amount.lt", "unknown operator"),
        ({"$nor": []}, "$nor", "unknown operator"),
        ({"a": {"$in": "EUR"}}, "a.$in", "list"),
        ({"a": {"$nin": 3}}, "a.$nin", "list"),
        ({"a": {"$in": list(range(MAX_IN + 1))}}, "a.$in", "at most"),
        ({"a": {"$exists": 1}}, "a.$exists", "true or false"),
        ({"$and": []}, "$and", "non-empty list"),
        ({"$or": {"a": 1}}, "$or", "non-empty list"),
        ({"$or": [{"a": 1}, 2]}, "$or[1]", "JSON object"),
        ({"$or": [{"a": 1}, {"b": {"$lt": []}}]}, "$or[1].b.$lt", "number or a string"),
        ({"$not": [1]}, "$not", "JSON object"),
        ({"a..b": 1}, "a..b", "none of them empty"),
        ({".a": 1}, ".a", "none of them empty"),
        ({"a": "x\x00"}, "a", "NUL"),
        ({"a": {"$eq": float("nan")}}, "a.$eq", "finite"),
        ({"a": {"$not": {"$not": {"$in": 1}}}}, "a.$not.$not.$in", "list"),
    ],
)
def test_a_bad_filter_names_the_place(document: Any, where: str, message: str) -> None:
    found = problems(document)
    assert found, document
    assert found[0].where == where
    assert message in found[0].message


def test_depth_is_bounded() -> None:
    deep: dict[str, Any] = {"a": 1}
    for _ in range(MAX_DEPTH):
        deep = {"$not": deep}
    assert problems(deep)[0].message.startswith("nests deeper")


def test_size_is_bounded() -> None:
    assert problems({"a": {"$in": ["x" * 100] * 200}})[0].message.startswith("must be at most")


@given(filters)
def test_generated_filters_are_valid(document: dict[str, Any]) -> None:
    assert problems(document) == []
