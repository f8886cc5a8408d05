"""The ``sim`` WMS connector: a simulated warehouse, in process, for ``orderdb demo`` and the tests.

It accepts every well-formed command. An accepted create answers ``wms_order_id``
``SIM-<order_no>`` and then plays the warehouse: after ``delay_seconds`` per step it calls back
PICKED, PACKED and SHIPPED (with ``{"carrier": "SIM", "tracking_number": ...}``, a number the
simulated carrier ``SIM`` tells a story for, so ``orderdb poll-carriers`` takes the parcel to
delivered) — or, for a share ``exception_rate`` of the orders, an EXCEPTION instead (the order
goes on hold; with ``hold_incomplete_addresses``, an order whose ``ship_to`` has no ``line2``
gets EXCEPTION ADDRESS_INCOMPLETE). A share ``unavailable_rate`` of the sends fails as an outage
would (:class:`~orderdb.integrations.wms.WmsUnavailable`), to show the dispatcher's retries.

Callbacks go where a real WMS's would: with ``callback_url`` (the full URL of the ingestion
server's ``POST /hooks/wms``) they are POSTed there, signed with ``callback_secret``
(``X-OrderDB-Signature``; ``callback_integration`` names the integration when it is not ``wms``);
without it they call ``orderdb.wms_callback(..., p_source => 'sim')`` on ``dsn`` directly (the
same effect; that DSN's role needs EXECUTE on it). Event ids are ``sim-<command_id>-<event type>``:
a create sent twice (a lost answer, another dispatcher process) never lands twice.

Idempotent on ``command_id``: a command sent again gets the first answer and schedules nothing.
An update is accepted (the update of an order held by its EXCEPTION resumes the pick: the fix
arrived); a cancel stops the callbacks not yet made, or is refused
(:class:`~orderdb.integrations.wms.WmsRejected`) once SHIPPED was called back.
:meth:`SimWmsConnector.close` waits (at most ``close_timeout`` seconds) for every scheduled
callback, so ``orderdb wms-dispatch --once`` leaves a complete loop behind.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import math
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from orderdb import signing
from orderdb.integrations.wms import (
    COMMAND_KINDS,
    WmsAccepted,
    WmsCommand,
    WmsRejected,
    WmsUnavailable,
)

log = logging.getLogger(__name__)

NAME = "sim"
SOURCE = "sim"  # p_source of the callbacks made on the database directly
CARRIER = "SIM"
STEPS = ("PICKED", "PACKED", "SHIPPED")
EXCEPTION_TYPES = ("STOCK_NOT_FOUND", "DAMAGED_IN_PICKING")
DEFAULTS: dict[str, Any] = {
    "delay_seconds": 0.2,
    "exception_rate": 0.0,
    "unavailable_rate": 0.0,
    "seed": 42,
    "workers": 4,
    "close_timeout": 60.0,
    "callback_integration": "wms",
}
#: tries of one callback when the database or the ingestion server is away (then it is dropped)
CALLBACK_TRIES = 5
_TRANSIENT_SQLSTATES = ("40001", "40P01", "55P03", "57P01", "57P02", "57P03")


def _number(config: Mapping[str, Any], name: str, low: float, high: float) -> float:
    raw = config.get(name)
    value = DEFAULTS[name] if raw is None else raw
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(number) or not low <= number <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return number


#: how many answers and order plans a simulated warehouse remembers (the oldest go first)
MEMORY = 100_000


def _forget_oldest(memory: dict[int, Any]) -> None:
    while len(memory) > MEMORY:
        del memory[next(iter(memory))]


def _flag(config: Mapping[str, Any], name: str) -> bool:
    value = config.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


def tracking_number(order_id: int, when: datetime) -> str:
    """The simulated carrier's number for a parcel of ``order_id`` shipped at ``when``:
    ``SIM`` + the epoch second (where the carrier's story starts) + 6 digits of the order id."""
    return f"SIM{int(when.timestamp()):010d}{order_id % 10**6:06d}"


@dataclass(order=True)
class _Step:
    due: float
    seq: int
    order_id: int = field(compare=False)
    command_id: int = field(compare=False)  # the create that planned it
    index: int = field(compare=False)  # position in the plan


@dataclass
class _Plan:
    """What the simulated warehouse does with one order (the latest accepted create)."""

    command_id: int
    order_no: str
    events: tuple[str, ...]
    exception_type: str | None = None
    done: int = 0  # callbacks made
    cancelled: bool = False
    failed: bool = False

    @property
    def shipped(self) -> bool:
        return "SHIPPED" in self.events[: self.done]

    @property
    def held(self) -> bool:
        """Whether the order was called back EXCEPTION (on hold until an update fixes it)."""
        return "EXCEPTION" in self.events[: self.done]


class SimWarehouse:
    """One simulated warehouse system: what it was sent, its plans and the workers that make
    its callbacks. Every connector of a process with the same settings shares one (several
    dispatcher threads are one WMS to the orders). Safe to share between threads."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.delay = _number(config, "delay_seconds", 0.0, 3600.0)
        self.exception_rate = _number(config, "exception_rate", 0.0, 1.0)
        self.unavailable_rate = _number(config, "unavailable_rate", 0.0, 1.0)
        self.close_timeout = _number(config, "close_timeout", 0.0, 86400.0)
        self.workers = int(_number(config, "workers", 1, 32))
        self.hold_incomplete_addresses = _flag(config, "hold_incomplete_addresses")
        seed = config.get("seed")
        self.seed = str(DEFAULTS["seed"] if seed is None else seed)
        self.callback_url = str(config.get("callback_url") or "") or None
        secret = config.get("callback_secret")
        self._callback_secret = str(secret) if secret else None
        self.callback_integration = str(
            config.get("callback_integration") or DEFAULTS["callback_integration"]
        )
        dsn = config.get("dsn")
        self.dsn = str(dsn) if dsn else None
        if self.callback_url is not None:
            if not self.callback_url.startswith(("http://", "https://")):
                raise ValueError(
                    f"callback_url must be an http or https URL, got {self.callback_url!r}"
                )
            if self._callback_secret is None:
                raise ValueError(
                    "callback_secret is required with callback_url: the secret of the WMS "
                    "integration the ingestion server verifies X-OrderDB-Signature with"
                )
        elif self.dsn is None:
            raise ValueError(
                "callback_url or dsn is required: where the simulated WMS reports "
                "PICKED, PACKED, SHIPPED"
            )
        self._lock = threading.Condition()
        self._accepted: dict[int, WmsAccepted] = {}
        self._plans: dict[int, _Plan] = {}
        self._heap: list[_Step] = []
        self._seq = itertools.count()
        self._running = 0  # callbacks being made right now
        self._threads: list[threading.Thread] = []
        self._generation = 0  # close() starts a new one: the workers of the old one stop
        self._local = threading.local()
        #: callbacks made, by event type (the demo and the tests show them)
        self.callbacks: Counter[str] = Counter()
        #: callbacks that failed for good (logged); their order's later steps are dropped
        self.failures: list[str] = []

    # -- commands ----------------------------------------------------------------------------

    def send(self, command: WmsCommand) -> WmsAccepted:
        if command.kind not in COMMAND_KINDS:
            raise WmsRejected(
                f"command {command.command_id}: kind {command.kind!r} is not one of "
                f"{', '.join(COMMAND_KINDS)}"
            )
        with self._lock:
            first = self._accepted.get(command.command_id)
            if first is not None:
                return first
            outage = random.Random(f"{self.seed}:{command.command_id}:{command.attempt}:down")
            if self.unavailable_rate and outage.random() < self.unavailable_rate:
                raise WmsUnavailable(
                    f"simulated WMS outage (command {command.command_id}, "
                    f"attempt {command.attempt})"
                )
            if command.kind == "create":
                accepted = self._create(command)
            elif command.kind == "update":
                accepted = self._update(command)
            else:
                accepted = self._cancel(command)
            self._accepted[command.command_id] = accepted
            _forget_oldest(self._accepted)
            return accepted

    def drain(self) -> None:
        """Waits (at most ``close_timeout`` seconds) until every scheduled callback is made;
        callbacks still scheduled then are dropped (logged)."""
        deadline = time.monotonic() + self.close_timeout
        with self._lock:
            while self._heap or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning(
                        "simulated WMS: %d callback(s) not made within %g s; dropped",
                        len(self._heap) + self._running,
                        self.close_timeout,
                    )
                    self._heap.clear()
                    break
                self._lock.wait(min(left, 0.5))

    def stop(self) -> None:
        """Stops the workers (they close their connections); a later send starts new ones."""
        with self._lock:
            self._generation += 1
            self._lock.notify_all()
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout=max(5.0, 2 * self.delay))

    def pending(self) -> int:
        """Callbacks scheduled or being made."""
        with self._lock:
            return len(self._heap) + self._running

    # -- commands (called with the lock held) ----------------------------------------------------

    def _create(self, command: WmsCommand) -> WmsAccepted:
        items = command.payload.get("items")
        if not isinstance(items, list) or not items:
            raise WmsRejected(
                f"command {command.command_id}: the order document of {command.order_no} has "
                "no items; the simulated WMS has nothing to pick"
            )
        plan = self._address_hold(command)
        if plan is None:
            draw = random.Random(f"{self.seed}:{command.command_id}:exception")
            if self.exception_rate and draw.random() < self.exception_rate:
                plan = _Plan(
                    command.command_id,
                    command.order_no,
                    ("EXCEPTION",),
                    exception_type=draw.choice(EXCEPTION_TYPES),
                )
            else:
                plan = _Plan(command.command_id, command.order_no, STEPS)
        self._start(command.order_id, plan)
        wms_order_id = f"SIM-{command.order_no}"
        return WmsAccepted(wms_order_id, {"wms_order_id": wms_order_id, "result": "accepted"})

    def _address_hold(self, command: WmsCommand) -> _Plan | None:
        """With ``hold_incomplete_addresses``: the EXCEPTION ADDRESS_INCOMPLETE plan of an order
        whose ship_to has no line2 (building and flat), else None."""
        ship_to = command.payload.get("ship_to")
        if not self.hold_incomplete_addresses or not isinstance(ship_to, dict):
            return None
        if ship_to.get("line2"):
            return None
        return _Plan(
            command.command_id,
            command.order_no,
            ("EXCEPTION",),
            exception_type="ADDRESS_INCOMPLETE",
        )

    def _start(self, order_id: int, plan: _Plan) -> None:
        self._unschedule(order_id)  # a newer plan replaces an older one
        self._plans.pop(order_id, None)  # to the end: the most recent are kept
        self._plans[order_id] = plan
        _forget_oldest(self._plans)
        self._schedule(order_id, plan, 0)

    def _update(self, command: WmsCommand) -> WmsAccepted:
        plan = self._plans.get(command.order_id)
        if plan is not None and plan.cancelled:
            raise WmsRejected(f"{self._wms_id(command)} was cancelled; it cannot be updated")
        wms_order_id = self._wms_id(command)
        result = "updated"
        if plan is not None and plan.held and plan.command_id != command.command_id:
            # the fix of what held the order (an amended address): pick it after all
            self._start(
                command.order_id,
                self._address_hold(command) or _Plan(command.command_id, command.order_no, STEPS),
            )
            result = "updated; picking resumed"
        return WmsAccepted(wms_order_id, {"wms_order_id": wms_order_id, "result": result})

    def _cancel(self, command: WmsCommand) -> WmsAccepted:
        wms_order_id = self._wms_id(command)
        plan = self._plans.get(command.order_id)
        if plan is not None:
            if plan.shipped:
                raise WmsRejected(f"{wms_order_id} has already shipped; it cannot be cancelled")
            plan.cancelled = True
            self._unschedule(command.order_id)
        return WmsAccepted(wms_order_id, {"wms_order_id": wms_order_id, "result": "cancelled"})

    @staticmethod
    def _wms_id(command: WmsCommand) -> str:
        return command.wms_order_id or f"SIM-{command.order_no}"

    def _unschedule(self, order_id: int) -> None:
        """Drops the order's scheduled callbacks (one being made finishes; no next is planned)."""
        kept = [step for step in self._heap if step.order_id != order_id]
        if len(kept) != len(self._heap):
            heapq.heapify(kept)
            self._heap = kept
            self._lock.notify_all()

    def _schedule(self, order_id: int, plan: _Plan, index: int) -> None:
        step = _Step(
            time.monotonic() + self.delay, next(self._seq), order_id, plan.command_id, index
        )
        heapq.heappush(self._heap, step)
        while len(self._threads) < self.workers:
            thread = threading.Thread(
                target=self._work,
                args=(self._generation,),
                name=f"sim-wms-{len(self._threads)}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()
        self._lock.notify()

    # -- the warehouse floor ---------------------------------------------------------------------

    def _work(self, generation: int) -> None:
        try:
            while True:
                with self._lock:
                    step = self._next_due(generation)
                    if step is None:
                        return
                    plan = self._plans.get(step.order_id)
                    if plan is None or plan.command_id != step.command_id or plan.cancelled:
                        continue  # cancelled, or replaced by a newer create
                    self._running += 1
                event_type = plan.events[step.index]
                ok = False
                try:
                    ok = self._callback(step, plan, event_type)
                finally:
                    with self._lock:
                        self._running -= 1
                        if ok:
                            plan.done = step.index + 1
                            self.callbacks[event_type] += 1
                            more = plan.done < len(plan.events)
                            current = self._plans.get(step.order_id) is plan
                            live = generation == self._generation
                            if more and current and live and not plan.cancelled:
                                self._schedule(step.order_id, plan, plan.done)
                        else:
                            plan.failed = True
                        self._lock.notify_all()
        finally:
            self._drop_connection()

    def _next_due(self, generation: int) -> _Step | None:
        """The next step whose time has come (waiting for it), or None when closed."""
        while True:
            if generation != self._generation:
                return None
            if self._heap:
                wait = self._heap[0].due - time.monotonic()
                if wait <= 0:
                    return heapq.heappop(self._heap)
                self._lock.wait(wait)
            else:
                self._lock.wait(1.0)

    def _event(self, step: _Step, plan: _Plan, event_type: str) -> tuple[str, dict[str, Any]]:
        now = datetime.now(UTC)
        payload: dict[str, Any] = {"wms_order_id": f"SIM-{plan.order_no}", "source": "sim"}
        if event_type == "SHIPPED":
            payload |= {"carrier": CARRIER, "tracking_number": tracking_number(step.order_id, now)}
        elif event_type == "EXCEPTION":
            payload |= {"exception_type": plan.exception_type, "note": "simulated WMS"}
        return now.isoformat(), payload

    def _callback(self, step: _Step, plan: _Plan, event_type: str) -> bool:
        """Makes one callback (retrying while the receiver is away); False when it failed."""
        event_id = f"sim-{step.command_id}-{event_type}"
        occurred_at, payload = self._event(step, plan, event_type)
        for attempt in range(1, CALLBACK_TRIES + 1):
            try:
                if self.callback_url is not None:
                    self._post(event_id, step.order_id, event_type, occurred_at, payload)
                else:
                    self._call(event_id, step.order_id, event_type, occurred_at, payload)
                return True
            except _Retry as exc:
                if attempt == CALLBACK_TRIES:
                    return self._failed(event_id, step.order_id, f"{exc} (gave up)")
                time.sleep(min(exc.wait if exc.wait is not None else 0.2 * 2**attempt, 5.0))
            except _Refused as exc:
                return self._failed(event_id, step.order_id, str(exc))
        return False  # pragma: no cover - the loop returns

    def _failed(self, event_id: str, order_id: int, reason: str) -> bool:
        message = f"{event_id} for order {order_id}: {reason}"
        log.warning("simulated WMS callback failed: %s", message)
        with self._lock:
            self.failures.append(message)
        return False

    def _post(
        self,
        event_id: str,
        order_id: int,
        event_type: str,
        occurred_at: str,
        payload: dict[str, Any],
    ) -> None:
        assert self.callback_url is not None and self._callback_secret is not None
        body = json.dumps(
            {
                "event_id": event_id,
                "order_id": order_id,
                "event_type": event_type,
                "timestamp": occurred_at,
                "payload": payload,
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-OrderDB-Signature": signing.hex_signature(self._callback_secret, body),
        }
        if self.callback_integration != "wms":
            headers["X-OrderDB-Integration"] = self.callback_integration
        request = urllib.request.Request(  # noqa: S310 - the URL is checked to be http(s)
            self.callback_url, data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                answer.read()
        except urllib.error.HTTPError as exc:
            text = exc.read(2000).decode("utf-8", "replace")
            if exc.code >= 500 or exc.code in (408, 429):
                retry_after = exc.headers.get("Retry-After")
                wait = float(retry_after) if retry_after and retry_after.isdigit() else None
                raise _Retry(f"{self.callback_url} answered {exc.code}", wait) from exc
            raise _Refused(f"{self.callback_url} answered {exc.code}: {text[:300]}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise _Retry(f"{self.callback_url}: {exc}", None) from exc

    def _call(
        self,
        event_id: str,
        order_id: int,
        event_type: str,
        occurred_at: str,
        payload: dict[str, Any],
    ) -> None:
        assert self.dsn is not None
        try:
            conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
            if conn is None or conn.closed:
                conn = psycopg.connect(self.dsn, autocommit=True, application_name="orderdb-sim")
                self._local.conn = conn
            conn.execute(
                "SELECT * FROM orderdb.wms_callback(%s, %s, %s, %s, p_source => %s)",
                (
                    event_id,
                    order_id,
                    event_type,
                    Jsonb({**payload, "occurred_at": occurred_at}),
                    SOURCE,
                ),
            )
        except psycopg.Error as exc:
            state = exc.sqlstate or ""
            lost = isinstance(exc, psycopg.OperationalError) and not state
            if lost or state.startswith("08") or state in _TRANSIENT_SQLSTATES:
                self._drop_connection()
                raise _Retry(f"database: {str(exc).strip()[:300]}", None) from exc
            raise _Refused(f"{state}: {(exc.diag.message_primary or str(exc))[:300]}") from exc

    def _drop_connection(self) -> None:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()


class _Retry(Exception):
    def __init__(self, message: str, wait: float | None) -> None:
        super().__init__(message)
        self.wait = wait


class _Refused(Exception):
    pass


#: settings -> (the warehouse, its open connectors). A warehouse outlives its connectors (it
#: remembers what it was sent for the life of the process); its workers stop with the last one.
_warehouses: dict[str, tuple[SimWarehouse, int]] = {}
_warehouses_lock = threading.Lock()


def _settings_key(config: Mapping[str, Any]) -> str:
    return json.dumps(dict(config), sort_keys=True, default=str)


class SimWmsConnector:
    """The ``sim`` connector (see the module docstring): a handle on the process's
    :class:`SimWarehouse` of these settings. Safe to share between threads."""

    name = NAME

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._key = _settings_key(config)
        self._config = dict(config)
        self._warehouse: SimWarehouse | None = None
        self._handle = threading.Lock()
        self._acquire()  # checks the settings (ValueError naming the one at fault)

    def __repr__(self) -> str:  # never the secret
        warehouse = self.warehouse
        target = warehouse.callback_url or "dsn"
        return f"SimWmsConnector(delay_seconds={warehouse.delay:g}, callbacks to {target})"

    def _acquire(self) -> SimWarehouse:
        with self._handle:
            if self._warehouse is None:
                with _warehouses_lock:
                    shared, users = _warehouses.get(self._key) or (None, 0)
                    if shared is None:
                        shared = SimWarehouse(self._config)
                    _warehouses[self._key] = (shared, users + 1)
                self._warehouse = shared
            return self._warehouse

    @property
    def warehouse(self) -> SimWarehouse:
        """The simulated warehouse this connector talks to (also once closed)."""
        if self._warehouse is not None:
            return self._warehouse
        with _warehouses_lock:
            entry = _warehouses.get(self._key)
        return entry[0] if entry is not None else self._acquire()

    @property
    def callbacks(self) -> Counter[str]:
        """Callbacks the warehouse made, by event type."""
        return self.warehouse.callbacks

    @property
    def failures(self) -> list[str]:
        """Callbacks that failed for good (logged); their order's later steps were dropped."""
        return self.warehouse.failures

    def pending(self) -> int:
        """Callbacks scheduled or being made."""
        return self.warehouse.pending()

    def send(self, command: WmsCommand) -> WmsAccepted:
        return self._acquire().send(command)

    def close(self) -> None:
        """Waits (at most ``close_timeout`` seconds) until every scheduled callback is made;
        the last open connector of the warehouse also stops its workers. Usable again
        afterwards (the warehouse remembers what it was sent)."""
        with self._handle:
            warehouse, self._warehouse = self._warehouse, None
        if warehouse is None:
            return
        warehouse.drain()
        with _warehouses_lock:
            users = _warehouses[self._key][1] - 1
            _warehouses[self._key] = (warehouse, users)
        if users == 0:
            warehouse.stop()


def factory(config: Mapping[str, Any]) -> SimWmsConnector:
    """The entry point (``sim = "orderdb.integrations.wms.sim:factory"``)."""
    return SimWmsConnector(config)


__all__ = ["SimWarehouse", "SimWmsConnector", "factory", "tracking_number"]
