"""Events through the cluster proxy (docs/scaling.md "Events"): read_events / ack_events keep
their contract for a consumer across shards (one read order over every shard's outbox, limits
over the whole cluster, an acknowledgement covers every event returned before it, on every
shard), consumer groups claim and acknowledge across shards, and a consumer process killed
with SIGKILL loses nothing and gets nothing twice after its acknowledgement."""

from __future__ import annotations

import http.server
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from orderdb.cli import main
from tests.cluster_fixtures import SHARDS, Cluster, cluster  # noqa: F401  (fixture)

ITEMS = '[{"sku": "SKU-EV", "quantity": 1, "unit_price": 1.00}]'


def proxy(cl: Cluster) -> psycopg.Connection[Any]:
    return psycopg.connect(cl.proxy_dsn, autocommit=True)


def pin(cl: Cluster, warehouse_id: int, shard: int) -> None:
    done = CliRunner().invoke(
        main, ["cluster", "map-warehouse", "--dsn", cl.proxy_dsn, str(warehouse_id), str(shard)]
    )
    assert done.exit_code == 0, done.output


def orders_on_every_shard(
    cl: Cluster, base: int, per_shard: int, shards: tuple[int, ...] = tuple(range(SHARDS))
) -> list[int]:
    """``per_shard`` orders on each shard (warehouses base + shard), confirmed: two events each."""
    ids: list[int] = []
    with proxy(cl) as conn:
        for shard in shards:
            warehouse = base + shard
            pin(cl, warehouse, shard)
            conn.execute("SELECT * FROM orderdb.receive_stock(%s, 'SKU-EV', 1000)", (warehouse,))
            for _ in range(per_shard):
                row = conn.execute(
                    "SELECT order_id FROM orderdb.create_order(1, %s, %s)", (warehouse, ITEMS)
                ).fetchone()
                assert row is not None
                conn.execute(
                    "SELECT * FROM orderdb.transition_order(%s, 'confirmed', 1)", (row[0],)
                )
                ids.append(int(row[0]))
    return ids


def all_event_ids(
    cl: Cluster, order_ids: list[int], shards: tuple[int, ...] = tuple(range(SHARDS))
) -> set[int]:
    """Every event of those orders, read on the shards themselves (of ``shards``)."""
    found: set[int] = set()
    for dsn in (cl.shard_dsns[shard] for shard in shards):
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT event_id FROM orderdb.outbox WHERE order_id = ANY(%s)", (order_ids,)
            ).fetchall()
        found |= {int(r[0]) for r in rows}
    return found


def read(conn: psycopg.Connection[Any], consumer: str, limit: int) -> list[tuple[int, int]]:
    rows = conn.execute(
        "SELECT event_id, order_id FROM orderdb.read_events(%s, %s)", (consumer, limit)
    ).fetchall()
    return [(int(r[0]), int(r[1])) for r in rows]


def test_one_consumer_reads_every_shard_in_one_stable_order(cluster: Cluster) -> None:  # noqa: F811
    orders = orders_on_every_shard(cluster, 1100, 4)
    expected = all_event_ids(cluster, orders)
    assert len(expected) == SHARDS * 4 * 2
    with proxy(cluster) as conn:
        first = read(conn, "ev-stable", 10)
        assert len(first) == 10  # the limit holds over the whole cluster
        # reading again without acknowledging: the same events, in the same order
        assert read(conn, "ev-stable", 10) == first
        # a larger limit: those first, then the next ones
        more = read(conn, "ev-stable", 1000)
        assert more[:10] == first
        mine = [e for e, o in more if o in orders]
        assert set(mine) == expected and len(mine) == len(expected)
        # each shard's events keep the shard's own read order (event ids within a shard here)
        for shard in range(SHARDS):
            of_shard = [e for e in mine if (e - 1) % 64 == shard]
            assert of_shard == sorted(of_shard)
        # another consumer reading the same committed events in the same steps: the same order
        again = read(conn, "ev-stable-2", 10)
        assert again == first
        # events of every shard are in the first batch of the whole stream
        assert len({(e - 1) % 64 for e, _ in more}) == SHARDS


