"""A private PgBouncer for ``orderdb bench``: transaction pooling in front of the bench server.

The Debian ``pgbouncer`` binary (``/usr/sbin/pgbouncer``, or ``pgbouncer`` on ``PATH``) is
started in the foreground with a generated ini in a private folder: it listens on 127.0.0.1 on a
free port, ``pool_mode = transaction``, ``auth_type = any`` (every client logs in to the server as
the bench DSN's user, with its password if it has one: the ini is mode 600), one pool of
``pool_size`` server connections per database. PgBouncer refuses to run as root: as root it is
started with ``-u nobody`` (the user the embedded server runs as, who can reach its socket).
Stopped (SIGTERM to its own pid) when the context ends.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

__all__ = ["PgBouncer", "PgBouncerError", "find_binary", "running"]

DEBIAN_BINARY = "/usr/sbin/pgbouncer"
RUN_AS_WHEN_ROOT = "nobody"


class PgBouncerError(Exception):
    """PgBouncer could not be started."""


@dataclass(frozen=True)
class PgBouncer:
    """A running private PgBouncer."""

    host: str
    port: int
    pool_size: int
    version: str
    binary: str

    def dsn(self, dbname: str, user: str) -> str:
        return f"host={self.host} port={self.port} dbname={dbname} user={user}"


def find_binary() -> str | None:
    """The pgbouncer executable, or None when it is not installed."""
    if os.access(DEBIAN_BINARY, os.X_OK):
        return DEBIAN_BINARY
    return shutil.which("pgbouncer")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ini_value(value: str) -> str:
    # a connection-string value in the [databases] section: quoted like libpq's
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _version(binary: str) -> str:
    proc = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    first = (proc.stdout or proc.stderr).splitlines()
    return first[0].strip() if first else "pgbouncer"


@contextlib.contextmanager
def running(server_dsn: str, *, pool_size: int, max_clients: int = 400) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction mode in front of the server of ``server_dsn``."""
    binary = find_binary()
    if binary is None:
        raise PgBouncerError(f"pgbouncer is not installed ({DEBIAN_BINARY} not found)")
    params = {k: v for k, v in conninfo_to_dict(server_dsn).items() if v}
    target = " ".join(
        f"{key}={_ini_value(str(params[key]))}"
        for key in ("host", "port", "user", "password")
        if key in params
    )
    folder = Path(tempfile.mkdtemp(prefix="orderdb-bench-pgbouncer-"))
    proc: subprocess.Popen[str] | None = None
    try:
        port = _free_port()
        ini = folder / "pgbouncer.ini"
        log = folder / "pgbouncer.log"
        ini.write_text(
            "[databases]\n"
            f"* = {target}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {port}\n"
            "unix_socket_dir =\n"
            "auth_type = any\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            f"max_client_conn = {max_clients}\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {log}\n"
            "log_connections = 0\n"
            "log_disconnections = 0\n"
        )
        ini.chmod(0o600)
        argv = [binary, "-q"]  # quiet: it logs to its logfile only (a pipe could fill up)
        if os.geteuid() == 0:
            user = pwd.getpwnam(RUN_AS_WHEN_ROOT)
            os.chown(folder, user.pw_uid, user.pw_gid)
            os.chown(ini, user.pw_uid, user.pw_gid)
            argv += ["-u", RUN_AS_WHEN_ROOT]
        argv.append(str(ini))
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=folder
        )
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                tail = log.read_text()[-1500:] if log.exists() else ""
                err = proc.stderr.read() if proc.stderr else ""
                raise PgBouncerError(f"pgbouncer exited ({proc.returncode}): {err}{tail}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise PgBouncerError("pgbouncer did not listen within 10 s")
            time.sleep(0.05)
        yield PgBouncer("127.0.0.1", port, pool_size, _version(binary), binary)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        shutil.rmtree(folder, ignore_errors=True)
