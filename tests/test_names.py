"""One spelling: "fulfillment" (the contract's view orderdb_ops.fulfillment_kpis), in file names,
code, SQL, metrics and docs. The one exception is migration 0004_fulfilment: a migration's file
name is its yoyo id, recorded in every database it was applied to (docs/development.md)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("orderdb", "sql", "docs")
OLD = re.compile("fulfil" + "ment", re.IGNORECASE)  # split: this file is not exempt from itself
MIGRATION_ID = "0004_" + "fulfil" + "ment"


def _files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "pyproject.toml"]
    for top in CHECKED:
        files += [
            p
            for p in (ROOT / top).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".pyc", ".png"}
        ]
    return files


def test_one_spelling_in_file_names() -> None:
    names = [str(p.relative_to(ROOT)) for p in _files() if OLD.search(p.name)]
    assert names == []
    migrations = [p.name for p in (ROOT / "migrations").glob("*.sql") if OLD.search(p.name)]
    assert sorted(migrations) == [f"{MIGRATION_ID}.rollback.sql", f"{MIGRATION_ID}.sql"]


def test_one_spelling_in_code_sql_and_docs() -> None:
    found = []
    for path in _files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OLD.search(line.replace(MIGRATION_ID, "")):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
