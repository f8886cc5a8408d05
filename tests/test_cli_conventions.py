"""The conventions every `orderdb` command follows (docs/operations.md, "Command line conventions"):

- every option can be set from the environment: ORDERDB_DSN for --dsn, ORDERDB_<COMMAND>_<OPTION>
  for the others, and --help shows the variable;
- --json prints exactly one JSON document on stdout (JSON lines only for the commands that run
  until stopped: events tail);
- --log-format json makes the long-running commands log JSON lines on stderr (uvicorn's too);
- distinct exit statuses: 2 bad input, 3 not found, 4 conflict, 5 forbidden, 75 retry later;
- no secret is ever a command-line argument.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import psycopg
import pytest
from click.testing import CliRunner, Result

from orderdb.cli import base as cli_base
from orderdb.cli import main
from orderdb.cli.base import apply_env_conventions, exit_status, option_envvar
from orderdb.client import Client
from orderdb.errors import NotFoundError, OrderDBError, TransientError

WH = 9_310_447
DOWN_DSN = "postgresql://postgres@127.0.0.1:1/orderdb?connect_timeout=5"
#: options that keep the name they had before the convention (documented)
NAMED_ELSEWHERE = {"ORDERDB_DSN", "ORDERDB_OPS_DSN", "ORDERDB_CARRIERS_CONFIG"}


def commands() -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command of the tree (groups included) with its path."""
    apply_env_conventions(main)

    def walk(cmd: click.Command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        yield path, cmd
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                yield from walk(sub, (*path, name))

    yield from walk(main, ())


def options(cmd: click.Command) -> list[click.Option]:
    return [
        p for p in cmd.params if isinstance(p, click.Option) and not p.is_eager and p.expose_value
    ]


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, input=input)


# -- environment variables ---------------------------------------------------------------------


def test_every_option_shows_its_environment_variable_in_help() -> None:
    seen = 0
    for path, cmd in commands():
        help_text = " ".join(run(*path, "--help").output.split())
        for opt in options(cmd):
            envvar = opt.envvar
            assert isinstance(envvar, str), (path, opt.opts)
            expected = option_envvar(path, opt)
            assert envvar == expected or envvar in NAMED_ELSEWHERE, (path, opt.opts, envvar)
            assert f"env var: {envvar}" in help_text, (path, opt.opts, help_text)
            seen += 1
    assert seen > 80
    # the naming rule, on examples the documentation gives
    by_path = dict(commands())
    tail = {o.opts[0]: o.envvar for o in options(by_path[("events", "tail")])}
    assert tail["--consumer"] == "ORDERDB_EVENTS_TAIL_CONSUMER"
    assert tail["--dsn"] == "ORDERDB_DSN"
    relay = {o.opts[-1]: o.envvar for o in options(by_path[("relay",)])}
    assert relay["--no-purge"] == "ORDERDB_RELAY_NO_PURGE"
    assert relay["--verbose"] == "ORDERDB_RELAY_VERBOSE"


def test_options_are_read_from_the_environment(db_dsn: str) -> None:
    Client.connect(db_dsn, max_size=1).receive_stock(WH, "ENV-A", 5)
    Client.connect(db_dsn, max_size=1).receive_stock(WH, "ENV-C", 5)
    # a flag, the DSN, a multiple option (split on spaces) and a number
    shown = run(
        "stock",
        "show",
        str(WH),
        "ENV-A",
        env={"ORDERDB_DSN": db_dsn, "ORDERDB_STOCK_SHOW_JSON": "1"},
    )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["on_hand"] == 5
    created = run(
        "order",
        "create",
        env={
            "ORDERDB_DSN": db_dsn,
            "ORDERDB_ORDER_CREATE_CUSTOMER": "31",
            "ORDERDB_ORDER_CREATE_WAREHOUSE": str(WH),
            "ORDERDB_ORDER_CREATE_ITEM": "ENV-A:1 ENV-C:2",
            "ORDERDB_ORDER_CREATE_JSON": "true",
        },
    )
    assert created.exit_code == 0, created.output
    order = json.loads(
        run(
            "--dsn", db_dsn, "order", "show", str(json.loads(created.stdout)["order_id"]), "--json"
        ).stdout
    )
    assert sorted(i["quantity"] for i in order["items"]) == [1, 2]
    # a value from the environment is checked like one from the command line
    bad = run("relay", env={"ORDERDB_DSN": DOWN_DSN, "ORDERDB_RELAY_RETENTION_HOURS": "-1"})
    assert bad.exit_code == 2 and "'--retention-hours'" in bad.output, bad.output


