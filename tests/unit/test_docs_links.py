"""README.md, CHANGELOG.md and docs/*.md stand alone: every relative link resolves to a
file (and heading) inside the repository, none cites a document outside it, and the
reference lists every setting courier reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from courier.settings import Settings

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted([REPO / "README.md", REPO / "CHANGELOG.md", *(REPO / "docs").glob("*.md")])
# [text](target) and ![alt](target), and reference definitions `[label]: target`
INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
DEFINITION = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
# Documents that live beside the repository, not in it, cited as links or as text.
OUTSIDE = re.compile(r"\.\./shared|\bCONTRACT(?:\.md|\s+section)\b")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def links(text: str) -> list[str]:
    text = FENCE.sub("", text)  # code blocks hold shell and JSON, not links
    return INLINE.findall(text) + DEFINITION.findall(text)


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def broken(page: Path, target: str) -> str | None:
    """Why a link from `page` leaves the repository or points nowhere; None when fine."""
    if SCHEME.match(target):
        return None if target.startswith(("https://", "http://", "mailto:")) else "scheme"
    path_part, _, fragment = target.partition("#")
    if target.startswith("/"):
        return "absolute path"
    resolved = (page.parent / path_part).resolve() if path_part else page
    if not resolved.is_relative_to(REPO):
        return "outside the repository"
    if not resolved.exists():
        return "no such file"
    if fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
        return f"no heading #{fragment}"
    return None


def test_the_pages_are_found() -> None:
    names = {page.name for page in PAGES}
    assert {"README.md", "CHANGELOG.md", "reference.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_stays_inside_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    problems = [(t, why) for t in links(text) if (why := broken(page, t)) is not None]
    assert problems == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_page_cites_a_document_outside_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    cited = [m.group(0) for m in OUTSIDE.finditer(text)]
    assert cited == []


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("../shared/CONTRACT.md", "outside the repository"),
        ("../../etc/passwd", "outside the repository"),
        ("docs/missing.md", "no such file"),
        ("docs/reference.md#no-such-heading", "no heading #no-such-heading"),
        ("/etc/hosts", "absolute path"),
        ("file:///etc/hosts", "scheme"),
        ("docs/reference.md#settings", None),
        ("https://www.standardwebhooks.com/", None),
    ],
)
def test_the_checker_tells_inside_from_outside(target: str, why: str | None) -> None:
    assert broken(REPO / "README.md", target) == why


def test_the_checker_finds_links_and_ignores_code_blocks() -> None:
    text = "see [a](a.md) and ![i](img.png)\n\n[ref]: ../x.md\n\n```\n[b](b.md)\n```\n"
    assert sorted(links(text)) == ["../x.md", "a.md", "img.png"]


def test_the_reference_lists_every_setting() -> None:
    reference = (REPO / "docs" / "reference.md").read_text(encoding="utf-8")
    missing = [
        f"COURIER_{name.upper()}"
        for name in Settings.model_fields
        if f"`COURIER_{name.upper()}`" not in reference
    ]
    assert missing == []
