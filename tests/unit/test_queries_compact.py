"""Loaded statements drop their comment lines and indentation, and change nothing else."""

from __future__ import annotations

from importlib import resources

from hypothesis import given
from hypothesis import strategies as st
from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH

from courier.store.queries import load_queries, parse_blocks, query

# The statements run per request or per claim whose parsed form psycopg should cache.
HOT = ("enqueue_events", "complete_attempts", "api_key_for_auth")


def test_comment_lines_and_indentation_go() -> None:
    text = "-- name: one\n-- why it is so\nSELECT a,\n       b -- trailing stays\n  FROM t;\n"
    assert parse_blocks(text) == {"one": "SELECT a,\nb -- trailing stays\nFROM t"}


def test_the_hot_statements_fit_psycopgs_parse_cache() -> None:
    for name in HOT:
        assert len(query(name).encode()) <= MAX_CACHED_STATEMENT_LENGTH, name


def test_no_string_literal_spans_lines_in_the_sql_files() -> None:
    """What _compact relies on: a line's quotes pair up, so no literal loses its spaces."""
    folder = resources.files("courier.store") / "sql"
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        for number, line in enumerate(entry.read_text("utf-8").splitlines(), 1):
            if line.lstrip().startswith("--"):
                continue
            assert line.count("'") % 2 == 0, f"{entry.name}:{number}: {line}"


def test_every_statement_is_loaded_compact() -> None:
    for name, statement in load_queries().items():
        for line in statement.splitlines():
            assert line == line.strip() and line, name
            assert not line.startswith("--"), name


@given(
    st.lists(
        st.text(alphabet="abc ,()=%s_'\t", min_size=1, max_size=30).filter(
            lambda s: s.strip() and not s.strip().startswith("--")
        ),
        min_size=1,
        max_size=8,
    )
)
def test_the_code_lines_survive_in_order(lines: list[str]) -> None:
    text = "-- name: q\n" + "\n-- a comment\n".join(f"   {line}" for line in lines)
    assert parse_blocks(text)["q"].split("\n") == [line.strip() for line in lines]
