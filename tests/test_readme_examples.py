"""README.md's "Use it" examples run word for word, in the order a reader runs them, on one new
migrated database: the SQL block (through psql's statements, one after the other), then each
Python block as a script whose connection comes from PG* variables (Client.connect's rules)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]


def _use_it_blocks() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Use it", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(sql|python)\n(.*?)```", section, flags=re.S)


def test_readme_use_it_examples_run_word_for_word(fresh_dsn: str, tmp_path: Path) -> None:
    blocks = _use_it_blocks()
    assert [lang for lang, _ in blocks] == ["sql", "python", "python"]
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        for statement in blocks[0][1].split(";\n"):
            if statement.strip():
                conn.execute(statement.encode())
    params = psycopg.conninfo.conninfo_to_dict(fresh_dsn)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "ORDERDB_"))}
    for key, var in (
        ("host", "PGHOST"),
        ("port", "PGPORT"),
        ("user", "PGUSER"),
        ("dbname", "PGDATABASE"),
        ("password", "PGPASSWORD"),
    ):
        if params.get(key):
            env[var] = str(params[key])
    for n, (_, code) in enumerate(blocks[1:], 1):
        script = tmp_path / f"example{n}.py"
        script.write_text(code)
        done = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, (n, done.stderr[-2000:])
    with psycopg.connect(fresh_dsn) as conn:
        statuses = conn.execute(
            "SELECT status, count(*) FROM orderdb.orders WHERE customer_id = 7"
            " GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert statuses == [("confirmed", 2), ("pending", 1)]