def test_an_ack_covers_every_event_returned_before_it_on_every_shard(cluster: Cluster) -> None:  # noqa: F811
    orders = orders_on_every_shard(cluster, 1200, 3)
    expected = all_event_ids(cluster, orders)
    consumer = "ev-ack"
    with proxy(cluster) as conn:
        # start this consumer after earlier tests' events: read and ack everything first
        everything = read(conn, consumer, 10000)
        conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, everything[-1][0]))
        assert read(conn, consumer, 10000) == []
        orders2 = orders_on_every_shard(cluster, 1210, 3)
        expected2 = all_event_ids(cluster, orders2)
        batch = read(conn, consumer, 7)
        assert len(batch) == 7
        shards_in_batch = {(e - 1) % 64 for e, _ in batch}
        assert len(shards_in_batch) >= 2
        conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, batch[4][0]))
        rest = read(conn, consumer, 10000)
        assert rest[:2] == batch[5:]
        assert not {e for e, _ in batch[:5]} & {e for e, _ in rest}
        assert {e for e, _ in batch[:5]} | {e for e, _ in rest} == expected2
        # acknowledging an event acknowledged already, or the same one again: nothing happens
        conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, batch[2][0]))
        conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, batch[4][0]))
        assert read(conn, consumer, 10000) == rest
        conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, rest[-1][0]))
        assert read(conn, consumer, 10000) == []
    assert expected.isdisjoint(expected2)


def test_event_errors_through_the_proxy_are_those_of_one_database(cluster: Cluster) -> None:  # noqa: F811
    orders_on_every_shard(cluster, 1300, 1)
    with proxy(cluster) as conn:
        batch = read(conn, "ev-errors", 5)
        cases: list[tuple[str, tuple[Any, ...], str]] = [
            ("SELECT * FROM orderdb.read_events(%s, %s)", ("", 5), "22023"),
            ("SELECT * FROM orderdb.read_events(%s, %s)", ("ev-errors", 0), "22023"),
            ("SELECT orderdb.ack_events(%s, %s)", ("ev-never-read", batch[0][0]), "OD004"),
            ("SELECT orderdb.ack_events(%s, %s)", ("ev-errors", None), "22023"),
            ("SELECT orderdb.ack_events(%s, %s)", ("ev-errors", -1), "22023"),
            ("SELECT orderdb.ack_events(%s, %s)", ("ev-errors", 64 * 10**6 + 1), "22023"),
            ("SELECT * FROM orderdb.claim_events(%s, %s, %s)", ("g", "m", 0), "22023"),
            ("SELECT orderdb.ack_claimed(%s, %s, %s)", ("g", "", [1]), "22023"),
        ]
        for query, args, sqlstate in cases:
            with pytest.raises(psycopg.Error) as exc:
                conn.execute(query, args)
            assert exc.value.sqlstate == sqlstate, (query, args, exc.value)
            assert "REMOTE" not in str(exc.value)
        # an event of another shard that was not returned yet: refused, nothing acknowledged
        unreturned = read(conn, "ev-errors-2", 1000)
        last = unreturned[-1][0]
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("SELECT orderdb.ack_events(%s, %s)", ("ev-errors", last))
        assert refused.value.sqlstate == "22023"
        assert read(conn, "ev-errors", 5) == batch


def test_consumer_group_members_share_every_shard(cluster: Cluster) -> None:  # noqa: F811
    orders = orders_on_every_shard(cluster, 1400, 3)
    expected = all_event_ids(cluster, orders)
    seen: list[int] = []
    with proxy(cluster) as conn:
        for _ in range(200):
            got_any = False
            for member in ("a", "b"):
                rows = conn.execute(
                    "SELECT event_id, order_id FROM orderdb.claim_events('grp', %s, 4, 30)",
                    (member,),
                ).fetchall()
                assert len(rows) <= 4
                ids = [int(r[0]) for r in rows]
                seen += ids
                got_any = got_any or bool(ids)
                acked = conn.execute(
                    "SELECT orderdb.ack_claimed('grp', %s, %s)", (member, ids)
                ).fetchone()
                assert acked == (len(ids),)
            if not got_any:
                break
    mine = [e for e in seen if e in expected]
    assert sorted(mine) == sorted(expected)  # every event once
    assert len(seen) == len(set(seen))


