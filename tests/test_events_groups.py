"""Consumer groups: `orderdb events work` members sharing one stream (one killed with SIGKILL
mid-lease and replaced), SIGTERM, claims that do not wait for each other, and relay_lag."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from orderdb import events as ev
from orderdb.events import groups

ROOT = Path(__file__).resolve().parent.parent
OUT_ENV = "ORDERDB_TEST_GROUP_FILE"
SLEEP_ENV = "ORDERDB_TEST_GROUP_SLEEP"


def record(event: ev.Event) -> None:
    """Handler of the members under test (`--handler tests.test_events_groups:record`): one JSON
    line per call (pid, event, order), written with one O_APPEND write, then a short sleep."""
    line = json.dumps({"pid": os.getpid(), "event_id": event.event_id, "order_id": event.order_id})
    fd = os.open(os.environ[OUT_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
    time.sleep(float(os.environ.get(SLEEP_ENV, "0")))


def _wait_for(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def _emit(conn: psycopg.Connection[Any], orders: list[int], rounds: int) -> list[int]:
    """``rounds`` events per order, each round in its own transactions (orders interleaved);
    returns the event ids in read order."""
    for r in range(rounds):
        for i in range(0, len(orders), 7):
            with conn.transaction():
                for order_id in orders[i : i + 7]:
                    conn.execute(
                        "SELECT orderdb._emit_event('test.step', %s, NULL, %s::jsonb)",
                        (order_id, json.dumps({"step": r})),
                    )
    rows = conn.execute(
        "SELECT event_id FROM orderdb.outbox WHERE order_id = ANY (%s) ORDER BY tx_id, event_id",
        (orders,),
    ).fetchall()
    return [r[0] for r in rows]


def _member(dsn: str, name: str, out: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, OUT_ENV: str(out), SLEEP_ENV: "0.02"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orderdb",
            "events",
            "work",
            "--group",
            "shipping",
            "--handler",
            "tests.test_events_groups:record",
            "--member",
            name,
            "--dsn",
            dsn,
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _records(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line]


def test_three_members_one_killed_mid_lease_and_replaced(fresh_dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "handled.jsonl"
    base = 9_100_000_000 + int.from_bytes(os.urandom(3), "big") * 100
    orders = list(range(base, base + 40))
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        # the group starts after everything already in the outbox: only our events count
        conn.execute("SELECT FROM orderdb.claim_events('shipping', 'setup', 1, 1)")
        conn.execute("DELETE FROM orderdb.event_group_leases WHERE group_name = 'shipping'")
        conn.execute(
            "UPDATE orderdb.event_groups g SET low_tx_id = o.tx_id, low_event_id = o.event_id"
            "  FROM (SELECT tx_id, event_id FROM orderdb.outbox"
            "         ORDER BY tx_id DESC, event_id DESC LIMIT 1) o"
            " WHERE g.group_name = 'shipping'"
        )
        expected = _emit(conn, orders, rounds=6)
    position = {event_id: i for i, event_id in enumerate(expected)}

    common = ("--lease-seconds", "3", "--batch-size", "8", "--idle-exit", "8")
    members = {name: _member(fresh_dsn, name, out, *common) for name in ("m1", "m2", "m3")}
    victim = members["m1"]
    procs = list(members.values())
    try:
        # kill m1 once it has handled some events and holds leases it has not acknowledged
        def victim_mid_lease() -> bool:
            if sum(r["pid"] == victim.pid for r in _records(out)) < 5:
                return False
            with psycopg.connect(fresh_dsn, autocommit=True) as c:
                row = c.execute(
                    "SELECT count(*) FROM orderdb.event_group_leases"
                    " WHERE group_name = 'shipping' AND member = 'm1' AND acked_at IS NULL"
                ).fetchone()
            return row is not None and row[0] >= 2

        _wait_for(victim_mid_lease)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        killed_at = len(_records(out))
        assert killed_at < len(expected), "the killed member should not be the last one working"
        with psycopg.connect(fresh_dsn, autocommit=True) as c:
            held = {
                r[0]
                for r in c.execute(
                    "SELECT event_id FROM orderdb.event_group_leases"
                    " WHERE group_name = 'shipping' AND member = 'm1' AND acked_at IS NULL"
                )
            }
        assert held, "m1 was killed holding leases"
        replacement = _member(fresh_dsn, "m4", out, *common)
        procs.append(replacement)
        for proc in procs[1:]:
            _stdout, stderr = proc.communicate(timeout=180)
            assert proc.returncode == 0, stderr
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    records = _records(out)
    handled = Counter(r["event_id"] for r in records)
    # every event handled at least once
    assert set(handled) == set(expected)
    # each order's events handled in read order (a redelivery repeats, never goes back)
    per_order: dict[int, list[int]] = defaultdict(list)
    for r in records:
        per_order[r["order_id"]].append(position[r["event_id"]])
    for order_id, seq in per_order.items():
        assert seq == sorted(seq), f"order {order_id} handled out of order: {seq}"
    # redeliveries only of the killed member's leases; the others handled each event once
    twice = {e for e, n in handled.items() if n > 1}
    assert twice <= held, f"redelivered events that m1 did not hold: {sorted(twice - held)}"
    for event_id in twice:
        others = [r for r in records if r["event_id"] == event_id and r["pid"] != victim.pid]
        assert len(others) == 1, (event_id, others)
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        leases = conn.execute(
            "SELECT event_id, deliveries, member, acked_at IS NOT NULL"
            "  FROM orderdb.event_group_leases WHERE group_name = 'shipping'"
        ).fetchall()
        lag = conn.execute(
            "SELECT pending_events, leased_events FROM orderdb_ops.relay_lag"
            " WHERE kind = 'group' AND consumer = 'shipping'"
        ).fetchone()
    assert all(acked for *_, acked in leases), "every lease acknowledged"
    redelivered = {event_id for event_id, deliveries, _m, _a in leases if deliveries > 1}
    assert redelivered and redelivered <= held, (redelivered, held)
    assert {m for _e, _d, m, _a in leases} <= {"m1", "m2", "m3", "m4"}
    assert lag == (0, 0)


def test_sigterm_finishes_the_event_and_releases_the_rest(fresh_dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "handled.jsonl"
    base = 9_200_000_000 + int.from_bytes(os.urandom(3), "big") * 100
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("SELECT FROM orderdb.claim_events('shipping', 'setup', 1, 1)")
        conn.execute("DELETE FROM orderdb.event_group_leases WHERE group_name = 'shipping'")
        conn.execute(
            "UPDATE orderdb.event_groups g SET low_tx_id = o.tx_id, low_event_id = o.event_id"
            "  FROM (SELECT tx_id, event_id FROM orderdb.outbox"
            "         ORDER BY tx_id DESC, event_id DESC LIMIT 1) o"
            " WHERE g.group_name = 'shipping'"
        )
        _emit(conn, list(range(base, base + 30)), rounds=1)
    env_sleep = ("--lease-seconds", "600", "--batch-size", "30")
    proc = _member(fresh_dsn, "slow", out, *env_sleep)
    try:
        _wait_for(lambda: len(_records(out)) >= 3)
        proc.send_signal(signal.SIGTERM)
        _stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    handled = {r["event_id"] for r in _records(out)}
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT event_id, acked_at IS NOT NULL, leased_until < now()"
            "  FROM orderdb.event_group_leases WHERE group_name = 'shipping'"
        ).fetchall()
        # what was released goes to the next claim at once (the lease was 600 s)
        again = groups.claim_events(conn, "shipping", "next", 100, 30)
    acked = {e for e, a, _x in rows if a}
    assert acked == handled, "every handled event acknowledged, nothing else"
    assert all(a or expired for _e, a, expired in rows), "no lease left running"
    assert {e.event_id for e in again} == {e for e, a, _x in rows if not a}
    assert len(again) == 30 - len(handled) > 0


def test_concurrent_claims_never_wait_and_never_share(fresh_dsn: str) -> None:
    """Members claiming at the same moment get disjoint events; a claim does not wait for a
    member whose claim transaction is still open (it takes other events instead)."""
    base = 9_300_000_000 + int.from_bytes(os.urandom(3), "big") * 100
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("SELECT FROM orderdb.claim_events('pack', 'setup', 1, 1)")
        conn.execute("DELETE FROM orderdb.event_group_leases WHERE group_name = 'pack'")
        conn.execute(
            "UPDATE orderdb.event_groups g SET low_tx_id = o.tx_id, low_event_id = o.event_id"
            "  FROM (SELECT tx_id, event_id FROM orderdb.outbox"
            "         ORDER BY tx_id DESC, event_id DESC LIMIT 1) o"
            " WHERE g.group_name = 'pack'"
        )
        expected = _emit(conn, list(range(base, base + 200)), rounds=1)
    with (
        psycopg.connect(fresh_dsn) as open_tx,
        psycopg.connect(fresh_dsn, autocommit=True) as other,
    ):
        first = groups.claim_events(open_tx, "pack", "a", 10, 30)  # transaction left open
        other.execute("SET statement_timeout = '2s'")
        second = groups.claim_events(other, "pack", "b", 10, 30)
        assert {e.event_id for e in first}.isdisjoint(e.event_id for e in second)
        assert len(first) == len(second) == 10
        open_tx.commit()

    got: list[list[int]] = []

    def member(name: str) -> None:
        with psycopg.connect(fresh_dsn, autocommit=True) as c:
            mine: list[int] = []
            while batch := groups.claim_events(c, "pack", name, 7, 30):
                mine += [e.event_id for e in batch]
                groups.ack_claimed(c, "pack", name, [e.event_id for e in batch])
            got.append(mine)

    threads = [threading.Thread(target=member, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    flat = [e for mine in got for e in mine]
    assert len(flat) == len(set(flat)), "no event handed to two members"
    assert set(flat) == set(expected) - {e.event_id for e in first + second}


def test_member_survives_pg_ctl_restart() -> None:
    """A throwaway embedded server is restarted (fast, then immediate = crash) under a running
    member: it reconnects and catches up; every event is handled, each order's in read order."""
    from orderdb.config import ensure_database
    from orderdb.server import embedded, migrate

    handled: list[ev.Event] = []
    with embedded.throwaway() as server:
        ensure_database(server.dsn, "orderdb")
        dsn = server.url("orderdb")
        migrate.migrate(dsn)
        member = groups.GroupMember(
            dsn,
            "restart",
            "m",
            batch_size=5,
            lease_seconds=2,
            poll_interval=0.02,
            reconnect_max=1.0,
        )
        thread = threading.Thread(target=member.run, args=(handled.append,), daemon=True)
        thread.start()
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                expected = _emit(conn, list(range(1, 21)), rounds=1)
            _wait_for(lambda: len({e.event_id for e in handled}) >= 20)
            for mode in ("fast", "immediate"):
                embedded.restart(server.data_root, mode=mode)
                with psycopg.connect(dsn, autocommit=True) as conn:
                    expected = _emit(conn, list(range(1, 21)), rounds=1)
                want = set(expected)
                _wait_for(lambda w=want: w <= {e.event_id for e in handled})  # type: ignore[misc]
        finally:
            member.stop()
            thread.join(timeout=30)
    assert member.stats.reconnects >= 2
    position = {e: i for i, e in enumerate(expected)}
    assert {e.event_id for e in handled} == set(expected)
    for order_id in range(1, 21):
        seq = [position[e.event_id] for e in handled if e.order_id == order_id]
        assert seq == sorted(seq)
