"""Every SQL statement courier runs, loaded from the named blocks in `store/sql/*.sql`.

A block starts with `-- name: <name>` and runs to the next such line. Runtime code
refers to statements by name (`query("claim_deliveries")`), never by ad-hoc strings.
The comments stay in the files: a loaded statement has neither comment lines nor
indentation (see _compact).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import LiteralString

_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse_blocks(text: str, source: str = "<sql>") -> dict[str, str]:
    """Split a file of named blocks into {name: statement}; a repeated name is an error."""
    blocks: dict[str, str] = {}
    matches = list(_NAME_LINE.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        body = text[match.end() : end].strip()
        name = match.group(1)
        if name in blocks:
            raise ValueError(f"{source}: query {name!r} is defined twice")
        blocks[name] = _compact(body.rstrip(";").strip())
    return blocks


def _compact(statement: str) -> str:
    """The statement without its comment lines and indentation.

    psycopg parses a statement's placeholders once and caches the result only for a text
    of at most 4,096 bytes (psycopg._queries.MAX_CACHED_STATEMENT_LENGTH); the comments
    would put the enqueue statement past that, to be parsed again on every call. No
    string literal spans lines in these files (a unit test holds them to it), so no
    literal changes.
    """
    lines = (line.strip() for line in statement.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("--"))


@cache
def load_queries() -> dict[str, LiteralString]:
    queries: dict[str, LiteralString] = {}
    folder = resources.files("courier.store") / "sql"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, body in parse_blocks(entry.read_text("utf-8"), entry.name).items():
            if name in queries:
                raise ValueError(f"{entry.name}: query {name!r} is defined in another file too")
            # These come from files inside the package, never from user input.
            queries[name] = body
    return queries


def query(name: str) -> LiteralString:
    try:
        return load_queries()[name]
    except KeyError:
        raise KeyError(f"no SQL block named {name!r} in courier/store/sql") from None