def test_orderdb_dsn_never_overrides_a_dsn_on_the_command_line(db_dsn: str) -> None:
    Client.connect(db_dsn, max_size=1).receive_stock(WH, "ENV-B", 2)
    env = {"ORDERDB_DSN": DOWN_DSN}
    for args in (
        ("--dsn", db_dsn, "stock", "show", str(WH), "ENV-B", "--json"),
        ("stock", "show", str(WH), "ENV-B", "--json", "--dsn", db_dsn),
    ):
        out = run(*args, env=env)
        assert out.exit_code == 0, (args, out.output)
        assert json.loads(out.stdout)["on_hand"] == 2
    # the group's --dsn beats ORDERDB_DSN, a subcommand's --dsn beats the group's
    out = run("--dsn", DOWN_DSN, "stock", "show", str(WH), "ENV-B", "--dsn", db_dsn)
    assert out.exit_code == 0, out.output


# -- --json: one document ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_db(db_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A few rows for every --json command: stock, an order in two warehouses, a webhook."""
    client = Client.connect(db_dsn, max_size=1)
    client.receive_stock(WH, "JS-A", 10)
    client.receive_stock(WH + 1, "JS-A", 10)
    client.set_warehouse_location(WH, 0.0, 0.0)
    order = client.create_order(32, WH, [{"sku": "JS-A", "quantity": 1}])
    moved = client.create_order(32, WH, [{"sku": "JS-A", "quantity": 1}])
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT orderdb.create_webhook_subscription('http://127.0.0.1:9/hook', NULL, NULL,"
            " 3, 'conventions')"
        )
    events = tmp_path_factory.mktemp("ingest") / "events.jsonl"
    events.write_text(
        json.dumps(
            {
                "carrier": "SF",
                "tracking_number": "JS-NONE",
                "event_time": "2026-05-01T10:00:00Z",
                "carrier_status": "31",
                "event_id": "js-1",
            }
        )
        + "\n"
    )
    orders = events.parent / "orders.jsonl"
    orders.write_text(
        json.dumps(
            {
                "customer_id": 34,
                "warehouse_id": WH,
                "idempotency_key": "conventions-1",
                "items": [{"sku": "JS-A", "quantity": 1}],
            }
        )
        + "\n"
    )
    return {"order": order, "moved": moved, "events": str(events), "orders": str(orders)}


#: each --json command with arguments that succeed on fixture_db ({names} come from it);
#: `orderdb bench --json` takes minutes: tests/test_bench.py runs it and reads its JSON
JSON_SAMPLES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("db", "status"): (),
    ("stock", "receive"): (str(WH), "JS-A", "1"),
    ("stock", "show"): (str(WH), "JS-A"),
    ("order", "create"): ("--customer", "33", "--warehouse", str(WH), "--item", "JS-A:1"),
    ("order", "show"): ("{order}",),
    ("order", "transition"): ("{order}", "confirmed", "--expected-version", "{version}"),
    ("order", "history"): ("{order}",),
    ("order", "reallocate"): (
        "{moved}",
        "--to",
        str(WH + 1),
        "--expected-version",
        "{moved_version}",
    ),
    ("track",): ("{order}",),
    ("ingest", "tracking"): ("{events}",),
    ("ingest", "orders"): ("{orders}",),
    ("routes", "plan"): (str(WH),),
    ("poll-carriers",): ("--once", "--carrier", "NO-SUCH-CARRIER"),
    ("webhooks", "list"): (),
    ("integrations", "list"): (),
    ("integrations", "carriers"): (),
    ("monitor",): ("--once",),
    ("sla-check",): (),
    ("maintain",): ("--dry-run",),
    ("events", "bench"): ("--seconds", "1", "--rate", "10", "--clients", "1", "--rounds", "1"),
    ("warehouses", "set-wms"): (str(WH + 1), "sim"),
    ("warehouses", "list"): (),
    ("warehouses", "connectors"): (),
    ("wms-dispatch",): ("--once",),
    ("wms-dispatch", "dead"): (),
}
#: `orderdb wms-dispatch retry --json` needs a dead command: tests/test_wms_queue.py runs it;
#: `orderdb cluster status --json` and `cluster sync-reference --json` need a cluster's proxy:
#: tests/test_cluster.py and tests/test_cluster_configuration.py run them
NOT_RUN_HERE = {
    ("bench",),
    ("wms-dispatch", "retry"),
    ("cluster", "status"),
    ("cluster", "sync-reference"),
}


