"""The store is the one seam to PostgreSQL: no module outside courier.store runs a
statement, names a SQL block, or imports what runs them."""

from __future__ import annotations

import ast
from pathlib import Path

import courier

SRC = Path(courier.__file__).parent
RUNNERS = {"query", "fetch_all", "fetch_one", "fetch_one_sync", "execute", "load_queries"}
CALLS = {"execute", "executemany"}


def _outside_store() -> list[Path]:
    return sorted(path for path in SRC.rglob("*.py") if path.relative_to(SRC).parts[0] != "store")


def _breaches(path: Path, root: Path = SRC) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module in (
            "courier.store.queries",
            "courier.store.rows",
        ):
            found += [f"imports {a.name}" for a in node.names if a.name in RUNNERS]
        elif isinstance(node, ast.Import):
            found += [f"imports {a.name}" for a in node.names if a.name == "courier.store.queries"]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CALLS
        ):
            found.append(f"calls .{node.func.attr}() on line {node.lineno}")
    return [f"{path.relative_to(root)}: {what}" for what in found]


def test_no_module_outside_the_store_runs_sql() -> None:
    assert [breach for path in _outside_store() for breach in _breaches(path)] == []


def test_the_check_sees_a_statement_run_outside_the_store(tmp_path: Path) -> None:
    module = tmp_path / "sneaky.py"
    module.write_text(
        "from courier.store.queries import query\n"
        "def f(conn):\n"
        "    conn.execute(query('create_tenant'), {})\n"
    )
    assert [b.split(": ", 1)[1] for b in _breaches(module, tmp_path)] == [
        "imports query",
        "calls .execute() on line 3",
    ]


def test_the_check_walks_every_package_but_the_store() -> None:
    walked = {path.relative_to(SRC).parts[0] for path in _outside_store()}
    packages = {path.parent.name for path in SRC.glob("*/__init__.py")}
    assert walked >= packages - {"store"}
    assert "store" not in walked
