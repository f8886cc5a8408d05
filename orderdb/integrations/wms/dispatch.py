"""The WMS command dispatcher (``orderdb wms-dispatch``).

One round: claim due commands (``orderdb.claim_wms_commands``: several dispatchers share the
queue through FOR UPDATE SKIP LOCKED, each command leased to one of them), send each through its
warehouse's connector (create, update, cancel) or its carrier's plugin (waybill:
``create_waybill``; cancel_waybill: ``cancel``), and record the outcome:
``orderdb.complete_wms_command`` (the WMS's order id, the tracking number, the answer) or
``orderdb.fail_wms_command`` (the error; the database backs off with jitter and dead-letters a
command that keeps failing or that the WMS refused for good). No business rule lives here: which
commands exist, which are due, in which order, how long to wait and what a waybill records are
decided by SQL (sql/42_wms_commands.sql).

Leases: a claimed command is the dispatcher's until its lease runs out; one whose dispatcher
died is claimed again after that by another (the WMS dedupes by the idempotency key
``orderdb-<command_id>``). A command is sent only while at least ``max_send_seconds`` of its lease
is left (by default half of it), so a send that takes at most that long never overlaps the
next holder's; the rest of a batch is given back (``orderdb.release_wms_commands``). Set the
lease to at least twice the longest send (the connector's timeout).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from orderdb.integrations import carriers as carrier_plugins
from orderdb.integrations import wms
from orderdb.integrations.carriers import (
    Address,
    CarrierError,
    CarrierPlugin,
    Waybill,
    WaybillRequest,
)

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 10
DEFAULT_LEASE_SECONDS = 120
#: what is kept of an error text or of an answer (the database bounds them too)
MAX_ERROR_CHARS = 2000

ConnectorFactory = Callable[[str, Mapping[str, Any]], wms.WmsConnector]
CarrierFactory = Callable[[str, Mapping[str, Any]], CarrierPlugin]


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class RetryPolicy:
    """How failed sends are retried: the first wait is ``backoff_seconds``, doubling per attempt
    up to ``backoff_max_seconds`` (each times a random 0.5..1.5); after ``max_attempts`` failed
    attempts the command is dead."""

    backoff_seconds: float = 5.0
    backoff_max_seconds: float = 3600.0
    max_attempts: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.backoff_seconds <= self.backoff_max_seconds <= 86400:
            raise ValueError("need 0 < backoff_seconds <= backoff_max_seconds <= 86400")
        if not 1 <= self.max_attempts <= 1000:
            raise ValueError("max_attempts must be between 1 and 1000")


@dataclass
class DispatchReport:
    """What the rounds of a dispatcher did."""

    claimed: int = 0
    done: int = 0
    retried: int = 0  # failed, to be sent again after the back-off
    dead: int = 0
    released: int = 0  # claimed, not sent (stopping, or too little lease left)
    lost: int = 0  # outcome ignored: the lease had run out and another dispatcher took over
    by_kind: Counter[str] = field(default_factory=Counter)
    #: the last error of each warehouse (or carrier) that failed
    last_errors: dict[str, str] = field(default_factory=dict)

    def add(self, other: DispatchReport) -> None:
        for name in ("claimed", "done", "retried", "dead", "released", "lost"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.by_kind.update(other.by_kind)
        self.last_errors.update(other.last_errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed,
            "done": self.done,
            "retried": self.retried,
            "dead": self.dead,
            "released": self.released,
            "lost": self.lost,
            "by_kind": dict(sorted(self.by_kind.items())),
            "last_errors": dict(sorted(self.last_errors.items())),
        }


@dataclass(frozen=True)
class _Failure:
    error: str
    permanent: bool = False
    retry_after: float | None = None
    response: Mapping[str, Any] | None = None


def _text(exc: BaseException) -> str:
    message = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {message}"[:MAX_ERROR_CHARS]


def _jsonable(value: Mapping[str, Any]) -> Any:
    """An answer as plain JSON (what JSON cannot hold, such as a Decimal or a datetime, as its
    text), so that a connector's answer never fails to be stored."""
    return json.loads(json.dumps(dict(value), default=str))