def json_commands() -> list[tuple[str, ...]]:
    return [
        path
        for path, cmd in commands()
        if any("--json" in o.opts for o in options(cmd)) and path not in NOT_RUN_HERE
    ]


def test_every_json_command_has_a_sample() -> None:
    missing = set(json_commands()) - set(JSON_SAMPLES)
    assert not missing, f"add these --json commands to JSON_SAMPLES: {sorted(missing)}"


@pytest.mark.parametrize("path", sorted(JSON_SAMPLES))
def test_json_prints_exactly_one_document(
    path: tuple[str, ...], db_dsn: str, fixture_db: dict[str, Any]
) -> None:
    values = {
        "order": str(fixture_db["order"].order_id),
        "version": str(fixture_db["order"].version),
        "moved": str(fixture_db["moved"].order_id),
        "moved_version": str(fixture_db["moved"].version),
        "events": fixture_db["events"],
        "orders": fixture_db["orders"],
    }
    args = [a.format(**values) for a in JSON_SAMPLES[path]]
    out = CliRunner().invoke(main, ["--dsn", db_dsn, *path, *args, "--json"])
    # db status exits 3 when the embedded server is not running: its JSON says so
    assert out.exit_code in ((0, 3) if path == ("db", "status") else (0,)), out.output
    assert out.stdout.strip(), "nothing on stdout"
    json.loads(out.stdout)  # the whole of stdout is one JSON document


def test_events_tail_prints_json_lines(db_dsn: str, fixture_db: dict[str, Any]) -> None:
    out = run("--dsn", db_dsn, "events", "tail", "--consumer", "conventions", "--idle-exit", "0.5")
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines, "the fixture's orders made events"
    for line in lines:
        assert isinstance(json.loads(line), dict)


# -- --log-format json ---------------------------------------------------------------------------


