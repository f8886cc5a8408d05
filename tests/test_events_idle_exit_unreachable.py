"""`--idle-exit` measures idleness of a database that was read: `orderdb events tail` and
`orderdb events work` whose database cannot be reached exit 75 (retry later), as every command
does, not 0 ("nothing more to do") after the idle time."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "args",
    [
        ("events", "tail", "--consumer", "idle-unreachable", "--idle-exit", "1"),
        (
            "events",
            "work",
            "--group",
            "idle-unreachable",
            "--handler",
            "json:dumps",
            "--idle-exit",
            "1",
        ),
    ],
)
def test_an_unreachable_database_is_not_idle(args: tuple[str, ...]) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres?connect_timeout=2"
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "orderdb", "--dsn", dsn, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 75, (out.returncode, out.stderr)
    assert time.monotonic() - started < 30
    assert "Traceback" not in out.stderr
    assert "Connection refused" in out.stderr or "is the server running" in out.stderr.lower()
