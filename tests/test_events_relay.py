"""The relay: Python handlers, NOTIFY orderdb_events (batched, small payloads), handler errors,
kill -9 of `orderdb relay` mid-stream, and a `pg_ctl restart` of a throwaway embedded server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from orderdb import events as ev
from orderdb.config import ensure_database
from orderdb.server import embedded, migrate

ROOT = Path(__file__).resolve().parent.parent
HANDLER_FILE_ENV = "ORDERDB_TEST_HANDLER_FILE"


def file_handler(event: ev.Event) -> None:
    """Used by `orderdb relay --handler tests.test_events_relay:file_handler` (kill -9 test)."""
    with open(os.environ[HANDLER_FILE_ENV], "a") as fh:
        fh.write(f"{event.event_id}\n")


def _orders(conn: psycopg.Connection[Any], n: int, sku: str = "SKU-1") -> list[int]:
    ids = []
    for _ in range(n):
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(7, 1, %s::jsonb)",
            (f'[{{"sku": "{sku}", "quantity": 1, "unit_price": 1}}]',),
        ).fetchone()
        assert row is not None
        ids.append(row[0])
    return ids


def _replay(conn: psycopg.Connection[Any], consumer: str = "replay") -> list[int]:
    out: list[int] = []
    while batch := ev.read_events(conn, consumer, 1000):
        out += [e.event_id for e in batch]
        ev.ack_events(conn, consumer, batch[-1].event_id)
    return out


def _wait_for(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


class _Running:
    """A Relay running in a thread, stopped on exit."""

    def __init__(self, relay: ev.Relay, handler: Callable[[ev.Event], None] | None) -> None:
        self.relay = relay
        self.thread = threading.Thread(target=relay.run, args=(handler,), daemon=True)

    def __enter__(self) -> ev.Relay:
        self.thread.start()
        return self.relay

    def __exit__(self, *exc: object) -> None:
        self.relay.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_relay_calls_handlers_and_notifies_in_batches(fresh_dsn: str) -> None:
    handled: list[ev.Event] = []
    with (
        psycopg.connect(fresh_dsn, autocommit=True) as conn,
        psycopg.connect(fresh_dsn, autocommit=True) as listener,
    ):
        conn.execute("SELECT orderdb.receive_stock(1, 'SKU-1', 100000)")
        listener.execute("LISTEN orderdb_events")
        relay = ev.Relay(fresh_dsn, consumer="r", poll_interval=0.02, webhooks=False)
        with _Running(relay, handled.append):
            _orders(conn, 20)
            with conn.transaction():  # one transaction, 400 events: one batch, split payloads
                _orders(conn, 400)
            _wait_for(lambda: len(handled) >= 420)
            notified: list[dict[str, Any]] = []
            sizes: list[int] = []
            deadline = time.monotonic() + 10
            while len(notified) < 420 and time.monotonic() < deadline:
                for n in listener.notifies(timeout=0.5):
                    assert n.channel == "orderdb_events"
                    sizes.append(len(n.payload.encode()))
                    notified += json.loads(n.payload)
        order = _replay(conn)
        lag = conn.execute("SELECT pending_events FROM orderdb_ops.relay_lag WHERE consumer = 'r'")
        assert lag.fetchone() == (0,)
    assert [e.event_id for e in handled] == order, "handlers see events in read order, once"
    assert [x["event_id"] for x in notified] == order
    assert set(notified[0]) == {"event_id", "event_type", "order_id"}
    assert max(sizes) <= 4000 < 8000
    assert len(sizes) < 420 / 10, "notifications are batched"
    assert relay.stats.events == 420


def test_handler_error_is_retried_from_the_failed_event(fresh_dsn: str) -> None:
    calls: list[int] = []
    failed: list[int] = []

    def flaky(event: ev.Event) -> None:
        calls.append(event.event_id)
        if len(calls) == 4 and not failed:
            failed.append(event.event_id)
            raise RuntimeError("downstream unavailable")

    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.receive_stock(1, 'SKU-1', 100)")
        with conn.transaction():
            _orders(conn, 10)
        relay = ev.Relay(fresh_dsn, consumer="f", poll_interval=0.02, webhooks=False)
        with _Running(relay, flaky):
            _wait_for(lambda: len(calls) >= 11, timeout=20)
        order = _replay(conn)
    assert relay.stats.handler_errors == 1
    # events before the failure were acknowledged; the failed one is handed over again
    assert calls == order[:4] + order[3:]
    assert calls.count(failed[0]) == 2


def test_relay_kill_9_mid_stream_misses_nothing(fresh_dsn: str, tmp_path: Path) -> None:
    handled_file = tmp_path / "handled.txt"
    handled_file.touch()
    env = {**os.environ, HANDLER_FILE_ENV: str(handled_file)}
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.receive_stock(1, 'SKU-1', 1000000)")
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        with psycopg.connect(fresh_dsn, autocommit=True) as w:
            while not stop.is_set():
                written.extend(_orders(w, 5))
                time.sleep(0.005)

    def start_relay() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orderdb",
                "relay",
                "--dsn",
                fresh_dsn,
                "--consumer",
                "kr",
                "--no-webhooks",
                "--poll-interval",
                "0.02",
                "--handler",
                "tests.test_events_relay:file_handler",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def handled() -> list[int]:
        return [int(x) for x in handled_file.read_text().split()]

    w = threading.Thread(target=writer)
    w.start()
    kills = 0
    try:
        for _ in range(2):
            proc = start_relay()
            base = len(handled())
            _wait_for(lambda b=base: len(handled()) >= b + 150)  # type: ignore[misc]
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            kills += 1
    finally:
        stop.set()
        w.join(30)
    proc = start_relay()
    try:
        with psycopg.connect(fresh_dsn, autocommit=True) as conn:
            expected = {
                r[0]
                for r in conn.execute(
                    "SELECT event_id FROM orderdb.outbox WHERE order_id = ANY(%s)", (written,)
                )
            }
            _wait_for(lambda: expected <= set(handled()), timeout=60)
            order = _replay(conn)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0
    got = handled()
    duplicates = len(got) - len(set(got))
    print(
        f"\nrelay kill -9 x{kills}: {len(got)} handler calls, {len(expected)} events, "
        f"{duplicates} duplicates"
    )
    assert duplicates <= kills * 100  # at most ack_every per kill
    assert list(dict.fromkeys(got)) == order[: len(set(got))]


def test_relay_survives_pg_ctl_restart() -> None:
    """A throwaway embedded server is restarted (fast, then immediate = crash) under a running
    relay; the relay reconnects, catches up and hands over every event; LISTENers reconnected
    after the restart get notifications again."""
    handled: list[int] = []
    with embedded.throwaway() as server:
        ensure_database(server.dsn, "orderdb")
        dsn = server.url("orderdb")
        migrate.migrate(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT orderdb.receive_stock(1, 'SKU-1', 100000)")
            before = _orders(conn, 20)
        relay = ev.Relay(dsn, consumer="rr", poll_interval=0.02, webhooks=True, reconnect_max=1.0)
        more: list[int] = []
        with _Running(relay, lambda e: handled.append(e.event_id)):
            _wait_for(lambda: len(handled) >= 20)
            for restarts, mode in enumerate(("fast", "immediate"), start=1):
                embedded.restart(server.data_root, mode=mode)
                with (
                    psycopg.connect(dsn, autocommit=True) as conn,
                    psycopg.connect(dsn, autocommit=True) as listener,
                ):
                    listener.execute("LISTEN orderdb_events")
                    more += _orders(conn, 20)
                    want = 20 + 20 * restarts
                    _wait_for(lambda w=want: len(set(handled)) >= w)  # type: ignore[misc]
                    got = [n.payload for n in listener.notifies(timeout=2, stop_after=1)]
                    assert got, "notifications flow again after the restart"
            with psycopg.connect(dsn, autocommit=True) as conn:
                order = _replay(conn)
                rows = conn.execute(
                    "SELECT count(*) FROM orderdb.outbox WHERE order_id = ANY(%s)",
                    (before + more,),
                ).fetchone()
        assert relay.loop.reconnects >= 2
        assert list(dict.fromkeys(handled)) == order
        assert rows == (60,) and len(order) == 60
        print(
            f"\nrestart: {len(handled)} handler calls for 60 events, reconnects "
            f"{relay.loop.reconnects}, duplicates {len(handled) - len(set(handled))}"
        )


def test_retention_purges_acknowledged_old_events(fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("SELECT orderdb.receive_stock(1, 'SKU-1', 100)")
        _orders(conn, 10)
        relay = ev.Relay(
            fresh_dsn,
            consumer="p",
            poll_interval=0.02,
            webhooks=False,
            retention=timedelta(0),
            purge_interval=0.05,
        )
        with _Running(relay, None):
            _wait_for(lambda: relay.stats.purged >= 10)
        left = conn.execute("SELECT count(*) FROM orderdb.outbox").fetchone()
    assert left == (0,)


def test_a_relay_started_while_its_database_is_down_waits_and_stops_cleanly() -> None:
    """Before it knows whether its DSN is a cluster's proxy (docs/scaling.md), `orderdb relay`
    waits for the database as the relay itself does; SIGTERM meanwhile ends it with exit 0."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orderdb",
            "relay",
            "--dsn",
            "postgresql://postgres@127.0.0.1:1/orderdb?connect_timeout=5",
            "--no-webhooks",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)
        assert proc.poll() is None  # still waiting
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "connect failed" in err
    assert "relay stopped before it reached the database" in err
    assert "Traceback" not in err