def _start(args: list[str], dsn: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ORDERDB_DSN": dsn, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "orderdb", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> tuple[str, list[dict[str, Any]]]:
    proc.send_signal(signal.SIGTERM)
    try:
        stdout, stderr = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    records = []
    for line in stderr.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line on stderr: {line!r}\n{stderr}")
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    return stdout, records


def test_relay_logs_json_lines(db_dsn: str) -> None:
    proc = _start(["relay", "--log-format", "json", "--consumer", "conventions-relay"], db_dsn)
    time.sleep(3)
    assert proc.poll() is None, proc.communicate()
    _stdout, records = _stop(proc)
    messages = [r["message"] for r in records]
    assert any(m.startswith("relay running") for m in messages), records
    stopped = [r for r in records if r["message"].startswith("relay stopped")]
    assert stopped and stopped[0]["logger"] == "orderdb.cli", records
    assert isinstance(stopped[0]["events"], int) and stopped[0]["level"] == "info"


def test_ingest_serve_logs_json_lines_uvicorn_included(db_dsn: str) -> None:
    proc = _start(["ingest", "serve", "--log-format", "json", "--port", "0"], db_dsn)
    port = None
    deadline = time.monotonic() + 30
    assert proc.stderr is not None
    seen: list[str] = []
    while port is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(r"running on http://127\.0\.0\.1:(\d+)", json.loads(line)["message"])
        if found:
            port = int(found.group(1))
    assert port, seen
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
        assert resp.status == 200
    time.sleep(0.5)
    _stdout, records = _stop(proc)
    records = [json.loads(line) for line in seen] + records
    loggers = {r["logger"] for r in records}
    assert {"orderdb.cli", "uvicorn.error", "uvicorn.access"} <= loggers, records
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert any("/healthz" in r["message"] for r in access), access


def test_web_logs_json_lines(db_dsn: str) -> None:
    proc = _start(["web", "--log-format", "json", "--port", "0"], db_dsn)
    time.sleep(4)
    assert proc.poll() is None, proc.communicate()
    stdout, records = _stop(proc)
    started = [r for r in records if r["message"].startswith("orderdb web on")]
    assert started and started[0]["url"].startswith("http://127.0.0.1:"), records
    assert stdout == ""


def test_the_long_running_commands_take_log_format() -> None:
    by_path = dict(commands())
    for path in (
        ("relay",),
        ("events", "tail"),
        ("events", "work"),
        ("ingest", "serve"),
        ("web",),
        ("poll-carriers",),
        ("exporter",),
        ("wms-dispatch",),
    ):
        names = [o.opts for o in options(by_path[path])]
        assert ["--log-format"] in names, path


# -- exit statuses -------------------------------------------------------------------------------


def _op_error(text: str) -> psycopg.OperationalError:
    return psycopg.OperationalError(text)


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (NotFoundError("x"), 3),
        (OrderDBError("x", sqlstate="22023"), 2),
        (OrderDBError("x", sqlstate="22P02"), 2),
        (OrderDBError("x", sqlstate="OD001"), 4),
        (OrderDBError("x", sqlstate="OD002"), 4),
        (OrderDBError("x", sqlstate="OD003"), 4),
        (OrderDBError("x", sqlstate="OD006"), 4),
        (OrderDBError("x", sqlstate="OD005"), 5),
        (OrderDBError("x", sqlstate="42501"), 5),
        (TransientError("x", sqlstate="40001"), 75),
        (TransientError("lost"), 75),
        (OrderDBError("x", sqlstate="55P03"), 75),
        (OrderDBError("x", sqlstate="53300"), 75),
        (OrderDBError("x", sqlstate="XX000"), 1),
        (
            _op_error(
                'connection failed: connection to server at "h", port 1 failed: Connection refused'
            ),
            75,
        ),
        (
            _op_error("connection failed: ... failed: FATAL:  the database system is starting up"),
            75,
        ),
        (_op_error('connection failed: ... failed: FATAL:  database "nodb" does not exist'), 1),
        (_op_error("failed to resolve host 'nohost.invalid': Name or service not known"), 1),
    ],
)
def test_exit_status_mapping(exc: BaseException, status: int) -> None:
    assert exit_status(exc) == status


def test_exit_statuses_of_real_failures(db_dsn: str) -> None:
    assert run("--dsn", db_dsn, "integrations", "remove", "no-such-one").exit_code == 3
    assert run("--dsn", DOWN_DSN, "order", "show", "1").exit_code == 75
    # a cluster's proxy that cannot be reached is no different (not only a shard behind it)
    down_proxy = run("cluster", "status", "--dsn", DOWN_DSN)
    assert down_proxy.exit_code == 75, down_proxy.output
    assert "Connection refused" in down_proxy.stderr and "Traceback" not in down_proxy.output
    nodb = re.sub(r"dbname=\S+|/[^/?]+(\?|$)", "/orderdb_no_such_database\\1", db_dsn, count=1)
    missing_db = run("--dsn", nodb, "order", "show", "1")
    assert missing_db.exit_code == 1, missing_db.output
    unknown_host = run(
        "--dsn", "postgresql://postgres@nohost.invalid/x?connect_timeout=5", "order", "show", "1"
    )
    assert unknown_host.exit_code == 1, unknown_host.output
    assert run("--dsn", db_dsn, "order", "show", "1", "--no-such-option").exit_code == 2


# -- secrets -------------------------------------------------------------------------------------


def test_no_option_takes_a_secret_as_its_value() -> None:
    for path, cmd in commands():
        for opt in options(cmd):
            name = opt.opts[-1]
            if re.search(r"secret|password|passwd|token|api-key", name):
                assert opt.is_flag or name.endswith("-file"), (path, name)


