"""The repository stands on its own: every relative link in README.md and docs/ resolves to a file
in the repository, nothing points outside it, and the design, the contract and the conventions are
among the documents."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_links_resolve_inside_the_repository() -> None:
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same page
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.is_relative_to(REPO) or not path.exists():
                broken.append(f"{doc.relative_to(REPO)} -> {target}")
    assert broken == []


def test_the_design_the_contract_and_the_conventions_are_here() -> None:
    readme = (REPO / "README.md").read_text()
    for name in ("design.md", "contract.md", "conventions.md"):
        assert (REPO / "docs" / name).is_file(), name
        assert f"docs/{name}" in readme, name


def test_no_document_names_a_file_outside_the_repository() -> None:
    outside = re.compile(r"\.\./\.\.|\.\./shared|\b(API|DESIGN|STYLE)\.md\b")
    hits = [
        f"{doc.relative_to(REPO)}: {line.strip()}"
        for doc in DOCS
        for line in doc.read_text().splitlines()
        if outside.search(line)
    ]
    assert hits == []
