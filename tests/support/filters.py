"""Hypothesis strategies for payload filters: JSON payloads and valid filters over a
small set of keys, so that paths often find something."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

KEYS = ("a", "b")
# code points of 1 to 4 UTF-8 bytes, so string order by code point and by byte agree only
# if PostgreSQL compares bytes, not the database's collation
TEXTS = ("", "a", "B", "ab", "b", "é", "Z", "ÿ", "€", "😀", "10", "9")
# few, so that filters and payloads meet; equal values spelt differently (1 and 1.0,
# 0 and -0.0, 10**16 and 1e16), and neighbours past a double's precision
NUMBERS = st.sampled_from(
    [-1, 0, -0.0, 1, 1.0, 2.5, 3, 10**16, 1e16, 2**63 - 1, 9.223372036854776e18]
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.sampled_from(TEXTS))
ORDERABLE = st.one_of(NUMBERS, st.sampled_from(TEXTS))

payload_values: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    ),
    max_leaves=8,
)
payloads = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), payload_values, max_size=3),
    payload_values,
)
paths = st.lists(st.sampled_from(KEYS), min_size=1, max_size=3).map(".".join)


def _operators(condition: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    one = st.one_of(
        st.tuples(st.sampled_from(["$eq", "$ne"]), payload_values),
        st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), ORDERABLE),
        st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(SCALARS, max_size=3)),
        st.tuples(st.just("$exists"), st.booleans()),
        st.tuples(st.just("$not"), condition),
    )
    return st.lists(one, min_size=1, max_size=2).map(dict)


conditions: st.SearchStrategy[Any] = st.recursive(
    st.one_of(SCALARS, st.lists(SCALARS, max_size=2)),
    _operators,
    max_leaves=4,
)


def _documents(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    entry = st.one_of(
        st.tuples(paths, conditions),
        st.tuples(st.sampled_from(["$and", "$or"]), st.lists(inner, min_size=1, max_size=3)),
        st.tuples(st.just("$not"), inner),
    )
    return st.lists(entry, min_size=1, max_size=3).map(dict)


filters: st.SearchStrategy[dict[str, Any]] = st.recursive(
    st.dictionaries(paths, conditions, min_size=1, max_size=2),
    _documents,
    max_leaves=6,
)