CONSUMER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import psycopg
    dsn, consumer, out = sys.argv[1], sys.argv[2], sys.argv[3]
    with psycopg.connect(dsn, autocommit=True) as conn, open(out, "a", buffering=1) as log:
        idle = 0
        while idle < 20:
            rows = conn.execute(
                "SELECT event_id FROM orderdb.read_events(%s, 3)", (consumer,)).fetchall()
            if not rows:
                idle += 1
                time.sleep(0.05)
                continue
            idle = 0
            for (event_id,) in rows:
                log.write(f"got {event_id}\\n")
                time.sleep(0.01)
            conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, rows[-1][0]))
            log.write(f"acked {rows[-1][0]}\\n")
    """
)


def test_a_consumer_killed_with_sigkill_loses_nothing(cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    consumer = "ev-killed"
    with proxy(cluster) as conn:  # start after earlier tests' events
        everything = read(conn, consumer, 10000)
        if everything:
            conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, everything[-1][0]))
    orders = orders_on_every_shard(cluster, 1500, 10)
    expected = all_event_ids(cluster, orders)
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER_SCRIPT)
    out = tmp_path / "log.txt"
    kills = 0
    rng = random.Random(7)
    while True:
        proc = subprocess.Popen(
            [sys.executable, str(script), cluster.proxy_dsn, consumer, str(out)],
            env={**os.environ},
        )
        if kills == 4:  # the last run consumes to the end
            assert proc.wait(timeout=120) == 0
            break
        # killed once it delivered a few events, at a random point of its work
        lines = len(out.read_text().splitlines()) if out.exists() else 0
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            now = len(out.read_text().splitlines()) if out.exists() else 0
            if now >= lines + 4:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.08))
        assert proc.poll() is None, "the consumer finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= 1
    delivered: list[int] = []
    acked_before: set[int] = set()
    in_flight: list[int] = []
    for line in out.read_text().splitlines():
        kind, value = line.split()
        if kind == "got":
            event_id = int(value)
            # never again once an acknowledgement covering it returned
            assert event_id not in acked_before, event_id
            delivered.append(event_id)
            in_flight.append(event_id)
        else:
            assert int(value) == in_flight[-1]
            acked_before |= set(in_flight)
            in_flight = []
    assert expected <= set(delivered)
    assert expected <= acked_before
    print(f"\nSIGKILLs: {kills}, events: {len(expected)}, deliveries: {len(delivered)}")


def test_events_tail_through_the_proxy(cluster: Cluster) -> None:  # noqa: F811
    orders = orders_on_every_shard(cluster, 1600, 2)
    expected = all_event_ids(cluster, orders)
    args = ["events", "tail", "--consumer", "ev-tail", "--idle-exit", "1", "--batch-size", "5"]
    first = CliRunner().invoke(main, [*args, "--dsn", cluster.proxy_dsn])
    assert first.exit_code == 0, first.output
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    ids = [line["event_id"] for line in lines]
    assert len(ids) == len(set(ids))
    assert expected <= set(ids)
    assert {line["event_type"] for line in lines if line["event_id"] in expected} == {
        "order.created",
        "order.status_changed",
    }
    # acknowledged on every shard: the next run starts after them
    more = orders_on_every_shard(cluster, 1610, 1)
    second = CliRunner().invoke(main, [*args, "--dsn", cluster.proxy_dsn])
    assert second.exit_code == 0, second.output
    again = {json.loads(line)["event_id"] for line in second.stdout.splitlines()}
    assert again == all_event_ids(cluster, more)


class Receiver:
    """A webhook receiver on a free local port: the event id of every delivery, in arrival
    order (answered 204)."""

    def __init__(self) -> None:
        self.received: list[int] = []
        received = self.received
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    received.append(int(self.headers["X-Orderdb-Event-Id"]))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_at_the_end(cl: Cluster, consumer: str) -> None:
    """The consumer's position on every shard after every event there (read on the shards)."""
    for dsn in cl.shard_dsns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while rows := conn.execute(
                "SELECT event_id FROM orderdb.read_events(%s, 10000)", (consumer,)
            ).fetchall():
                conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, rows[-1][0]))


