"""Which server a command talks to: --dsn, else ORDERDB_DSN, else libpq's environment when PGHOST,
PGSERVICE or PGDATABASE is set, else the embedded server — and a command that falls back to the
embedded server says so on stderr. Each case runs the real `orderdb` command in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from orderdb.server import embedded

# what libpq reads from the environment; cleared so that each case sets exactly its own
_LIBPQ_VARIABLES = (
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "ORDERDB_DSN",
)


def _orderdb(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in _LIBPQ_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "orderdb", *args],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _libpq_env(dsn: str) -> dict[str, str]:
    params = conninfo_to_dict(dsn)
    names = {
        "host": "PGHOST",
        "port": "PGPORT",
        "user": "PGUSER",
        "dbname": "PGDATABASE",
        "password": "PGPASSWORD",
    }
    return {names[k]: str(v) for k, v in params.items() if k in names and v is not None}


def _on_hand(dsn: str, warehouse: int, sku: str) -> int | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT on_hand FROM orderdb.inventory WHERE warehouse_id = %s AND sku = %s",
            (warehouse, sku),
        ).fetchone()
    return None if row is None else int(row[0])


def test_pg_environment_chooses_the_server(db_dsn: str, tmp_path: Path) -> None:
    # an empty ORDERDB_HOME: if the command fell back to the embedded server, it would start one
    # there (and say so) instead of writing to the database PGHOST/PGDATABASE name
    env = _libpq_env(db_dsn) | {"ORDERDB_HOME": str(tmp_path / "embedded")}
    result = _orderdb(env, "stock", "receive", "4401", "PGENV-1", "7")
    assert result.returncode == 0, result.stderr
    assert "embedded" not in result.stderr
    assert _on_hand(db_dsn, 4401, "PGENV-1") == 7
    assert not (tmp_path / "embedded").exists()

    status = _orderdb(env, "migrate", "--status")
    assert status.returncode == 0, status.stderr
    assert "embedded" not in status.stderr


def test_pg_service_file_chooses_the_server(db_dsn: str, tmp_path: Path) -> None:
    params = {k: v for k, v in conninfo_to_dict(db_dsn).items() if v is not None}
    service_file = tmp_path / "pg_service.conf"
    service_file.write_text("[orderdb-test]\n" + "".join(f"{k}={v}\n" for k, v in params.items()))
    env = {
        "PGSERVICE": "orderdb-test",
        "PGSERVICEFILE": str(service_file),
        "ORDERDB_HOME": str(tmp_path / "embedded"),
    }
    result = _orderdb(env, "stock", "receive", "4402", "PGSVC-1", "3")
    assert result.returncode == 0, result.stderr
    assert _on_hand(db_dsn, 4402, "PGSVC-1") == 3
    migrated = _orderdb(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert not (tmp_path / "embedded").exists()


def test_orderdb_dsn_wins_over_the_pg_environment(db_dsn: str, tmp_path: Path) -> None:
    env = {
        "ORDERDB_DSN": db_dsn,
        "PGHOST": "127.0.0.1",
        "PGPORT": "1",  # nothing listens there: used, the command would fail
        "ORDERDB_HOME": str(tmp_path / "embedded"),
    }
    result = _orderdb(env, "stock", "receive", "4403", "PGENV-2", "2")
    assert result.returncode == 0, result.stderr
    assert _on_hand(db_dsn, 4403, "PGENV-2") == 2


def test_the_embedded_fallback_is_said_on_stderr() -> None:
    # a folder the embedded server's user can reach (as root it runs as nobody)
    folder = Path(tempfile.mkdtemp(prefix="orderdb-test-"))
    folder.chmod(0o755)  # our own test folder; mkdtemp makes it 700
    home = folder / "embedded"
    try:
        result = _orderdb({"ORDERDB_HOME": str(home)}, "migrate", "--status")
        assert result.returncode == 0, result.stderr
        assert "embedded PostgreSQL server" in result.stderr
        assert str(home) in result.stderr
        assert "embedded PostgreSQL server" not in result.stdout  # the notice is not output
    finally:
        embedded.stop(home)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(
    "env",
    [{"PGHOST": "127.0.0.1", "PGPORT": "1"}, {"PGDATABASE": "orderdb_no_such_database"}],
    ids=["PGHOST", "PGDATABASE"],
)
def test_a_pg_variable_never_falls_back_to_embedded(env: dict[str, str], tmp_path: Path) -> None:
    # the libpq environment names a server or database that does not answer: the command fails,
    # it does not quietly migrate (and report success on) a local embedded database instead
    result = _orderdb(env | {"ORDERDB_HOME": str(tmp_path / "embedded")}, "migrate")
    assert result.returncode != 0
    assert "embedded" not in result.stderr
    assert not (tmp_path / "embedded").exists()
