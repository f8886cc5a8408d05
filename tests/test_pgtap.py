"""Runs every pgTAP file (tests/pgtap/<function>/<behaviour>.test.sql) with pg_prove, one pytest
test per file, against a database cloned from the migrated template (pgTAP installed). A file's
TAP stream holds nothing but TAP: setup statements print no rows. The same files on a database
full of demo data, as a superuser and as the owner: tests/test_pgtap_real_databases.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.devtools import PGTAP_DIR, pg_prove_command, pgtap_files, tap_noise

from .conftest import PgServer

FILES = pgtap_files()


def test_pgtap_suite_is_not_empty() -> None:
    assert FILES, f"no pgTAP files under {PGTAP_DIR}"


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PGTAP_DIR)) for p in FILES])
def test_pgtap_file(path: Path, db_dsn: str, pg_server: PgServer) -> None:
    text = path.read_text()
    assert "SELECT plan(" in text or "select plan(" in text, f"{path.name} states no plan()"
    psql = None
    if pg_server.kind == "embedded":
        from orderdb.server import embedded

        psql = str(embedded.bin_path("psql"))
    result = subprocess.run(
        pg_prove_command(db_dsn, [path], psql, verbose=True),
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "All tests successful" in output, output
    noise = tap_noise(result.stdout)
    assert noise == [], (
        "setup rows in the TAP stream (print nothing: SELECT FROM f(...); docs/development.md):\n"
        + "\n".join(noise)
    )