def _recipient(payload: Mapping[str, Any]) -> Address:
    """The waybill's recipient from the order's ship_to (blank fields where it has none: the
    carrier refuses what it cannot use, and the command dies with its answer)."""
    ship_to = payload.get("recipient") or {}
    if not isinstance(ship_to, Mapping):
        ship_to = {}

    def text(key: str) -> str:
        value = ship_to.get(key)
        return str(value) if value is not None else ""

    return Address(
        name=text("name") or f"customer {payload.get('customer_id', '')}".strip(),
        line1=text("line1"),
        city=text("city"),
        postal_code=text("postcode"),
        country=text("country") or "CN",
        phone=ship_to.get("phone") if isinstance(ship_to.get("phone"), str) else None,
        line2=ship_to.get("line2") if isinstance(ship_to.get("line2"), str) else None,
    )


class Dispatcher:
    """Claims and sends WMS commands on one database connection (not shared between threads:
    run one Dispatcher per thread; see :func:`run_workers`)."""

    def __init__(
        self,
        dsn: str,
        *,
        worker: str | None = None,
        limit: int = DEFAULT_LIMIT,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        max_send_seconds: float | None = None,
        policy: RetryPolicy | None = None,
        carrier_config: Mapping[str, Mapping[str, Any]] | None = None,
        connector_factory: ConnectorFactory | None = None,
        carrier_factory: CarrierFactory | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        if not 1 <= lease_seconds <= 86400:
            raise ValueError("lease_seconds must be between 1 and 86400")
        self.dsn = dsn
        #: its logger (``orderdb wms-dispatch --dsn PROXY``: one naming the shard)
        self.log = logger or log
        self.worker = worker or default_worker_name()
        self.limit = limit
        self.lease_seconds = lease_seconds
        self.max_send_seconds = (
            lease_seconds / 2 if max_send_seconds is None else float(max_send_seconds)
        )
        if not 0 < self.max_send_seconds <= lease_seconds:
            raise ValueError("max_send_seconds must be positive and at most the lease")
        self.policy = policy or RetryPolicy()
        self.carrier_config = dict(carrier_config or {})
        self._connector_factory = connector_factory or wms.load
        self._carrier_factory = carrier_factory or (
            lambda code, config: carrier_plugins.load(code, config)
        )
        #: warehouse_id -> (the settings' updated_at, connector): rebuilt when the settings change
        self._connectors: dict[int, tuple[Any, wms.WmsConnector]] = {}
        self._carriers: dict[str, CarrierPlugin] = {}
        self._conn: psycopg.Connection[dict[str, Any]] | None = None

    # -- connections -------------------------------------------------------------------------

    def _db(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True, row_factory=dict_row)
        return self._conn

    def close(self) -> None:
        """Closes the connectors (the sim waits, bounded, for its callbacks) and the connection."""
        for _, connector in self._connectors.values():
            try:
                connector.close()
            except Exception:
                self.log.exception("closing WMS connector %s failed", connector.name)
        self._connectors.clear()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one round ---------------------------------------------------------------------------

    def run_once(self, stop: threading.Event | None = None) -> DispatchReport:
        """Claims up to ``limit`` due commands and sends them; returns what happened."""
        report = DispatchReport()
        started = time.monotonic()
        rows = (
            self._db()
            .execute(
                "SELECT * FROM orderdb.claim_wms_commands(%s, %s, %s)",
                (self.worker, self.limit, self.lease_seconds),
            )
            .fetchall()
        )
        report.claimed = len(rows)
        lease_end = started + self.lease_seconds
        for index, row in enumerate(rows):
            left = lease_end - time.monotonic()
            if (stop is not None and stop.is_set()) or left < self.max_send_seconds:
                report.released += self._release([r["command_id"] for r in rows[index:]])
                break
            self._dispatch(row, report)
        return report

    def run(self, stop: threading.Event, idle_seconds: float = 1.0) -> DispatchReport:
        """Rounds until ``stop`` is set; sleeps ``idle_seconds`` when nothing was due. A lost
        database connection is logged and retried after the idle time."""
        total = DispatchReport()
        while not stop.is_set():
            try:
                report = self.run_once(stop)
            except psycopg.OperationalError as exc:
                self.log.warning("wms-dispatch %s: database unavailable: %s", self.worker, exc)
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                stop.wait(idle_seconds)
                continue
            total.add(report)
            if report.claimed < self.limit:
                stop.wait(idle_seconds)
        return total

    def _release(self, command_ids: list[int]) -> int:
        row = (
            self._db()
            .execute(
                "SELECT orderdb.release_wms_commands(%s, %s::bigint[]) AS released",
                (self.worker, command_ids),
            )
            .fetchone()
        )
        return int(row["released"]) if row else 0

    # -- one command -------------------------------------------------------------------------

    def _dispatch(self, row: Mapping[str, Any], report: DispatchReport) -> None:
        kind = row["kind"]
        report.by_kind[kind] += 1
        outcome: wms.WmsAccepted | _Failure
        tracking_number: str | None = None
        if kind in ("waybill", "cancel_waybill"):
            outcome, tracking_number = self._carrier_send(row)
        else:
            outcome = self._wms_send(row)

        if isinstance(outcome, _Failure):
            status = self._fail(row, outcome)
            where = (
                f"carrier {row['carrier']}"
                if kind in ("waybill", "cancel_waybill")
                else f"warehouse {row['warehouse_id']}"
            )
            report.last_errors[where] = outcome.error
            log_at = logging.ERROR if status == "dead" else logging.WARNING
            self.log.log(
                log_at,
                "%s %s of order %s (command %s, attempt %s): %s -> %s",
                where,
                kind,
                row["order_no"],
                row["command_id"],
                row["attempt"],
                outcome.error,
                status or "lease lost",
            )
        else:
            try:
                status = self._complete(row, outcome, tracking_number)
            except psycopg.OperationalError:
                raise  # the connection is gone: run() reconnects, the lease brings it back
            except psycopg.Error as exc:
                # the database refused the answer (an id too long, ...): a failed attempt, so
                # the command ends as a dead letter that says why instead of stopping the worker
                error = f"recording the answer failed: {_text(exc)}"
                report.last_errors[f"warehouse {row['warehouse_id']}"] = error
                self.log.error(
                    "command %s of order %s: %s", row["command_id"], row["order_no"], error
                )
                status = self._fail(row, _Failure(error))
            self.log.debug(
                "%s command %s of order %s -> %s", kind, row["command_id"], row["order_no"], status
            )
        if status is None:
            report.lost += 1
        elif status == "done":
            report.done += 1
        elif status == "dead":
            report.dead += 1
        else:
            report.retried += 1

    def _connector(self, row: Mapping[str, Any]) -> wms.WmsConnector:
        warehouse_id = int(row["warehouse_id"])
        if row["connector"] is None:
            raise LookupError(f"warehouse {warehouse_id} has no WMS connector configured")
        cached = self._connectors.get(warehouse_id)
        if cached is not None and cached[0] == row["config_updated_at"]:
            return cached[1]
        config = {**(row["config"] or {}), "warehouse_id": warehouse_id, "dsn": self.dsn}
        connector = self._connector_factory(row["connector"], config)
        if cached is not None:
            try:
                cached[1].close()
            except Exception:
                self.log.exception("closing the old connector of warehouse %s failed", warehouse_id)
        self._connectors[warehouse_id] = (row["config_updated_at"], connector)
        return connector

    def _wms_send(self, row: Mapping[str, Any]) -> wms.WmsAccepted | _Failure:
        try:
            connector = self._connector(row)
        except Exception as exc:
            # a connector missing, misconfigured or broken (its module fails to import, its
            # factory raises): retried (it may be installed or fixed), and dead after
            # max_attempts like any failure; the other warehouses' commands go on
            if not isinstance(exc, LookupError | ValueError | TypeError):
                self.log.exception("building WMS connector %s failed", row["connector"])
            return _Failure(f"connector: {_text(exc)}")
        command = wms.WmsCommand(
            command_id=int(row["command_id"]),
            kind=row["kind"],
            warehouse_id=int(row["warehouse_id"]),
            order_id=int(row["order_id"]),
            order_no=row["order_no"],
            wms_order_id=row["wms_order_id"],
            payload=row["payload"],
            attempt=int(row["attempt"]),
        )
        try:
            accepted = connector.send(command)
        except wms.WmsRejected as exc:
            return _Failure(_text(exc), permanent=True)
        except wms.WmsUnavailable as exc:
            return _Failure(_text(exc), retry_after=exc.retry_after)
        except wms.WmsError as exc:
            return _Failure(_text(exc))
        except Exception as exc:  # a connector's bug must not stop the other commands
            self.log.exception(
                "WMS connector %s failed on command %s", row["connector"], row["command_id"]
            )
            return _Failure(f"connector error: {_text(exc)}")
        if row["kind"] == "create" and not accepted.wms_order_id:
            return _Failure(
                "the WMS accepted the create without an order id (wms_order_id)",
                response=accepted.response,
            )
        return accepted

    def _carrier(self, code: str) -> CarrierPlugin:
        plugin = self._carriers.get(code)
        if plugin is None:
            plugin = self._carrier_factory(code, self.carrier_config.get(code) or {})
            self._carriers[code] = plugin
        return plugin

    def _carrier_send(
        self, row: Mapping[str, Any]
    ) -> tuple[wms.WmsAccepted | _Failure, str | None]:
        code = row["carrier"]
        tracking_number = row["tracking_number"]
        payload = row["payload"]
        if row["kind"] == "waybill" and tracking_number:
            # made on an earlier attempt, waiting to be recorded (the order was on hold)
            return wms.WmsAccepted(None, {"tracking_number": tracking_number}), tracking_number
        try:
            plugin = self._carrier(code)
        except Exception as exc:  # as for a connector: this command fails, not the dispatcher
            if not isinstance(exc, LookupError | ValueError | TypeError):
                self.log.exception("building carrier plugin %s failed", code)
            return _Failure(f"carrier plugin: {_text(exc)}"), None
        try:
            if row["kind"] == "waybill":
                waybill = plugin.create_waybill(
                    WaybillRequest(
                        order_id=int(row["order_id"]),
                        warehouse_id=int(row["warehouse_id"]),
                        recipient=_recipient(payload),
                        reference=row["order_no"],
                        options={"idempotency_key": wms.idempotency_key(int(row["command_id"]))},
                    )
                )
                answer = {
                    "carrier": waybill.carrier,
                    "tracking_number": waybill.tracking_number,
                    "label_url": waybill.label_url,
                    "raw": dict(waybill.raw),
                }
                return wms.WmsAccepted(None, answer), waybill.tracking_number
            if not self._cancel_waybill(plugin, row, tracking_number):
                return (
                    _Failure(
                        f"carrier {code} says waybill {tracking_number} can no longer be "
                        "cancelled (picked up)",
                        permanent=True,
                    ),
                    None,
                )
            return wms.WmsAccepted(None, {"cancelled": tracking_number}), None
        except CarrierError as exc:
            return _Failure(_text(exc)), None
        except Exception as exc:  # a plugin's bug must not stop the other commands
            self.log.exception("carrier plugin %s failed on command %s", code, row["command_id"])
            return _Failure(f"carrier plugin error: {_text(exc)}"), None

    def _cancel_waybill(
        self, plugin: CarrierPlugin, row: Mapping[str, Any], tracking_number: str
    ) -> bool:
        """Cancels the waybill of a cancel_waybill command. A plugin that cancels by what its
        booking answered (SF: the booking's orderId, which the waybill number does not give) has
        ``cancel_waybill(waybill)`` and gets the Waybill as the booking answered it, read from
        the waybill command (booked by any dispatcher, in any process); else ``cancel``."""
        cancel_waybill = getattr(plugin, "cancel_waybill", None)
        waybill_command_id = (row["payload"] or {}).get("waybill_command_id")
        if not callable(cancel_waybill) or waybill_command_id is None:
            return bool(plugin.cancel(tracking_number))
        answer = (
            self._db()
            .execute(
                "SELECT w.response FROM orderdb.wms_commands w WHERE w.command_id = %s::bigint",
                (str(waybill_command_id),),
            )
            .fetchone()
        )
        booked = (answer or {}).get("response") or {}
        raw = booked.get("raw") if isinstance(booked, Mapping) else None
        label_url = booked.get("label_url") if isinstance(booked, Mapping) else None
        waybill = Waybill(
            carrier=str(row["carrier"]),
            tracking_number=tracking_number,
            label_url=label_url if isinstance(label_url, str) else None,
            raw=raw if isinstance(raw, Mapping) else {},
        )
        return bool(cancel_waybill(waybill))

    # -- outcomes ----------------------------------------------------------------------------

    def _complete(
        self, row: Mapping[str, Any], accepted: wms.WmsAccepted, tracking_number: str | None
    ) -> str | None:
        result = (
            self._db()
            .execute(
                "SELECT orderdb.complete_wms_command(%s, %s, %s, %s, %s, %s) AS status",
                (
                    row["command_id"],
                    self.worker,
                    row["attempt"],
                    accepted.wms_order_id,
                    tracking_number,
                    Jsonb(_jsonable(accepted.response)),
                ),
            )
            .fetchone()
        )
        return result["status"] if result else None

    def _fail(self, row: Mapping[str, Any], failure: _Failure) -> str | None:
        retry_after = failure.retry_after
        if retry_after is not None:
            retry_after = min(max(float(retry_after), 0.0), 86400.0)
        result = (
            self._db()
            .execute(
                "SELECT orderdb.fail_wms_command(%s, %s, %s, %s, %s, %s, %s::numeric,"
                " %s::numeric, %s, %s::numeric) AS status",
                (
                    row["command_id"],
                    self.worker,
                    row["attempt"],
                    failure.error,
                    failure.permanent,
                    Jsonb(_jsonable(failure.response)) if failure.response is not None else None,
                    self.policy.backoff_seconds,
                    self.policy.backoff_max_seconds,
                    self.policy.max_attempts,
                    retry_after,
                ),
            )
            .fetchone()
        )
        return result["status"] if result else None


def run_workers(
    make: Callable[[int], Dispatcher],
    workers: int,
    *,
    once: bool,
    stop: threading.Event,
    idle_seconds: float = 1.0,
) -> DispatchReport:
    """Runs ``workers`` dispatchers (``make(i)`` builds the i-th), each in its own thread with
    its own connection. ``once``: each sends what is due until nothing is left, then stops.
    Returns the sum of their reports; a worker that failed re-raises its error here."""
    total = DispatchReport()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            with make(i) as dispatcher:
                if once:
                    report = DispatchReport()
                    while not stop.is_set():
                        round_ = dispatcher.run_once(stop)
                        report.add(round_)
                        if round_.claimed == 0:
                            break
                else:
                    report = dispatcher.run(stop, idle_seconds)
            with lock:
                total.add(report)
        except BaseException as exc:
            with lock:
                errors.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=work, args=(i,), name=f"wms-dispatch-{i}", daemon=True)
        for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return total


__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_LIMIT",
    "DispatchReport",
    "Dispatcher",
    "RetryPolicy",
    "default_worker_name",
    "run_workers",
]
