"""The Python side: DSN passwords are never printed (orderdb.config.redact masks them in every
DSN form; the CLI's output is checked in tests/test_migrate.py), and ruff's bandit rules, which
refuse SQL built by string formatting (S608) among others, stay on."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from orderdb.config import redact

SECRET = "pa55-w0rd-secret"


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://shop_api:{SECRET}@db.example.org:5432/shop",
        f"postgres://shop_api:{SECRET}@db.example.org/shop?sslmode=require",
        f"postgresql://db.example.org/shop?user=shop_api&password={SECRET}",
        f"host=db.example.org user=shop_api password={SECRET} dbname=shop",
        f"host=db.example.org user=shop_api password='{SECRET} with spaces' dbname=shop",
        f"postgresql://shop_api:{SECRET}@h1:5432,h2:5433/shop?target_session_attrs=read-write",
    ],
)
def test_redact_masks_the_password(dsn: str) -> None:
    shown = redact(dsn)
    assert SECRET not in shown
    assert "***" in shown
    assert "shop_api" in shown and "shop" in shown  # still useful to read


def test_redact_keeps_a_dsn_without_password() -> None:
    shown = redact("postgresql://postgres@127.0.0.1:5432/orderdb")
    assert "***" not in shown
    assert "127.0.0.1" in shown and "orderdb" in shown


def test_redact_never_echoes_an_unparsable_dsn() -> None:
    shown = redact(f"postgresql://u:{SECRET}@host:notaport:/x?=&&")
    assert SECRET not in shown
    shown = redact(f"host=x password={SECRET} 'unterminated")
    assert SECRET not in shown


def test_bandit_rules_stay_on_and_pass() -> None:
    repo = Path(__file__).resolve().parent.parent
    config = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "S" in config["select"]
    ignored = set(config.get("ignore", []))
    assert not ignored & {"S608", "S105", "S106", "S107"}, ignored
    per_file = config.get("per-file-ignores", {})
    for pattern, rules in per_file.items():
        if not pattern.startswith("tests"):
            assert "S608" not in rules and "S" not in rules, (pattern, rules)
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "S608,S105,S106,S107", "orderdb"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