def _whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _webhook_secret(dsn: str, subscription_id: int) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT secret FROM orderdb.webhook_subscriptions WHERE subscription_id = %s",
            (subscription_id,),
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_webhook_secret_from_a_file_stdin_the_environment_or_a_prompt(
    db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "http://127.0.0.1:9/secret-test"
    # --secret is gone: a secret on the command line is refused
    gone = run("--dsn", db_dsn, "webhooks", "add", url, "--secret", _whsec())
    assert gone.exit_code == 2 and "No such option" in gone.output

    from_file = _whsec()
    path = tmp_path / "secret"
    path.write_text(from_file + "\n")
    out = run("--dsn", db_dsn, "webhooks", "add", url, "--secret-file", str(path))
    assert out.exit_code == 0, out.output
    added = json.loads(out.stdout)
    assert added["secret"] == from_file == _webhook_secret(db_dsn, added["subscription_id"])

    from_stdin = _whsec()
    out = run("--dsn", db_dsn, "webhooks", "add", url, "--secret-file", "-", input=from_stdin)
    assert out.exit_code == 0, out.output
    assert _webhook_secret(db_dsn, json.loads(out.stdout)["subscription_id"]) == from_stdin

    from_env = _whsec()
    out = run(
        "--dsn", db_dsn, "webhooks", "add", url, env={"ORDERDB_WEBHOOKS_ADD_SECRET": from_env}
    )
    assert out.exit_code == 0, out.output
    assert _webhook_secret(db_dsn, json.loads(out.stdout)["subscription_id"]) == from_env

    # --prompt-secret asks twice, echoes nothing; without a terminal it is a usage error
    no_tty = run("--dsn", db_dsn, "webhooks", "add", url, "--prompt-secret")
    assert no_tty.exit_code == 2 and "needs a terminal" in no_tty.output
    monkeypatch.setattr(cli_base, "stdin_is_terminal", lambda: True)
    typed = _whsec()
    out = run(
        "--dsn", db_dsn, "webhooks", "add", url, "--prompt-secret", input=f"{typed}\n{typed}\n"
    )
    assert out.exit_code == 0, out.output
    assert _webhook_secret(db_dsn, json.loads(out.stdout)["subscription_id"]) == typed
    assert out.output.count(typed) == 1  # printed once (the JSON), never echoed while typed

    empty = tmp_path / "empty"
    empty.write_text("\n")
    out = run("--dsn", db_dsn, "webhooks", "add", url, "--secret-file", str(empty))
    assert out.exit_code == 2 and "empty" in out.output


def test_integration_secret_from_a_file_or_the_environment(db_dsn: str, tmp_path: Path) -> None:
    def stored(name: str) -> str:
        with psycopg.connect(db_dsn) as conn:
            row = conn.execute(
                "SELECT secret FROM orderdb.integrations WHERE name = %s", (name,)
            ).fetchone()
        assert row is not None
        return str(row[0])

    gone = run(
        "--dsn", db_dsn, "integrations", "add", "SEC-A", "--kind", "wms", "--secret", "x" * 20
    )
    assert gone.exit_code == 2 and "No such option" in gone.output
    path = tmp_path / "key"
    path.write_text("file-secret-0123456789\n")
    out = run(
        "--dsn", db_dsn, "integrations", "add", "SEC-A", "--kind", "wms", "--secret-file", str(path)
    )
    assert out.exit_code == 0, out.output
    assert stored("SEC-A") == "file-secret-0123456789"
    assert "shown once" not in out.output  # not generated: not printed
    out = run(
        "--dsn",
        db_dsn,
        "integrations",
        "add",
        "SEC-B",
        "--kind",
        "carrier",
        env={"ORDERDB_INTEGRATIONS_ADD_SECRET": "env-secret-0123456789"},
    )
    assert out.exit_code == 0, out.output
    assert stored("SEC-B") == "env-secret-0123456789"


def test_a_password_in_a_dsn_on_the_command_line_is_warned_about() -> None:
    with_password = "postgresql://postgres:s3cret@127.0.0.1:1/orderdb?connect_timeout=5"
    for args in (
        ("--dsn", with_password, "order", "show", "1"),
        ("order", "show", "1", "--dsn", with_password),
    ):
        out = run(*args)
        assert out.exit_code == 75, out.output
        assert "password in --dsn is visible" in out.stderr, out.stderr
        assert "s3cret" not in out.output
    from_env = run("order", "show", "1", env={"ORDERDB_DSN": with_password})
    assert from_env.exit_code == 75
    assert "password in --dsn" not in from_env.stderr
    no_password = run("--dsn", DOWN_DSN, "order", "show", "1")
    assert "password in --dsn" not in no_password.stderr


def test_a_password_in_a_sink_url_on_the_command_line_is_warned_about_once(
    fresh_dsn: str,
) -> None:
    """The relay runs on a real database with two sinks whose URLs carry passwords (brokers on
    closed ports: the relay keeps running, acknowledging nothing): one warning naming
    ORDERDB_RELAY_SINK, the passwords nowhere; the same URLs from ORDERDB_RELAY_SINK (blanks
    between them), or a URL without a password on the command line: no warning."""
    amqp = "amqp://shop:s3cret-amqp@127.0.0.1:1/%2F?exchange=conventions"
    nats = "nats://shop:s3cret-nats@127.0.0.1:2/?stream=CONVENTIONS&subject=conventions"
    on_argv = _start(
        [
            "relay",
            "--log-format",
            "json",
            "--consumer",
            "sink-argv",
            "--sink",
            amqp,
            "--sink",
            nats,
        ],
        fresh_dsn,
    )
    time.sleep(3)
    assert on_argv.poll() is None, on_argv.communicate()
    _stdout, records = _stop(on_argv)
    warnings = [r for r in records if "password in --sink" in r["message"]]
    assert len(warnings) == 1, records
    assert warnings[0]["level"] == "warning" and warnings[0]["logger"] == "orderdb.cli"
    assert "ORDERDB_RELAY_SINK" in warnings[0]["message"]
    assert any(r["message"].startswith("relay running") for r in records), records
    assert "s3cret" not in json.dumps(records)

    argv = ["relay", "--log-format", "json", "--consumer", "sink-env"]
    from_env = subprocess.Popen(
        [sys.executable, "-m", "orderdb", *argv],
        env={
            **os.environ,
            "ORDERDB_DSN": fresh_dsn,
            "ORDERDB_RELAY_SINK": f"{amqp} {nats}",
            "PYTHONUNBUFFERED": "1",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    assert from_env.poll() is None, from_env.communicate()
    _stdout, records = _stop(from_env)
    running = [r for r in records if r["message"].startswith("relay running")]
    assert running and len(running[0]["sinks"]) == 2, records
    assert not [r for r in records if "password in --sink" in r["message"]], records

    plain = "nats://127.0.0.1:2/?stream=CONVENTIONS&subject=conventions"
    no_password = run("relay", "--sink", plain + "&bad=1", "--dsn", DOWN_DSN)
    assert no_password.exit_code == 2, no_password.output
    assert "password in --sink" not in no_password.stderr
    refused = run("relay", "--sink", amqp + "&bad=1", "--dsn", DOWN_DSN)
    assert refused.exit_code == 2, refused.output  # warned, then the URL refused
    assert refused.stderr.count("password in --sink") == 1, refused.stderr
    assert "s3cret" not in refused.output


@pytest.mark.parametrize(
    ("command", "method", "key", "line"),
    [
        (
            "tracking",
            "record_tracking_batch",
            "event_id",
            {
                "carrier": "SF",
                "tracking_number": "JS-LOST",
                "event_time": "2026-05-01T10:00:00Z",
                "carrier_status": "31",
            },
        ),
        (
            "orders",
            "create_order",
            "idempotency_key",
            {"customer_id": 35, "warehouse_id": WH, "items": [{"sku": "JS-A", "quantity": 1}]},
        ),
    ],
)
def test_an_import_that_lost_its_connection_exits_75(
    command: str,
    method: str,
    key: str,
    line: dict[str, Any],
    db_dsn: str,
    fixture_db: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ingest tracking / ingest orders: a lost connection is "retry later" (running the file
    again records the rest); refused lines alone stay 1."""
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({**line, key: f"lost-{i}"}) + "\n" for i in range(3)))
    calls = []
    if command == "tracking":
        # ingest tracking sends batches (orderdb.integrations.tracking_batches): one line per
        # batch here, so that the second call is the second line
        from orderdb.integrations import tracking_batches

        monkeypatch.setattr("orderdb.cli.tracking.INGEST_BATCH", 1)
        original_batch = tracking_batches.record_tracking_batch

        def flaky_batch(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == 2:
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            return original_batch(*args, **kwargs)

        monkeypatch.setattr(tracking_batches, "record_tracking_batch", flaky_batch)
    else:
        original = getattr(Client, method)

        def flaky(self: Client, *args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == 2:
                raise TransientError("server closed the connection unexpectedly")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(Client, method, flaky)
    out = run("--dsn", db_dsn, "ingest", command, str(path), "--json")
    assert out.exit_code == 75, out.output
    summary = json.loads(out.stdout)
    assert summary["aborted"].startswith("line 2: "), summary
