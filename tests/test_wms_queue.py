"""The outbound WMS command queue end to end: the triggers that queue commands
(sql/42_wms_commands.sql), the dispatcher (orderdb/integrations/wms/dispatch.py) and its command
line (`orderdb wms-dispatch`, `orderdb warehouses set-wms|list`).

The acceptance test runs four dispatchers at once against a flaky WMS (errors, timeouts, slow
answers, a dispatcher that dies in the middle of a send) while orders are dispatched, amended and
cancelled: every command reaches the WMS, none is sent twice at the same time, an order's
commands arrive in order, retries back off, dead letters appear and are sent again."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from orderdb.cli import main
from orderdb.integrations import wms
from orderdb.integrations.carriers import Waybill, WaybillRequest
from orderdb.integrations.wms.dispatch import Dispatcher, RetryPolicy

FLAKY_WAREHOUSE = 4201
PLAIN_WAREHOUSE = 4202  # no connector: queues nothing
WAYBILL_WAREHOUSE = 4203
SKU = "WQ-SKU"
SHIP_TO = {"name": "Li Lei", "line1": "1 Keyuan Rd", "city": "Shenzhen", "postcode": "518000"}
BACKOFF = 0.05  # the first retry's wait, s (then 0.1, 0.2, capped at 0.4)


class WorkerCrash(BaseException):
    """A dispatcher dying in the middle of a send (not an error it could record)."""


@dataclass
class Attempt:
    command_id: int
    order_id: int
    kind: str
    attempt: int
    started: float
    ended: float = 0.0
    outcome: str = ""  # accepted, unavailable, rejected, crash


@dataclass
class FlakyWms:
    """A WMS that fails often: errors, timeouts, slow answers, and one crash of its caller. It
    is idempotent on the command id (a resent create gets the first answer), records every
    attempt, and notices two sends of one command at the same time. ``poisoned`` commands fail
    until ``heal()`` (they end up dead); ``reject_once`` is refused for good the first time."""

    seed: int = 7
    poisoned: set[int] = field(default_factory=set)
    reject_once: set[int] = field(default_factory=set)
    crash_on: int | None = None
    name: str = "flaky"
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: set[int] = field(default_factory=set)
    overlaps: list[int] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    accepted: dict[int, str] = field(default_factory=dict)  # command_id -> wms order id
    received: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    crashes: int = 0
    healed: bool = False

    def heal(self) -> None:
        with self.lock:
            self.healed = True

    def send(self, command: wms.WmsCommand) -> wms.WmsAccepted:
        record = Attempt(
            command.command_id, command.order_id, command.kind, command.attempt, time.monotonic()
        )
        with self.lock:
            if command.command_id in self.in_flight:
                self.overlaps.append(command.command_id)
            self.in_flight.add(command.command_id)
            self.attempts.append(record)
            crash = self.crash_on is None and command.kind == "create" and command.attempt == 1
            if crash:
                self.crash_on = command.command_id
        rng = random.Random(f"{self.seed}:{command.command_id}:{command.attempt}")
        # flaky, not broken: a command fails at random at most on its first three attempts
        roll = rng.random() if command.attempt <= 3 else 1.0
        try:
            if crash:
                time.sleep(0.05)
                with self.lock:
                    self.received[command.command_id] += 1  # it got there; the answer did not
                    self.crashes += 1
                record.outcome = "crash"
                raise WorkerCrash(f"dispatcher died sending command {command.command_id}")
            if command.command_id in self.poisoned and not self.healed:
                record.outcome = "unavailable"
                raise wms.WmsUnavailable("HTTP 503: maintenance")
            if command.command_id in self.reject_once:
                with self.lock:
                    self.reject_once.discard(command.command_id)
                record.outcome = "rejected"
                raise wms.WmsRejected("HTTP 422: unknown sku")
            if roll < 0.2:
                record.outcome = "unavailable"
                raise wms.WmsUnavailable("HTTP 502: bad gateway")
            if roll < 0.3:
                time.sleep(0.08)
                record.outcome = "unavailable"
                raise wms.WmsUnavailable("no answer within 0.08 s (ReadTimeout)")
            if roll < 0.45:
                time.sleep(rng.uniform(0.05, 0.2))  # slow, but within the lease
            with self.lock:
                self.received[command.command_id] += 1
                wms_id = self.accepted.setdefault(command.command_id, f"FLAKY-{command.order_no}")
                if command.kind == "create":
                    wms_id = self.accepted[command.command_id]
            record.outcome = "accepted"
            return wms.WmsAccepted(wms_id if command.kind == "create" else None, {"ok": True})
        finally:
            record.ended = time.monotonic()
            with self.lock:
                self.in_flight.discard(command.command_id)

    def close(self) -> None:
        pass


def _exec(dsn: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def _order(conn: psycopg.Connection[Any], warehouse: int, options: Mapping[str, Any]) -> int:
    row = conn.execute(
        "SELECT order_id FROM orderdb.create_order(99, %s, %s::jsonb, NULL, 'shop', %s::jsonb)",
        (warehouse, json.dumps([{"sku": SKU, "quantity": 1}]), json.dumps(options)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _version(conn: psycopg.Connection[Any], order_id: int) -> int:
    row = conn.execute("SELECT version FROM orderdb.orders WHERE order_id = %s", (order_id,))
    return int(row.fetchone()[0])  # type: ignore[index]


@pytest.fixture(scope="module")
def wms_dsn(db_dsn: str) -> Iterator[str]:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for warehouse in (FLAKY_WAREHOUSE, PLAIN_WAREHOUSE, WAYBILL_WAREHOUSE):
            conn.execute("SELECT FROM orderdb.receive_stock(%s, %s, 10000)", (warehouse, SKU))
        conn.execute("SELECT FROM orderdb.set_warehouse_wms(%s, 'flaky')", (FLAKY_WAREHOUSE,))
    yield db_dsn


def _run_dispatchers(
    dsn: str, flaky: FlakyWms, stop: threading.Event, crashed: list[str]
) -> list[threading.Thread]:
    """Four dispatchers; one that dies is replaced by a new one (as a supervisor restarts a
    process), its claimed commands left to their leases."""
    policy = RetryPolicy(backoff_seconds=BACKOFF, backoff_max_seconds=0.4, max_attempts=5)

    def work(name: str) -> None:
        dispatcher = Dispatcher(
            dsn,
            worker=name,
            limit=5,
            lease_seconds=2,
            max_send_seconds=1,
            policy=policy,
            connector_factory=lambda _name, _config: flaky,
        )
        try:
            dispatcher.run(stop, idle_seconds=0.02)
        except Exception as exc:  # a dispatcher must survive a flaky WMS: fail the test
            crashed.append(f"{name}: {exc!r}")
            stop.set()
            raise
        except WorkerCrash:
            crashed.append(name)
            assert dispatcher._conn is not None
            dispatcher._conn.close()  # the process is gone: so is its session
            replacement = threading.Thread(target=work, args=(f"{name}-restarted",), daemon=True)
            threads.append(replacement)
            replacement.start()
            return
        dispatcher.close()

    threads = [threading.Thread(target=work, args=(f"worker-{i}",), daemon=True) for i in range(4)]
    for thread in threads:
        thread.start()
    return threads


#: commands still to be sent: pending or sending, not held behind a dead letter of their order
OPEN_COMMANDS = (
    "SELECT {what} FROM orderdb.wms_commands c"
    " WHERE c.warehouse_id = %s AND c.status IN ('pending', 'sending')"
    " AND NOT EXISTS (SELECT 1 FROM orderdb.wms_commands d WHERE d.order_id = c.order_id"
    " AND d.command_id < c.command_id AND d.status = 'dead')"
)


def _wait_until_settled(dsn: str, warehouse: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ((open_,),) = _exec(dsn, OPEN_COMMANDS.format(what="count(*)"), (warehouse,))
        if open_ == 0:
            return
        time.sleep(0.05)
    rows = _exec(
        dsn, OPEN_COMMANDS.format(what="c.command_id, c.kind, c.status, c.attempts"), (warehouse,)
    )
    raise AssertionError(f"commands still open after {timeout} s: {rows}")


def test_four_dispatchers_and_a_flaky_wms(wms_dsn: str) -> None:
    dsn = wms_dsn
    flaky = FlakyWms()
    stop = threading.Event()
    crashed: list[str] = []
    threads = _run_dispatchers(dsn, flaky, stop, crashed)
    rng = random.Random(11)
    cancelled_at_once: list[int] = []
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            orders = [_order(conn, FLAKY_WAREHOUSE, {"ship_to": SHIP_TO}) for _ in range(40)]
            plain = [_order(conn, PLAIN_WAREHOUSE, {"ship_to": SHIP_TO}) for _ in range(4)]
            for order_id in orders + plain:
                conn.execute(
                    "SELECT FROM orderdb.transition_order(%s, 'confirmed', 1)", (order_id,)
                )
            # the dead letters to be: the creates of two orders fail until the WMS is healed,
            # one is refused once
            for i, order_id in enumerate(orders + plain):
                with conn.transaction():
                    conn.execute(
                        "SELECT FROM orderdb.transition_order(%s, 'dispatched', 2)", (order_id,)
                    )
                    created = conn.execute(
                        "SELECT command_id FROM orderdb.wms_commands WHERE order_id = %s",
                        (order_id,),
                    ).fetchall()
                    if i in (5, 6):
                        cancelled_at_once.append(order_id)  # cancelled before the create left
                        conn.execute(
                            "SELECT FROM orderdb.transition_order(%s, 'cancelled', 3)", (order_id,)
                        )
                    elif i in (10, 20):
                        flaky.poisoned.add(created[0][0])
                    elif i == 30:
                        flaky.reject_once.add(created[0][0])
                time.sleep(rng.uniform(0, 0.01))
            # amendments and cancellations while the queue drains
            live = [o for o in orders if o not in cancelled_at_once]
            for order_id in rng.sample(live, 16):
                conn.execute(
                    "SELECT FROM orderdb.amend_order(%s, %s, %s::jsonb)",
                    (order_id, _version(conn, order_id), json.dumps({"priority": "express"})),
                )
                time.sleep(rng.uniform(0, 0.02))
            for order_id in rng.sample(live, 12):
                conn.execute(
                    "SELECT FROM orderdb.transition_order(%s, 'cancelled', %s)",
                    (order_id, _version(conn, order_id)),
                )
                time.sleep(rng.uniform(0, 0.02))

        _wait_until_settled(dsn, FLAKY_WAREHOUSE, timeout=90)

        # dead letters: the poisoned creates (5 attempts), the refused one (at once); the
        # later commands of their orders wait behind them
        dead = {
            r[0]: r[1]
            for r in _exec(
                dsn,
                "SELECT command_id, attempts FROM orderdb.wms_commands"
                " WHERE status = 'dead' ORDER BY 1",
            )
        }
        assert set(dead) == flaky.poisoned | {
            a.command_id for a in flaky.attempts if a.outcome == "rejected"
        }
        assert all(dead[c] == 5 for c in flaky.poisoned)
        ((alert,),) = _exec(
            dsn,
            "SELECT message FROM orderdb_ops.alerts WHERE source = 'wms' AND subject = %s",
            (f"warehouse {FLAKY_WAREHOUSE}",),
        )
        assert alert.startswith(f"{len(dead)} dead WMS command(s)")
        ((backlog_dead,),) = _exec(
            dsn,
            "SELECT dead FROM orderdb_ops.wms_backlog WHERE warehouse_id = %s",
            (FLAKY_WAREHOUSE,),
        )
        assert backlog_dead == len(dead)

        # the WMS is fixed; an operator sends the dead letters again
        flaky.heal()
        runner = CliRunner()
        for command_id in dead:
            result = runner.invoke(main, ["--dsn", dsn, "wms-dispatch", "retry", str(command_id)])
            assert result.exit_code == 0, result.output
            assert f"command {command_id} " in result.output
        _wait_until_settled(dsn, FLAKY_WAREHOUSE, timeout=60)
    finally:
        stop.set()
        for thread in list(threads):
            thread.join(timeout=30)

    commands = _exec(
        dsn,
        "SELECT command_id, order_id, kind, status, attempts, wms_order_id"
        " FROM orderdb.wms_commands WHERE warehouse_id = %s ORDER BY command_id",
        (FLAKY_WAREHOUSE,),
    )
    by_id = {c[0]: c for c in commands}

    # one dispatcher died mid-send; its command was sent again after the lease and is done
    assert len(crashed) == 1 and flaky.crashes == 1 and flaky.crash_on is not None
    assert by_id[flaky.crash_on][3] == "done" and by_id[flaky.crash_on][4] >= 2

    # every command reached the WMS (or was skipped: never sent), none is left over
    statuses = {c[3] for c in commands}
    assert statuses <= {"done", "skipped"}, statuses
    sent = {a.command_id for a in flaky.attempts}
    done = {c[0] for c in commands if c[3] == "done"}
    assert set(flaky.accepted) == done
    assert not sent & {c[0] for c in commands if c[3] == "skipped"}, "a skipped command was sent"
    assert {c[2] for c in commands} == {"create", "update", "cancel"}

    # cancelled before the create left: nothing was sent for them
    for order_id in cancelled_at_once:
        assert [c[3] for c in commands if c[1] == order_id] == ["skipped"]
    # a warehouse without a connector queued nothing
    assert _exec(
        dsn,
        "SELECT count(*) FROM orderdb.wms_commands WHERE warehouse_id = %s",
        (PLAIN_WAREHOUSE,),
    ) == [(0,)]

    # never two sends of one command at the same time
    assert flaky.overlaps == []
    spans: dict[int, list[Attempt]] = defaultdict(list)
    for attempt in flaky.attempts:
        spans[attempt.command_id].append(attempt)
    for attempts in spans.values():
        attempts.sort(key=lambda a: a.started)
        for earlier, later in itertools.pairwise(attempts):
            assert earlier.ended <= later.started

    # per order: a command is sent only after every earlier command of its order was accepted
    accepted_at = {a.command_id: a.ended for a in flaky.attempts if a.outcome == "accepted"}
    per_order: dict[int, list[int]] = defaultdict(list)
    for c in commands:
        if c[3] == "done":
            per_order[c[1]].append(c[0])
    for ids in per_order.values():
        for i, command_id in enumerate(ids):
            for attempt in spans[command_id]:
                for earlier in ids[:i]:
                    assert accepted_at[earlier] <= attempt.started, (earlier, command_id)

    # retries back off: after the k-th failed attempt, at least 0.5 x BACKOFF x 2^(k-1)
    waits = 0
    for command_id, attempts in spans.items():
        for earlier, later in itertools.pairwise(attempts):
            if earlier.outcome != "unavailable" or later.attempt != earlier.attempt + 1:
                continue  # a crash (lease) or an operator's retry comes after another wait
            floor = min(0.5 * BACKOFF * 2 ** (earlier.attempt - 1), 0.2)
            assert later.started - earlier.ended >= floor - 0.01, (command_id, earlier, later)
            waits += 1
    assert waits >= 5
    assert max(a.attempt for a in flaky.attempts) >= 3

    # get_order shows the WMS's order id once the create was accepted, null when it never was
    with psycopg.connect(dsn, autocommit=True) as conn:
        for c in commands:
            if c[2] == "create":
                doc = conn.execute("SELECT orderdb.get_order(%s)", (c[1],)).fetchone()[0]  # type: ignore[index]
                expected = flaky.accepted.get(c[0])
                assert doc["wms_order_id"] == expected
                assert (expected is None) == (c[3] == "skipped")
    # the crashed create reached the WMS twice and was taken once (idempotency key)
    assert flaky.received[flaky.crash_on] >= 2


# -- waybills ----------------------------------------------------------------------------------


@dataclass
class FakeCarrier:
    code: str = "FAKE"
    made: list[WaybillRequest] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    during_create: Any = None

    def create_waybill(self, request: WaybillRequest) -> Waybill:
        self.made.append(request)
        if self.during_create is not None:
            self.during_create(request)
        return Waybill("FAKE", f"FK{request.order_id:08d}")

    def query_tracking(self, tracking_number: str) -> list[Any]:
        return []

    def cancel(self, tracking_number: str) -> bool:
        self.cancelled.append(tracking_number)
        return True


class AcceptingWms:
    name = "accepting"

    def send(self, command: wms.WmsCommand) -> wms.WmsAccepted:
        return wms.WmsAccepted(f"ACC-{command.order_id}", {"kind": command.kind})

    def close(self) -> None:
        pass


def _packed(conn: psycopg.Connection[Any], tag: str) -> int:
    order_id = _order(conn, WAYBILL_WAREHOUSE, {"ship_to": {**SHIP_TO, "phone": "13800138000"}})
    conn.execute("SELECT FROM orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
    conn.execute("SELECT FROM orderdb.transition_order(%s, 'dispatched', 2)", (order_id,))
    conn.execute("SELECT FROM orderdb.wms_callback(%s, %s, 'PACKED')", (f"wb-{tag}", order_id))
    return order_id


def test_waybills_are_made_recorded_and_cancelled(wms_dsn: str) -> None:
    dsn = wms_dsn
    carrier = FakeCarrier()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT FROM orderdb.set_warehouse_wms(%s, 'accepting', NULL, NULL, 'FAKE')",
            (WAYBILL_WAREHOUSE,),
        )
        shipped = _packed(conn, "a")

        def dispatcher() -> Dispatcher:
            return Dispatcher(
                dsn,
                worker="waybills",
                connector_factory=lambda _n, _c: AcceptingWms(),
                carrier_factory=lambda code, _c: carrier,
            )

        with dispatcher() as d:
            while d.run_once().claimed:
                pass
        row = conn.execute(
            "SELECT o.status, s.carrier, s.tracking_number FROM orderdb.orders o"
            " JOIN orderdb.shipments s USING (warehouse_id, order_id) WHERE o.order_id = %s",
            (shipped,),
        ).fetchone()
        assert row == ("shipped", "FAKE", f"FK{shipped:08d}")
        request = carrier.made[0]
        assert request.recipient.name == "Li Lei" and request.recipient.postal_code == "518000"
        assert request.recipient.phone == "+8613800138000"
        assert request.options["idempotency_key"].startswith("orderdb-")

        # the order is cancelled while its waybill is being made: the waybill is cancelled
        cancelled = _packed(conn, "b")

        def cancel_meanwhile(request: WaybillRequest) -> None:
            with psycopg.connect(dsn, autocommit=True) as other:
                other.execute(
                    "SELECT FROM orderdb.transition_order(%s, 'cancelled', %s)",
                    (request.order_id, _version(other, request.order_id)),
                )

        carrier.during_create = cancel_meanwhile
        with dispatcher() as d:
            while d.run_once().claimed:
                pass
        kinds = conn.execute(
            "SELECT kind, status, tracking_number FROM orderdb.wms_commands"
            " WHERE order_id = %s ORDER BY command_id",
            (cancelled,),
        ).fetchall()
        number = f"FK{cancelled:08d}"
        assert kinds == [
            ("create", "done", None),
            ("waybill", "done", number),
            ("cancel", "done", None),
            ("cancel_waybill", "done", None),
        ]
        assert carrier.cancelled == [number]
        ((status,),) = conn.execute(
            "SELECT status FROM orderdb.orders WHERE order_id = %s", (cancelled,)
        ).fetchall()
        assert status == "cancelled"


# -- the command line --------------------------------------------------------------------------


def _cli(dsn: str, *args: str, env: Mapping[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, ["--dsn", dsn, *args], env=dict(env or {}))


def test_set_wms_keeps_secrets_off_the_command_line_and_out_of_list(
    wms_dsn: str, tmp_path: Path
) -> None:
    dsn = wms_dsn
    _exec(dsn, "SELECT FROM orderdb.receive_stock(4210, %s, 1)", (SKU,))
    result = _cli(
        dsn,
        "warehouses",
        "set-wms",
        "4210",
        "http",
        "--url",
        "https://wms.example",
        "--setting",
        "timeout=5",
        env={"ORDERDB_WAREHOUSES_SET_WMS_SECRET": "env-secret-value"},
    )
    assert result.exit_code == 0, result.output
    assert "secret stored" in result.output and "env-secret-value" not in result.output
    secret_file = tmp_path / "secret"
    secret_file.write_text("file-secret-value\n")
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"callback_secret": "cb-secret-value"}))
    result = _cli(
        dsn,
        "warehouses",
        "set-wms",
        "4210",
        "http",
        "--url",
        "https://wms.example",
        "--secret-file",
        str(secret_file),
        "--settings-file",
        str(settings_file),
    )
    assert result.exit_code == 0, result.output
    assert _exec(
        dsn, "SELECT secret, settings FROM orderdb.warehouse_wms WHERE warehouse_id = 4210"
    ) == [("file-secret-value", {"callback_secret": "cb-secret-value"})]

    listed = _cli(dsn, "warehouses", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert "secret-value" not in listed.output
    row = next(r for r in json.loads(listed.stdout) if r["warehouse_id"] == 4210)
    assert row["has_secret"] is True and row["settings"] == {"callback_secret": "***"}
    assert "secret-value" not in _cli(dsn, "warehouses", "list").output

    refused = _cli(dsn, "warehouses", "set-wms", "4210", "sim", "--setting", "callback_secret=x")
    assert refused.exit_code == 2 and "--settings-file" in refused.output
    unknown = _cli(dsn, "warehouses", "set-wms", "4210", "nope")
    assert unknown.exit_code == 2 and "available:" in unknown.output
    missing = _cli(dsn, "warehouses", "set-wms", "4299", "sim")
    assert missing.exit_code == 3 and "warehouse 4299 not found" in missing.output
    bad_url = _cli(dsn, "warehouses", "set-wms", "4210", "http", "--url", "ftp://x")
    assert bad_url.exit_code == 2 and "url must be" in bad_url.output


def test_retry_exit_statuses_and_dead_listing(wms_dsn: str) -> None:
    dsn = wms_dsn
    assert _cli(dsn, "wms-dispatch", "retry", "987654321").exit_code == 3
    with psycopg.connect(dsn, autocommit=True) as conn:
        order_id = _order(conn, FLAKY_WAREHOUSE, {})
        conn.execute("SELECT FROM orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
        conn.execute("SELECT FROM orderdb.transition_order(%s, 'dispatched', 2)", (order_id,))
        ((command_id,),) = conn.execute(
            "SELECT command_id FROM orderdb.wms_commands WHERE order_id = %s", (order_id,)
        ).fetchall()
    not_dead = _cli(dsn, "wms-dispatch", "retry", str(command_id))
    assert not_dead.exit_code == 4 and "only a dead command" in not_dead.output
    _exec(dsn, "SELECT FROM orderdb.claim_wms_commands('t', 1000, 60)")
    assert _exec(
        dsn, "SELECT orderdb.fail_wms_command(%s, 't', 1, 'HTTP 422', true)", (command_id,)
    ) == [("dead",)]
    dead = json.loads(_cli(dsn, "wms-dispatch", "dead", "--json").stdout)
    assert [d["command_id"] for d in dead if d["order_id"] == order_id] == [command_id]
    retried = _cli(dsn, "wms-dispatch", "retry", str(command_id), "--json")
    assert retried.exit_code == 0, retried.output
    assert json.loads(retried.stdout) == {
        "command_id": command_id,
        "kind": "create",
        "order_id": order_id,
        "warehouse_id": FLAKY_WAREHOUSE,
        "status": "pending",
    }


def test_dispatch_once_with_the_sim_wms_leaves_a_complete_loop(db_dsn: str) -> None:
    """`orderdb warehouses set-wms W sim` and `orderdb wms-dispatch --once`: the order is sent,
    the simulated warehouse calls back PICKED, PACKED, SHIPPED, the order is shipped."""
    dsn = db_dsn
    _exec(dsn, "SELECT FROM orderdb.receive_stock(4220, %s, 10)", (SKU,))
    assert (
        _cli(
            dsn, "warehouses", "set-wms", "4220", "sim", "--setting", "delay_seconds=0.02"
        ).exit_code
        == 0
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        order_id = _order(conn, 4220, {"ship_to": {**SHIP_TO, "line2": "Room 1"}})
        conn.execute("SELECT FROM orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
        conn.execute("SELECT FROM orderdb.transition_order(%s, 'dispatched', 2)", (order_id,))
    result = _cli(dsn, "wms-dispatch", "--once", "--workers", "2", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["done"] >= 1 and summary["dead"] == 0
    ((status, doc),) = _exec(
        dsn,
        "SELECT status, orderdb.get_order(order_id) FROM orderdb.orders WHERE order_id = %s",
        (order_id,),
    )
    assert status == "shipped"
    assert doc["wms_order_id"].startswith("SIM-")
    # the typed client and `orderdb order show` carry it too
    from orderdb import Client

    with Client.connect(dsn, max_size=1) as client:
        assert client.get_order(order_id).wms_order_id == doc["wms_order_id"]
    shown = _cli(dsn, "order", "show", str(order_id))
    assert shown.exit_code == 0, shown.output
    assert "WMS order id" in shown.stdout and doc["wms_order_id"] in shown.stdout


# -- what operators see ------------------------------------------------------------------------


def test_operators_see_the_queue_in_the_monitor_the_exporter_and_the_board(db_dsn: str) -> None:
    import httpx

    from orderdb.ops.exporter import metrics_from_snapshot
    from orderdb.ops.monitor import render, snapshot
    from orderdb.web import WebServer

    dsn = db_dsn
    warehouse = 4230
    _exec(dsn, "SELECT FROM orderdb.receive_stock(%s, %s, 10)", (warehouse, SKU))
    _exec(dsn, "SELECT FROM orderdb.set_warehouse_wms(%s, 'http')", (warehouse,))
    with psycopg.connect(dsn, autocommit=True) as conn:
        first, second = (_order(conn, warehouse, {}) for _ in range(2))
        for order_id in (first, second):
            conn.execute("SELECT FROM orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
            conn.execute("SELECT FROM orderdb.transition_order(%s, 'dispatched', 2)", (order_id,))
        ((dead_id,),) = conn.execute(
            "SELECT command_id FROM orderdb.wms_commands WHERE order_id = %s", (first,)
        ).fetchall()
        conn.execute("SELECT FROM orderdb.claim_wms_commands('ops', 1000, 60)")
        conn.execute(
            "SELECT orderdb.fail_wms_command(%s, 'ops', 1, 'HTTP 422: bad address', true)",
            (dead_id,),
        )
        conn.execute(
            "SELECT orderdb.release_wms_commands('ops', array_agg(command_id))"
            " FROM orderdb.wms_commands WHERE order_id = %s",
            (second,),
        )
        snap = snapshot(conn)
    row = next(r for r in snap["wms_backlog"] if r["warehouse_id"] == warehouse)
    assert (row["pending"], row["dead"]) == (1, 1)
    assert any(
        a["source"] == "wms" and a["subject"] == f"warehouse {warehouse}" for a in snap["alerts"]
    )

    families = {m.name: m for m in metrics_from_snapshot(snap)}
    samples = {
        (name, s.labels.get("warehouse")): s.value
        for name in ("orderdb_wms_commands_pending", "orderdb_wms_commands_dead")
        for s in families[name].samples
    }
    assert samples[("orderdb_wms_commands_pending", str(warehouse))] == 1.0
    assert samples[("orderdb_wms_commands_dead", str(warehouse))] == 1.0
    assert "orderdb_wms_oldest_pending_seconds" in families

    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(render(snap))
    assert "WMS queue" in console.export_text()

    with WebServer(dsn, port=0, board_ttl=0.0) as server, httpx.Client(base_url=server.url) as http:
        board = http.get("/api/ops", params={"warehouse": warehouse}).json()
        assert board["wms_backlog"]["error"] is None
        assert [
            (r["warehouse_id"], r["pending"], r["dead"], r["level"])
            for r in board["wms_backlog"]["rows"]
        ] == [(warehouse, 1, 1, "critical")]
        page = http.get("/ops", params={"warehouse": warehouse})
        assert page.status_code == 200
        assert 'data-testid="wms-backlog"' in page.text
        assert "orderdb wms-dispatch retry ID" in page.text


class OddWms:
    """Answers what the database cannot store (an order id of 300 characters), or what JSON
    cannot hold as such (a Decimal, a datetime)."""

    name = "odd"

    def send(self, command: wms.WmsCommand) -> wms.WmsAccepted:
        from datetime import UTC, datetime
        from decimal import Decimal

        if command.payload.get("priority") == "express":
            return wms.WmsAccepted("W" * 300, {})
        return wms.WmsAccepted(
            "ODD-1", {"fee": Decimal("1.50"), "at": datetime(2026, 1, 1, tzinfo=UTC)}
        )

    def close(self) -> None:
        pass


def test_an_answer_the_database_refuses_is_a_dead_letter_not_a_dead_worker(db_dsn: str) -> None:
    dsn = db_dsn
    warehouse = 4240
    _exec(dsn, "SELECT FROM orderdb.receive_stock(%s, %s, 10)", (warehouse, SKU))
    _exec(dsn, "SELECT FROM orderdb.set_warehouse_wms(%s, 'odd')", (warehouse,))
    with psycopg.connect(dsn, autocommit=True) as conn:
        odd = _order(conn, warehouse, {"priority": "express"})
        plain = _order(conn, warehouse, {})
        for order_id in (odd, plain):
            conn.execute("SELECT FROM orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
            conn.execute("SELECT FROM orderdb.transition_order(%s, 'dispatched', 2)", (order_id,))
    with Dispatcher(
        dsn,
        worker="odd",
        policy=RetryPolicy(max_attempts=1),
        connector_factory=lambda _n, _c: OddWms(),
    ) as dispatcher:
        report = dispatcher.run_once()
    assert report.dead == 1 and report.done >= 1
    rows = dict(
        _exec(
            dsn,
            "SELECT order_id, row(status, left(last_error, 27), response)::text"
            " FROM orderdb.wms_commands WHERE order_id IN (%s, %s)",
            (odd, plain),
        )
    )
    assert rows[odd].startswith('(dead,"recording the answer failed"')
    assert rows[plain] == '(done,,"{""at"": ""2026-01-01 00:00:00+00:00"", ""fee"": ""1.50""}")'


# -- a dispatcher process killed in the middle of a send ----------------------------------------


def test_a_dispatcher_killed_mid_send_is_taken_over_after_its_lease(
    db_dsn: str, tmp_path: Path
) -> None:
    """A real `orderdb wms-dispatch` process, the `http` connector and a local WMS: the process
    is killed (SIGKILL) while the WMS holds its request; a second dispatcher sends the command
    again once the lease has run out, with the same idempotency key, and records the answer."""
    import http.server
    import os
    import signal
    import subprocess
    import sys

    dsn = db_dsn
    warehouse = 4250
    arrived = threading.Event()
    release = threading.Event()
    seen: list[tuple[str, float]] = []

    class Wms(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            key = self.headers["Idempotency-Key"]
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((key, time.monotonic()))
            if len(seen) == 1:
                arrived.set()
                release.wait(30)  # the sender dies meanwhile
            body = json.dumps({"wms_order_id": f"H-{key}"}).encode()
            try:
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the first sender is gone

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Wms)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    _exec(dsn, "SELECT FROM orderdb.receive_stock(%s, %s, 10)", (warehouse, SKU))
    _exec(
        dsn,
        "SELECT FROM orderdb.set_warehouse_wms(%s, 'http', %s, 'a-shared-secret-of-the-test',"
        " NULL, '{\"timeout\": 1}')",
        (warehouse, url),
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        order_id = _order(conn, warehouse, {})
        conn.execute("SELECT FROM orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
        conn.execute("SELECT FROM orderdb.transition_order(%s, 'dispatched', 2)", (order_id,))
        ((command_id,),) = conn.execute(
            "SELECT command_id FROM orderdb.wms_commands WHERE order_id = %s", (order_id,)
        ).fetchall()
    env = {**os.environ, "ORDERDB_DSN": dsn, "PYTHONUNBUFFERED": "1"}

    def dispatcher(name: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "orderdb", "wms-dispatch", "--lease", "4", "--idle", "0.1",
             "--worker", name, "--log-format", "json"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    first = dispatcher("first")
    second: subprocess.Popen[str] | None = None
    try:
        assert arrived.wait(60), "the first dispatcher never sent the command"
        first.kill()
        first.wait(10)
        killed_at = time.monotonic()
        release.set()
        second = dispatcher("second")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ((status, attempts, wms_order_id),) = _exec(
                dsn,
                "SELECT status, attempts, wms_order_id FROM orderdb.wms_commands"
                " WHERE command_id = %s",
                (command_id,),
            )
            if status == "done":
                break
            time.sleep(0.1)
        second.send_signal(signal.SIGTERM)
        _out, err = second.communicate(timeout=30)
        assert second.returncode == 0, err
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
        server.shutdown()
    key = wms.idempotency_key(command_id)
    assert (status, attempts, wms_order_id) == ("done", 2, f"H-{key}")
    assert [k for k, _ in seen] == [key, key]
    # sent again only after the lease (4 s from the first claim) had run out
    assert seen[1][1] - seen[0][1] >= 3.5
    assert seen[1][1] > killed_at


# -- hostile input to set-wms and a broken connector -------------------------------------------


def test_set_wms_refuses_an_unreadable_secret_file_with_a_usage_error(
    wms_dsn: str, tmp_path: Path
) -> None:
    """A secret file that does not exist or is not UTF-8 text: exit 2 naming --secret-file, no
    traceback, nothing stored."""
    dsn = wms_dsn
    _exec(dsn, "SELECT FROM orderdb.receive_stock(4260, %s, 1)", (SKU,))
    binary = tmp_path / "binary.secret"
    binary.write_bytes(b"\xa4\xff\x00secret")
    for path in (str(tmp_path / "missing.secret"), str(binary)):
        result = _cli(
            dsn, "warehouses", "set-wms", "4260", "http", "--url", "https://wms.example",
            "--secret-file", path,
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        assert "--secret-file" in result.output and "Traceback" not in result.output
    assert _exec(dsn, "SELECT count(*) FROM orderdb.warehouse_wms WHERE warehouse_id = 4260") == [
        (0,)
    ]


def test_set_wms_checks_the_settings_with_the_connector_before_storing_them(
    wms_dsn: str, tmp_path: Path
) -> None:
    """Settings the connector cannot use are refused by set-wms (exit 2, naming the setting,
    nothing changed) instead of failing every command of the warehouse later."""
    dsn = wms_dsn
    _exec(dsn, "SELECT FROM orderdb.receive_stock(4261, %s, 1)", (SKU,))
    secret = {"ORDERDB_WAREHOUSES_SET_WMS_SECRET": "s3cret"}
    cases = [
        (("http",), secret, "url is required"),
        (("http", "--url", "https://wms.example/api?x=1"), secret, "query"),
        (("http", "--url", "https://wms.example"), {}, "secret is required"),
        (("http", "--url", "https://wms.example", "--setting", "timeout=0"), secret, "timeout"),
        (("sim", "--setting", "delay_seconds=-5"), {}, "delay_seconds"),
        (("sim", "--setting", "exception_rate=lots"), {}, "exception_rate"),
    ]
    for args, env, message in cases:
        result = _cli(dsn, "warehouses", "set-wms", "4261", *args, env=env)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output, result.output
    assert _exec(dsn, "SELECT count(*) FROM orderdb.warehouse_wms WHERE warehouse_id = 4261") == [
        (0,)
    ]
    good = _cli(dsn, "warehouses", "set-wms", "4261", "sim", "--setting", "delay_seconds=0.5")
    assert good.exit_code == 0, good.output
    # a bad change leaves the stored settings as they were
    bad = _cli(dsn, "warehouses", "set-wms", "4261", "sim", "--setting", "delay_seconds=-1")
    assert bad.exit_code == 2, bad.output
    assert _exec(dsn, "SELECT settings FROM orderdb.warehouse_wms WHERE warehouse_id = 4261") == [
        ({"delay_seconds": 0.5},)
    ]
    # the stored secret counts: changing only the timeout of an http warehouse is fine
    assert _cli(dsn, "warehouses", "set-wms", "4261", "http", "--url", "https://wms.example",
                env=secret).exit_code == 0  # fmt: skip
    kept = _cli(
        dsn, "warehouses", "set-wms", "4261", "http", "--url", "https://wms.example",
        "--setting", "timeout=3",
    )  # fmt: skip
    assert kept.exit_code == 0, kept.output
    assert _exec(dsn, "SELECT secret FROM orderdb.warehouse_wms WHERE warehouse_id = 4261") == [
        ("s3cret",)
    ]


def test_a_url_with_credentials_is_refused(wms_dsn: str) -> None:
    """A password in the url would be shown by `warehouses list` and in every error message:
    refused (22023 naming url); the secret has its own channel."""
    dsn = wms_dsn
    _exec(dsn, "SELECT FROM orderdb.receive_stock(4262, %s, 1)", (SKU,))
    with psycopg.connect(dsn, autocommit=True) as conn:
        for url in ("https://user:Pw-hunter7@wms.example/api", "http://tok-zq9@wms.example"):
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="url") as caught:
                conn.execute("SELECT FROM orderdb.set_warehouse_wms(4262, 'http', %s, 'x')", (url,))
            assert "hunter7" not in str(caught.value) and "zq9" not in str(caught.value)
    result = _cli(
        dsn, "warehouses", "set-wms", "4262", "http", "--url", "https://u:hunter2@wms.example",
        env={"ORDERDB_WAREHOUSES_SET_WMS_SECRET": "x"},
    )  # fmt: skip
    assert result.exit_code == 2 and "hunter2" not in result.output, result.output
    assert _exec(dsn, "SELECT count(*) FROM orderdb.warehouse_wms WHERE warehouse_id = 4262") == [
        (0,)
    ]


def test_a_connector_whose_factory_breaks_fails_its_commands_not_the_dispatcher(
    db_dsn: str,
) -> None:
    """A third-party connector that cannot even be built (its module fails to import, its
    factory raises): the warehouse's commands are retried with the error recorded, and the
    dispatcher goes on with the other warehouses' commands."""
    dsn = db_dsn
    broken, working = 4263, 4264
    for warehouse, connector in ((broken, "broken"), (working, "working")):
        _exec(dsn, "SELECT FROM orderdb.receive_stock(%s, %s, 10)", (warehouse, SKU))
        _exec(dsn, "SELECT FROM orderdb.set_warehouse_wms(%s, %s)", (warehouse, connector))
    with psycopg.connect(dsn, autocommit=True) as conn:
        orders = [_order(conn, broken, {}), _order(conn, working, {})]
        for order_id in orders:
            conn.execute("SELECT FROM orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
            conn.execute("SELECT FROM orderdb.transition_order(%s, 'dispatched', 2)", (order_id,))

    class Working:
        name = "working"

        def send(self, command: wms.WmsCommand) -> wms.WmsAccepted:
            return wms.WmsAccepted(f"OK-{command.order_id}", {})

        def close(self) -> None:
            pass

    def factory(name: str, _config: Mapping[str, Any]) -> wms.WmsConnector:
        if name == "broken":
            raise ImportError("No module named 'orderdb_wms_broken'")
        return Working()

    with Dispatcher(dsn, worker="factory", limit=1000, connector_factory=factory) as dispatcher:
        report = dispatcher.run_once()
    assert report.done >= 1 and report.retried >= 1
    rows = dict(
        _exec(
            dsn,
            "SELECT order_id, row(status, attempts, last_error)::text"
            " FROM orderdb.wms_commands WHERE order_id = ANY(%s)",
            (orders,),
        )
    )
    assert rows[orders[0]].startswith('(pending,1,"connector: ImportError: No module named')
    assert rows[orders[1]] == "(done,1,)"


def test_set_wms_settings_that_are_not_json_numbers_name_the_setting(
    wms_dsn: str, tmp_path: Path
) -> None:
    """NaN, Infinity and 1e999 are no JSON numbers for PostgreSQL: a --setting value is then
    text (which the connector refuses naming the setting), a --settings-file is refused; never
    the database's bare 22P02."""
    dsn = wms_dsn
    _exec(dsn, "SELECT FROM orderdb.receive_stock(4265, %s, 1)", (SKU,))
    for value in ("NaN", "Infinity", "-Infinity", "1e999"):
        result = _cli(
            dsn, "warehouses", "set-wms", "4265", "sim", "--setting", f"delay_seconds={value}"
        )
        assert result.exit_code == 2, result.output
        assert "delay_seconds" in result.output and "22P02" not in result.output
    noted = _cli(dsn, "warehouses", "set-wms", "4265", "sim", "--setting", "note=NaN", "--json")
    assert noted.exit_code == 0, noted.output
    assert json.loads(noted.stdout)["settings"] == {"note": "NaN"}
    settings_file = tmp_path / "settings.json"
    settings_file.write_text('{"delay_seconds": NaN}')
    refused = _cli(
        dsn, "warehouses", "set-wms", "4265", "sim", "--settings-file", str(settings_file)
    )
    assert refused.exit_code == 2 and "--settings-file" in refused.output, refused.output


def test_the_backlog_age_is_never_negative(wms_dsn: str) -> None:
    """A reader whose transaction began before a command was queued sees it with a later
    created_at than its now(): the oldest pending age is 0 then, not negative (the monitor,
    the exporter and the board read it)."""
    dsn = wms_dsn
    warehouse = 4266
    _exec(dsn, "SELECT FROM orderdb.receive_stock(%s, %s, 10)", (warehouse, SKU))
    _exec(dsn, "SELECT FROM orderdb.set_warehouse_wms(%s, 'quiet')", (warehouse,))
    with psycopg.connect(dsn) as reader:
        reader.execute("SELECT now()")  # the reader's transaction (and its now()) starts here
        time.sleep(0.2)
        with psycopg.connect(dsn, autocommit=True) as writer:
            order_id = _order(writer, warehouse, {})
            writer.execute("SELECT FROM orderdb.transition_order(%s, 'confirmed', 1)", (order_id,))
            writer.execute("SELECT FROM orderdb.transition_order(%s, 'dispatched', 2)", (order_id,))
        row = reader.execute(
            "SELECT pending, extract(epoch FROM oldest_pending_age)::float8"
            " FROM orderdb_ops.wms_backlog WHERE warehouse_id = %s",
            (warehouse,),
        ).fetchone()
    assert row is not None and row[0] == 1
    assert row[1] >= 0, row
    # nothing pending any more (only a dead command): no age, not 0
    _exec(
        dsn,
        "UPDATE orderdb.wms_commands SET status = 'dead', finished_at = now()"
        " WHERE warehouse_id = %s",
        (warehouse,),
    )
    assert _exec(
        dsn,
        "SELECT pending, dead, oldest_pending_age FROM orderdb_ops.wms_backlog"
        " WHERE warehouse_id = %s",
        (warehouse,),
    ) == [(0, 1, None)]


def test_settings_named_like_keys_are_secrets(wms_dsn: str, tmp_path: Path) -> None:
    """Many WMS and carrier APIs call their secret a key (key, appKey, signing-key), a salt or a
    check word: refused as --setting, masked by list, like secret and token."""
    dsn = wms_dsn
    _exec(dsn, "SELECT FROM orderdb.receive_stock(4267, %s, 1)", (SKU,))
    for name in ("key", "appKey", "signing-key", "app_key", "salt", "check_word", "auth_header"):
        refused = _cli(dsn, "warehouses", "set-wms", "4267", "sim", "--setting", f"{name}=s3")
        assert refused.exit_code == 2 and "--settings-file" in refused.output, (
            name,
            refused.output,
        )
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"appKey": "k-value-1", "delay_seconds": 1}))
    stored = _cli(
        dsn, "warehouses", "set-wms", "4267", "sim", "--settings-file", str(settings_file)
    )
    assert stored.exit_code == 0, stored.output
    listed = _cli(dsn, "warehouses", "list", "--json")
    row = next(r for r in json.loads(listed.stdout) if r["warehouse_id"] == 4267)
    assert row["settings"] == {"appKey": "***", "delay_seconds": 1}
    assert "k-value-1" not in listed.output and "k-value-1" not in stored.output
