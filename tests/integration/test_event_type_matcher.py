"""The event-type matcher in PostgreSQL (courier_event_type_matches, migration 025)
agrees with the rules (exact, `prefix.*`, `*`, empty for all) and with the inline SQL it
replaced, on random pattern lists and types, and the planner inlines it."""

from __future__ import annotations

from typing import Any

import psycopg
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

SHARED_DB = settings(max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture])

# The inline SQL that fan-out and recovery carried before the function.
_BEFORE = """
SELECT cardinality(p.patterns) = 0
       OR p.type = ANY (p.patterns)
       OR EXISTS (SELECT 1 FROM unnest(p.patterns) AS u(pattern)
                   WHERE u.pattern = '*'
                      OR (right(u.pattern, 2) = '.*' AND starts_with(p.type, left(u.pattern, -1))))
  FROM (SELECT %(patterns)s::text[] AS patterns, %(type)s::text AS type) p
"""


def rule(patterns: list[str], event_type: str) -> bool:
    """The rules as the docs state them."""
    if not patterns:
        return True
    return any(
        pattern in ("*", event_type)
        or (pattern.endswith(".*") and event_type.startswith(pattern[:-1]))
        for pattern in patterns
    )


# Text PostgreSQL can hold, weighted towards what the matcher and its JSON and regular
# expression plumbing treat specially.
_chars = st.one_of(
    st.sampled_from(list('ab.*.\\"[], ^$()?+|{}\n\x01é')),
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
)
_words = st.text(_chars, max_size=8)
_types = st.one_of(_words, st.lists(_words, min_size=1, max_size=4).map(".".join))


def _prefix_patterns(types: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(types).flatmap(
        lambda t: st.integers(0, max(t.count("."), 0)).map(
            lambda k: ".".join(t.split(".")[:k]) + ".*" if k else "*"
        )
    )


_patterns = st.one_of(_types, st.just("*"), _types.map(lambda t: t + ".*"))


def _sql(conn: psycopg.Connection[Any], patterns: list[str], event_type: str) -> tuple[bool, bool]:
    params = {"patterns": patterns, "type": event_type}
    now = conn.execute("SELECT courier_event_type_matches(%(patterns)s, %(type)s)", params)
    before = conn.execute(_BEFORE, params)
    (after_row,), (before_row,) = now.fetchall(), before.fetchall()
    return bool(after_row[0]), bool(before_row[0])


@SHARED_DB
@given(data=st.data(), event_type=_types)
@example(data=None, event_type="a.b.c")
def test_sql_agrees_with_the_rules_and_the_inline_sql(
    conn: psycopg.Connection[Any], data: Any, event_type: str
) -> None:
    if data is None:
        patterns = ["a.*"]
    else:
        near = data.draw(_prefix_patterns([event_type]))
        patterns = data.draw(st.lists(st.one_of(_patterns, st.just(near)), max_size=5))
    after, before = _sql(conn, patterns, event_type)
    assert after is rule(patterns, event_type)
    assert before is after


EDGES: list[tuple[list[str], str, bool]] = [
    ([], "order.created", True),
    (["*"], "order.created", True),
    (["order.created"], "order.created", True),
    (["order.*"], "order.created", True),
    (["order.*"], "order", False),
    (["order.*"], "orders.created", False),
    (["order.*"], "order.line.added", True),
    (["order.line.*"], "order.line.added", True),
    (["order.line.*"], "order.lines", False),
    (["order.created.*"], "order.created", False),
    (["order.created"], "order.created.v2", False),
    (["a\\.*"], "a\\.x", True),  # a backslash before the dot
    (['a", "b.*'], "b.x", False),  # an element that looks like a boundary in JSON
    (['x", "b.*'], 'x", "b.y', True),
    (["a.*"], "a.", True),
    (["a(.*"], "a(.z", True),
    (["a..*"], "a..b", True),
    ([".*"], ".x", True),
    (["*.created"], "order.created", False),
]


def test_edges(conn: psycopg.Connection[Any]) -> None:
    for patterns, event_type, expected in EDGES:
        assert rule(patterns, event_type) is expected, (patterns, event_type)
        assert _sql(conn, patterns, event_type) == (expected, expected), (patterns, event_type)


def test_the_planner_inlines_it(conn: psycopg.Connection[Any]) -> None:
    # A call the planner cannot inline shows up by name in the verbose plan, and would
    # run once per event and destination in the fan-out.
    plan = conn.execute(
        "EXPLAIN (VERBOSE) SELECT id FROM destinations"
        " WHERE courier_event_type_matches(event_types, 'order.created')"
    ).fetchall()
    text = "\n".join(row[0] for row in plan)
    assert "courier_event_type_matches" not in text
    assert "event_types" in text
