"""How a migration file is read: the no-transaction marker, its statements, and the
indexes it builds concurrently."""

from __future__ import annotations

from courier.store.migrate import Migration, concurrent_indexes, load_migrations


def test_every_shipped_migration_but_the_partition_conversion_runs_in_a_transaction() -> None:
    """A file run outside a transaction must be safe to run again after failing part-way:
    024's steps each check what is already done (its rerun is tested against a database
    where it stopped half-way, tests/integration/operations/test_history_partitions.py)."""
    outside = [m.label for m in load_migrations() if not m.transactional]
    assert outside == ["024_history_partitions"]


def test_the_marker_must_be_the_first_line() -> None:
    marked = Migration(1, "x", "-- courier: no-transaction\nCREATE INDEX CONCURRENTLY a ON b (c);")
    later = Migration(2, "y", "SELECT 1;\n-- courier: no-transaction\n")
    assert not marked.transactional
    assert later.transactional


def test_statements_are_split_without_breaking_quoted_bodies() -> None:
    sql = (
        "-- courier: no-transaction\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_i ON a (x);\n"
        "-- a comment on its own\n"
        "CREATE FUNCTION f() RETURNS text AS $$ SELECT 'x;y'; $$ LANGUAGE sql;\n"
    )
    statements = Migration(3, "z", sql).statements()
    assert len(statements) == 2
    assert statements[0].rstrip().endswith("ON a (x);")
    assert "'x;y'" in statements[1]


def test_concurrent_index_names_are_found_quoted_or_not() -> None:
    sql = (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS plain_idx ON t (a);\n"
        'create unique index concurrently "Quoted Idx" on t (b);\n'
        "CREATE INDEX not_concurrent ON t (c);\n"
    )
    assert concurrent_indexes(sql) == ["plain_idx", "Quoted Idx"]
