"""docs/security.md names the test that guards each defect class: every test it names
must exist, so the page cannot drift from the suite."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAMED = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


def test_every_test_the_security_page_names_exists() -> None:
    page = (ROOT / "docs" / "security.md").read_text()
    named = NAMED.findall(page)
    assert len(named) >= 15, "the defect table names its guards"
    for path, name in named:
        source = ROOT / path
        assert source.is_file(), f"docs/security.md names a missing file: {path}"
        if name:
            assert re.search(rf"def {name}\b", source.read_text()), (
                f"docs/security.md names a missing test: {path}::{name}"
            )