def positions(cl: Cluster, consumer: str) -> list[int]:
    """The consumer's acknowledged event on each shard (0: none)."""
    found = []
    for dsn in cl.shard_dsns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT acked_event_id FROM orderdb.event_consumers WHERE consumer = %s",
                (consumer,),
            ).fetchone()
        found.append(int(row[0]) if row else 0)
    return found


def start_relay(
    cl: Cluster, consumer: str, handled: Path, log: Path, *options: str, sleep: float = 0.0
) -> subprocess.Popen[bytes]:
    """`orderdb relay --dsn PROXY` with the recording handler (one JSON line per call)."""
    env = {
        **os.environ,
        "ORDERDB_TEST_GROUP_FILE": str(handled),
        "ORDERDB_TEST_GROUP_SLEEP": str(sleep),
    }
    with log.open("ab") as err:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orderdb",
                "relay",
                "--dsn",
                cl.proxy_dsn,
                "--consumer",
                consumer,
                "--poll-interval",
                "0.02",
                "--handler",
                "tests.test_events_groups:record",
                *options,
            ],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def handled_ids(handled: Path) -> list[int]:
    if not handled.exists():
        return []
    return [json.loads(line)["event_id"] for line in handled.read_text().splitlines()]


def wait_for(cond: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def test_the_relay_through_the_proxy_runs_one_relay_per_shard(
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`orderdb relay --dsn PROXY`: the handler and a webhook subscription of each shard get
    every event of orders on every shard once, also of orders created while it runs; the
    consumer's position advances on each shard; SIGTERM stops every shard's relay."""
    consumer = "relay-cl"
    start_at_the_end(cluster, consumer)
    handled, log = tmp_path / "handled.jsonl", tmp_path / "relay.log"
    with Receiver() as receiver:
        for dsn in cluster.shard_dsns:  # a shard's subscriptions are its own
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    "SELECT * FROM orderdb.create_webhook_subscription(%s)", (receiver.url,)
                )
        orders = orders_on_every_shard(cluster, 2200, 3)
        proc = start_relay(cluster, consumer, handled, log)
        try:
            expected = all_event_ids(cluster, orders)
            wait_for(lambda: expected <= set(handled_ids(handled)), "the handler")
            # orders created while it runs, on two shards
            later = orders_on_every_shard(cluster, 2210, 2, shards=(0, 2))
            expected |= all_event_ids(cluster, later)
            wait_for(lambda: expected <= set(handled_ids(handled)), "the later events")
            wait_for(lambda: expected <= set(receiver.received), "the webhooks")
        finally:
            code = stop(proc)
        assert code == 0, log.read_text()
        received = list(receiver.received)
    ids = handled_ids(handled)
    assert sorted(ids) == sorted(expected)  # every event once, nothing else
    assert sorted(received) == sorted(expected)
    assert len({(e - 1) % 64 for e in expected}) == SHARDS
    # each shard's position covers its events
    for shard, acked in enumerate(positions(cluster, consumer)):
        assert acked == max(e for e in expected if (e - 1) % 64 == shard)
    text = log.read_text()
    assert f"on the {SHARDS} shards of the cluster" in text
    for shard in range(SHARDS):
        assert f"relay of shard {shard} stopped:" in text
    # no proxy-side read record: the shards' relays read their own outboxes
    with proxy(cluster) as conn:
        assert conn.execute(
            "SELECT count(*) FROM orderdb_cluster.event_reads WHERE consumer = %s", (consumer,)
        ).fetchone() == (0,)


def test_the_relay_through_the_proxy_killed_with_sigkill_loses_nothing(
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    consumer = "relay-cl-killed"
    start_at_the_end(cluster, consumer)
    handled, log = tmp_path / "handled.jsonl", tmp_path / "relay.log"
    orders = orders_on_every_shard(cluster, 2300, 10)
    expected = all_event_ids(cluster, orders)
    before = positions(cluster, consumer)
    options = ("--no-webhooks", "--batch-size", "4")
    kills = 0
    for round_ in range(2):
        proc = start_relay(cluster, consumer, handled, log, *options, sleep=0.02)
        seen = len(handled_ids(handled))
        wait_for(lambda s=seen: len(handled_ids(handled)) >= s + 8, "some events")  # type: ignore[misc]
        # three shards' batches are handled interleaved: 8 events need not finish one batch, so
        # the kill waits for an acknowledged one (it then lands mid-stream, after an ack)
        wait_for(
            lambda: any(m > b for m, b in zip(positions(cluster, consumer), before, strict=True)),
            "an acknowledged batch",
        )
        assert proc.poll() is None, log.read_text()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
        if round_ == 0:  # more orders while no relay runs
            more = orders_on_every_shard(cluster, 2310, 2)
            expected |= all_event_ids(cluster, more)
    assert set(handled_ids(handled)) < expected  # killed mid-stream
    middle = positions(cluster, consumer)
    assert any(m > b for m, b in zip(middle, before, strict=True))
    proc = start_relay(cluster, consumer, handled, log, *options)
    try:
        wait_for(lambda: expected <= set(handled_ids(handled)), "every event after the kills")
        wait_for(
            lambda: all(
                acked == max(e for e in expected if (e - 1) % 64 == shard)
                for shard, acked in enumerate(positions(cluster, consumer))
            ),
            "every shard's position",
        )
    finally:
        assert stop(proc) == 0, log.read_text()
    ids = handled_ids(handled)
    assert expected == set(ids)  # every event at least once, nothing else
    print(f"\nSIGKILLs: {kills}, events: {len(expected)}, handled: {len(ids)}")


def test_a_stopped_shard_does_not_hold_back_the_relays_of_the_others(
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    consumer = "relay-cl-down"
    start_at_the_end(cluster, consumer)
    handled, log = tmp_path / "handled.jsonl", tmp_path / "relay.log"
    down = conninfo_to_dict(cluster.shard_dsns[1])["dbname"]
    proc = start_relay(cluster, consumer, handled, log, "--no-webhooks", "--log-format", "json")
    try:
        first = orders_on_every_shard(cluster, 2400, 1)
        expected = all_event_ids(cluster, first)
        wait_for(lambda: expected <= set(handled_ids(handled)), "the first events")
        with psycopg.connect(cluster.admin_dsn, autocommit=True) as admin:
            # shard 1 stops answering: no new connection, its sessions ended
            admin.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(down))
            )
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (down,),
            )
            try:
                others = orders_on_every_shard(cluster, 2410, 2, shards=(0, 2))
                mine = all_event_ids(cluster, others, shards=(0, 2))
                wait_for(lambda: mine <= set(handled_ids(handled)), "the other shards' events")
                assert proc.poll() is None
            finally:
                admin.execute(
                    sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(down))
                )
        # shard 1 is back: its relay reconnects by itself
        back = orders_on_every_shard(cluster, 2420, 2, shards=(1,))
        expected |= mine | all_event_ids(cluster, back)
        wait_for(lambda: expected <= set(handled_ids(handled)), "shard 1's events")
    finally:
        code = stop(proc)
    assert code == 0, log.read_text()
    assert sorted(e for e in handled_ids(handled) if e in expected) == sorted(expected)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    lost = [r for r in records if r["level"] == "warning"]
    # only shard 1's relay lost its connection; its lines name the shard (text and field)
    assert lost, records
    assert {r["shard"] for r in lost} == {1}, lost
    assert all(r["message"].startswith("shard 1: conn") for r in lost), lost
    stopped = {r["shard"]: r for r in records if "stopped:" in r["message"]}
    assert sorted(stopped) == list(range(SHARDS))
    assert stopped[1]["events"] >= 4 and stopped[0]["events"] >= 6


def test_many_connections_of_one_consumer_and_of_one_group(cluster: Cluster) -> None:  # noqa: F811
    """Six connections read and acknowledge as one consumer (they take turns on the proxy: no
    error, every event delivered); six members of one group claim and acknowledge: every event
    acknowledged exactly once, and no order's event leased to a member while another member
    handles one of that order."""
    consumer, group = "ev-crowd", "grp-crowd"
    with proxy(cluster) as conn:  # both start after earlier tests' events
        everything = read(conn, consumer, 10000)
        if everything:
            conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, everything[-1][0]))
        while True:
            ids = [
                int(r[0])
                for r in conn.execute(
                    "SELECT event_id FROM orderdb.claim_events(%s, 'drain', 1000)", (group,)
                ).fetchall()
            ]
            if not ids:
                break
            conn.execute("SELECT orderdb.ack_claimed(%s, 'drain', %s)", (group, ids))
    orders = orders_on_every_shard(cluster, 1700, 8)
    expected = all_event_ids(cluster, orders)
    errors: list[BaseException] = []
    delivered: list[int] = []
    acked_by_group: list[int] = []
    held: dict[int, str] = {}  # order id -> member holding a lease of it
    held_lock = threading.Lock()
    overlaps: list[tuple[int, str, str]] = []

    def reader() -> None:
        try:
            with proxy(cluster) as conn:
                idle = 0
                while idle < 3:
                    batch = read(conn, consumer, 4)
                    if not batch:
                        idle += 1
                        time.sleep(0.05)
                        continue
                    idle = 0
                    delivered.extend(e for e, _ in batch)
                    conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, batch[-1][0]))
        except BaseException as exc:
            errors.append(exc)

    def member(name: str) -> None:
        try:
            with proxy(cluster) as conn:
                idle = 0
                while idle < 3:
                    rows = conn.execute(
                        "SELECT event_id, order_id FROM orderdb.claim_events(%s, %s, 3, 30)",
                        (group, name),
                    ).fetchall()
                    if not rows:
                        idle += 1
                        time.sleep(0.05)
                        continue
                    idle = 0
                    with held_lock:
                        for _, order_id in rows:
                            other = held.get(order_id)
                            if other is not None and other != name:
                                overlaps.append((order_id, other, name))
                            held[order_id] = name
                    time.sleep(0.005)
                    with held_lock:
                        for _, order_id in rows:
                            if held.get(order_id) == name:
                                del held[order_id]
                    ids = [int(r[0]) for r in rows]
                    count = conn.execute(
                        "SELECT orderdb.ack_claimed(%s, %s, %s)", (group, name, ids)
                    ).fetchone()
                    assert count == (len(ids),)
                    acked_by_group.extend(ids)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(6)]
    threads += [threading.Thread(target=member, args=(f"m{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not errors, errors
    assert expected <= set(delivered)  # at least once; re-deliveries only of unacked events
    with proxy(cluster) as conn:
        assert read(conn, consumer, 10000) == []
    mine = [e for e in acked_by_group if e in expected]
    assert sorted(mine) == sorted(expected)  # each acknowledged exactly once
    assert overlaps == []


def test_reading_through_the_proxy_costs(cluster: Cluster) -> None:  # noqa: F811
    """Read and acknowledge 300 events in batches of 100, through the proxy (three shards) and
    from one shard directly (its own 100): milliseconds per event, printed."""
    with proxy(cluster) as conn:
        everything = read(conn, "ev-cost", 10000)
        if everything:
            conn.execute("SELECT orderdb.ack_events(%s, %s)", ("ev-cost", everything[-1][0]))
    orders_on_every_shard(cluster, 1800, 50)  # 100 events per shard
    with proxy(cluster) as conn:
        started = time.perf_counter()
        total = 0
        while batch := read(conn, "ev-cost", 100):
            conn.execute("SELECT orderdb.ack_events(%s, %s)", ("ev-cost", batch[-1][0]))
            total += len(batch)
        through = (time.perf_counter() - started) * 1000 / max(total, 1)
    with psycopg.connect(cluster.shard_dsns[0], autocommit=True) as conn:
        read(conn, "ev-cost-direct", 10000)  # created at the start of the outbox
        started = time.perf_counter()
        direct_total = 0
        while batch := read(conn, "ev-cost-direct", 100):
            conn.execute("SELECT orderdb.ack_events(%s, %s)", ("ev-cost-direct", batch[-1][0]))
            direct_total += len(batch)
        direct = (time.perf_counter() - started) * 1000 / max(direct_total, 1)
    assert total >= 300
    print(
        f"\nms per event read and acknowledged: proxy {through:.3f} ({total} events),"
        f" one shard directly {direct:.3f} ({direct_total} events)"
    )


def test_an_ack_whose_proxy_transaction_rolled_back_after_the_shards_committed(
    cluster: Cluster,  # noqa: F811
) -> None:
    """Each shard commits its acknowledgement; when the proxy's own transaction then fails, the
    next read drops from the proxy's record what the shards acknowledged, and repeating the ack
    finishes it: nothing acknowledged comes again, nothing unacknowledged is lost."""
    consumer = "ev-rollback"
    with proxy(cluster) as conn:
        everything = read(conn, consumer, 10000)
        if everything:
            conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, everything[-1][0]))
    orders = orders_on_every_shard(cluster, 1900, 3)
    expected = all_event_ids(cluster, orders)
    with proxy(cluster) as conn:
        batch = read(conn, consumer, 18)
        assert len({(e - 1) % 64 for e, _ in batch}) == SHARDS
        with conn.transaction(force_rollback=True):
            conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, batch[9][0]))
        # the proxy forgot the ack, the shards did not: the next read starts after batch[9]
        rest = read(conn, consumer, 10000)
        assert rest[:8] == batch[10:]
        assert {e for e, _ in batch[:10]} | {e for e, _ in rest} == expected
        assert not {e for e, _ in batch[:10]} & {e for e, _ in rest}
        # an ack repeated after such a failure: nothing happens (acknowledged already)
        conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, batch[9][0]))
        assert read(conn, consumer, 10000) == rest
        conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, rest[-1][0]))
        assert read(conn, consumer, 10000) == []


def test_events_work_members_through_the_proxy(cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    """Two `orderdb events work` members of one group, both on the proxy's DSN, handle every
    event of orders on three shards once between them."""
    group = "grp-work"
    with proxy(cluster) as conn:  # the group starts after earlier tests' events
        while ids := [
            int(r[0])
            for r in conn.execute(
                "SELECT event_id FROM orderdb.claim_events(%s, 'drain', 1000)", (group,)
            ).fetchall()
        ]:
            conn.execute("SELECT orderdb.ack_claimed(%s, 'drain', %s)", (group, ids))
    orders = orders_on_every_shard(cluster, 2000, 4)
    expected = all_event_ids(cluster, orders)
    out = tmp_path / "handled.jsonl"
    env = {**os.environ, "ORDERDB_TEST_GROUP_FILE": str(out), "ORDERDB_TEST_GROUP_SLEEP": "0.01"}
    root = Path(__file__).resolve().parent.parent
    members = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orderdb",
                "events",
                "work",
                "--group",
                group,
                "--handler",
                "tests.test_events_groups:record",
                "--member",
                name,
                "--idle-exit",
                "2",
                "--dsn",
                cluster.proxy_dsn,
            ],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("w1", "w2")
    ]
    for m in members:
        _out, err = m.communicate(timeout=120)
        assert m.returncode == 0, err
    handled = [json.loads(line) for line in out.read_text().splitlines()]
    mine = [h["event_id"] for h in handled if h["event_id"] in expected]
    assert sorted(mine) == sorted(expected)


def test_drop_consumer_through_the_proxy(cluster: Cluster) -> None:  # noqa: F811
    orders_on_every_shard(cluster, 2100, 1)
    with proxy(cluster) as conn:
        assert read(conn, "ev-dropped", 3)
        assert conn.execute("SELECT orderdb.drop_consumer('ev-dropped')").fetchone() == (True,)
        assert conn.execute("SELECT orderdb.drop_consumer('ev-dropped')").fetchone() == (False,)
        with pytest.raises(psycopg.Error) as bad:
            conn.execute("SELECT orderdb.drop_consumer('')")
        assert bad.value.sqlstate == "22023"
        assert conn.execute(
            "SELECT count(*) FROM orderdb_cluster.event_reads WHERE consumer = 'ev-dropped'"
        ).fetchone() == (0,)
    for dsn in cluster.shard_dsns:  # it no longer holds back any shard's purge
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute(
                "SELECT count(*) FROM orderdb.event_consumers WHERE consumer = 'ev-dropped'"
            ).fetchone() == (0,)
