"""Events: reading the transactional outbox, and the relay that fans it out.

Business functions write outbox rows in their own transaction (``orderdb._emit_event``) and never
``NOTIFY``. Consumers read with ``orderdb.read_events`` / ``orderdb.ack_events`` (commit-safe
order, durable named positions, at-least-once). This module adds:

* :class:`Event` and :func:`read_events` / :func:`ack_events`, thin wrappers of the SQL functions;
* :class:`EventLoop`, one dedicated connection that reads a consumer's events batch by batch, waits
  for work with ``LISTEN`` plus a poll timeout, and reconnects with exponential backoff after a
  lost connection (a database restart), catching up from the durable position every time;
* :class:`Relay`, which runs an :class:`EventLoop` under its own consumer name and fans every batch
  out: Python handlers, ``NOTIFY orderdb_events`` (small batched payloads) and webhook deliveries
  (queued in the transaction that acknowledges the batch), plus a dispatcher thread that POSTs the
  deliveries (HMAC-SHA256 signed, retried with exponential backoff, dead-lettered after
  ``max_attempts``, one at a time per order and subscription).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

__all__ = [
    "CHANNEL",
    "EVENT_COLUMNS",
    "WAKEUP_CHANNEL",
    "Event",
    "EventLoop",
    "Relay",
    "RelayStats",
    "ack_events",
    "iter_lines",
    "notify_payloads",
    "read_events",
    "sign",
    "verify_signature",
    "webhook_body",
]

log = logging.getLogger("orderdb.events")

Conn = psycopg.Connection[Any]

#: channel the relay NOTIFYs after acknowledging a batch (payload: see :func:`notify_payloads`)
CHANNEL = "orderdb_events"
#: channel the relay LISTENs on to wake up early (``NOTIFY orderdb_relay`` after a manual retry)
WAKEUP_CHANNEL = "orderdb_relay"
#: payloads are cut well below PostgreSQL's 8000-byte limit
MAX_NOTIFY_BYTES = 4000
SIGNATURE_HEADER = "X-Orderdb-Signature"


#: the select list that :meth:`Event.from_row` expects (payload as text: numbers stay exact)
EVENT_COLUMNS = "event_id, event_type, order_id, payload::text AS payload_text, created_at"


@dataclass(frozen=True)
class Event:
    """One outbox event as ``orderdb.read_events`` returns it.

    ``payload`` is parsed with decimal numbers (``unit_price`` 19.90 stays ``Decimal("19.90")``);
    ``payload_text`` is the payload's JSON text as stored.
    """

    event_id: int
    event_type: str
    order_id: int | None
    payload: dict[str, Any]
    created_at: datetime
    payload_text: str = field(default="{}", repr=False, compare=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Event:
        """An Event from a row selected with :data:`EVENT_COLUMNS`."""
        text: str = row["payload_text"]
        return cls(
            event_id=row["event_id"],
            event_type=row["event_type"],
            order_id=row["order_id"],
            payload=json.loads(text, parse_float=Decimal),
            created_at=row["created_at"],
            payload_text=text,
        )

    def to_json(self) -> str:
        """One compact JSON object (``events tail`` prints one per line): event_id, event_type,
        order_id, payload (its stored JSON text, numbers exact), created_at (ISO 8601)."""
        return (
            f'{{"event_id":{self.event_id},"event_type":{json.dumps(self.event_type)},'
            f'"order_id":{json.dumps(self.order_id)},"payload":{self.payload_text},'
            f'"created_at":{json.dumps(self.created_at.isoformat())}}}'
        )


def read_events(conn: Conn, consumer: str, limit: int = 100) -> list[Event]:
    """``orderdb.read_events``: the consumer's next committed events in commit-safe order."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {EVENT_COLUMNS} FROM orderdb.read_events(%s, %s)",  # noqa: S608 - constant
            (consumer, limit),
        )
        return [Event.from_row(row) for row in cur.fetchall()]


def ack_events(conn: Conn, consumer: str, event_id: int) -> None:
    """``orderdb.ack_events``: acknowledge ``event_id`` and everything read before it."""
    conn.execute("SELECT orderdb.ack_events(%s, %s)", (consumer, event_id))


def notify_payloads(events: Sequence[Event], max_bytes: int = MAX_NOTIFY_BYTES) -> list[str]:
    """The ``NOTIFY orderdb_events`` payloads of a batch: JSON arrays of
    ``{"event_id", "event_type", "order_id"}``, each at most ``max_bytes`` bytes."""
    payloads: list[str] = []
    current: list[str] = []
    size = 2
    for event in events:
        item = json.dumps(
            {
                "event_id": event.event_id,
                "event_type": event.event_type,
                "order_id": event.order_id,
            },
            separators=(",", ":"),
        )
        item_size = len(item.encode()) + 1
        if current and size + item_size > max_bytes:
            payloads.append("[" + ",".join(current) + "]")
            current, size = [], 2
        current.append(item)
        size += item_size
    if current:
        payloads.append("[" + ",".join(current) + "]")
    return payloads


def sign(secret: str, body: bytes) -> str:
    """The ``X-Orderdb-Signature`` header value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant-time compare)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def webhook_body(
    event_id: int,
    event_type: str,
    order_id: int | None,
    payload_text: str,
    created_at: datetime,
) -> bytes:
    """The JSON body POSTed for an event (the same bytes for every attempt): event_id,
    event_type, order_id, payload (its stored JSON text), created_at."""
    return Event(event_id, event_type, order_id, {}, created_at, payload_text).to_json().encode()


# --------------------------------------------------------------------------- the consumer loop


class _Backoff:
    """Exponential backoff with full jitter: 0..min(cap, base * 2^n)."""

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap, self.failures = base, cap, 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * (2**self.failures))
        self.failures = min(self.failures + 1, 30)
        return random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not security

    def reset(self) -> None:
        self.failures = 0


class EventLoop:
    """A consumer's read loop on one dedicated autocommit connection.

    :meth:`run` reads batches with ``orderdb.read_events`` and hands each to ``on_batch(conn,
    events)``, which must acknowledge what it has processed (``ack_events``) before returning;
    whatever it does not acknowledge is read again. A full batch is followed at once by the next
    read; otherwise the loop waits up to ``poll_interval`` seconds for a notification on any of
    ``listen`` (a hint only: the outbox is the truth). A lost connection (server restart, network)
    is reopened with exponential backoff (``reconnect_base`` .. ``reconnect_max`` seconds), after
    which reading resumes from the consumer's acknowledged position: a full catch-up.
    """

    def __init__(
        self,
        dsn: str,
        consumer: str,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.05,
        listen: Sequence[str] = (),
        reconnect_base: float = 0.1,
        reconnect_max: float = 5.0,
        connect_timeout: int = 5,
    ) -> None:
        self.dsn = dsn
        self.consumer = consumer
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.listen = tuple(listen)
        self.connect_timeout = connect_timeout
        self._backoff = _Backoff(reconnect_base, reconnect_max)
        self._stop = threading.Event()
        self.reconnects = 0

    def stop(self) -> None:
        """Ask :meth:`run` to return (within about ``poll_interval`` seconds)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _connect(self) -> Conn:
        conn = psycopg.connect(
            self.dsn,
            autocommit=True,
            connect_timeout=self.connect_timeout,
            application_name=f"orderdb-events:{self.consumer}"[:63],
        )
        for channel in self.listen:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        return conn

    def run(
        self,
        on_batch: Callable[[Conn, list[Event]], None],
        *,
        idle_exit: float | None = None,
        on_idle: Callable[[Conn], None] | None = None,
    ) -> None:
        """Loop until :meth:`stop`, or until no event arrived for ``idle_exit`` seconds.

        ``on_idle(conn)`` runs whenever a read came back short (housekeeping such as purging).
        Errors other than a lost connection propagate.
        """
        last_event = time.monotonic()
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except psycopg.OperationalError as exc:
                if idle_exit is not None and time.monotonic() - last_event >= idle_exit:
                    return
                delay = self._backoff.next_delay()
                log.warning("connect failed (%s); retrying in %.2fs", _first_line(exc), delay)
                self._stop.wait(delay)
                continue
            try:
                with conn:
                    while not self._stop.is_set():
                        events = read_events(conn, self.consumer, self.batch_size)
                        self._backoff.reset()
                        if events:
                            on_batch(conn, events)
                            last_event = time.monotonic()
                            if len(events) >= self.batch_size:
                                continue
                        elif idle_exit is not None and time.monotonic() - last_event >= idle_exit:
                            return
                        if on_idle is not None:
                            on_idle(conn)
                        self._wait(conn)
            except psycopg.OperationalError as exc:
                self.reconnects += 1
                delay = self._backoff.next_delay()
                log.warning("connection lost (%s); reconnecting in %.2fs", _first_line(exc), delay)
                self._stop.wait(delay)

    def _wait(self, conn: Conn) -> None:
        if self.listen:
            for _ in conn.notifies(timeout=self.poll_interval, stop_after=1):
                pass
        else:
            self._stop.wait(self.poll_interval)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- the relay


@dataclass
class RelayStats:
    """Counters of a running :class:`Relay` (read them from any thread)."""

    batches: int = 0
    events: int = 0
    notifications: int = 0
    deliveries_enqueued: int = 0
    webhook_attempts: int = 0
    webhook_delivered: int = 0
    webhook_failed: int = 0
    webhook_dead: int = 0
    handler_errors: int = 0
    purged: int = 0
    reconnects: int = 0
    last_error: str | None = field(default=None)


class HandlerFailed(Exception):
    """A Python handler raised; the relay retries from the failed event after a backoff."""


class Relay:
    """The outbox relay: ``Relay(dsn).run(handler)``.

    Reads the outbox as consumer ``consumer`` (default ``orderdb-relay``) and, per batch:

    1. calls ``handler(event)`` for each event in read order (at-least-once: after a crash or a
       handler error the unacknowledged events are handed over again, at most ``ack_every``
       of them; dedupe on ``event_id``);
    2. in one transaction per ``ack_every`` handled events (per batch without a handler): queues
       the webhook deliveries of those events (``orderdb._webhook_enqueue``), sends
       ``NOTIFY orderdb_events`` with JSON arrays of ``{"event_id", "event_type", "order_id"}``
       (each payload at most 4000 bytes), and acknowledges them. Deliveries and notifications
       therefore happen once per acknowledged event; a listener that is not connected at that
       moment misses the hint and reads the outbox (or ``read_events`` with a consumer of its
       own) instead.

    A dispatcher thread (``webhooks=True``) claims due deliveries, POSTs them (see
    :func:`webhook_body`, :func:`sign`) with up to ``webhook_concurrency`` requests in flight,
    records every attempt, and retries failures after ``backoff_base * 2^(attempt-1)`` (capped at
    ``backoff_max``) until the subscription's ``max_attempts``, then dead-letters the delivery.
    Acknowledged events older than ``retention`` are purged every ``purge_interval`` seconds
    (``retention=None``: never). Both loops reconnect with backoff after a lost connection.
    """

    def __init__(
        self,
        dsn: str,
        *,
        consumer: str = "orderdb-relay",
        batch_size: int = 500,
        poll_interval: float = 0.05,
        notify: bool = True,
        webhooks: bool = True,
        webhook_concurrency: int = 4,
        webhook_timeout: float = 10.0,
        webhook_poll_interval: float = 0.5,
        backoff_base: timedelta = timedelta(seconds=1),
        backoff_max: timedelta = timedelta(hours=1),
        retention: timedelta | None = timedelta(days=7),
        purge_interval: float = 60.0,
        reconnect_max: float = 5.0,
        ack_every: int = 100,
    ) -> None:
        self.dsn = dsn
        self.consumer = consumer
        self.ack_every = max(1, ack_every)
        self.notify = notify
        self.webhooks = webhooks
        self.webhook_concurrency = webhook_concurrency
        self.webhook_timeout = webhook_timeout
        self.webhook_poll_interval = webhook_poll_interval
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retention = retention
        self.purge_interval = purge_interval
        self.reconnect_max = reconnect_max
        self.stats = RelayStats()
        self.loop = EventLoop(
            dsn,
            consumer,
            batch_size=batch_size,
            poll_interval=poll_interval,
            listen=(WAKEUP_CHANNEL,),
            reconnect_max=reconnect_max,
        )
        self._wake_dispatcher = threading.Event()
        self._next_purge = 0.0
        self._handler: Callable[[Event], None] | None = None

    def stop(self) -> None:
        """Stop both loops; :meth:`run` returns shortly after."""
        self.loop.stop()
        self._wake_dispatcher.set()

    def run(self, handler: Callable[[Event], None] | None = None) -> None:
        """Run until :meth:`stop` (from another thread or a signal handler)."""
        self._handler = handler
        dispatcher: threading.Thread | None = None
        if self.webhooks:
            dispatcher = threading.Thread(
                target=self._dispatch_loop, name="orderdb-webhooks", daemon=True
            )
            dispatcher.start()
        try:
            while not self.loop.stopping:
                try:
                    self.loop.run(self._on_batch, on_idle=self._on_idle)
                except HandlerFailed as exc:
                    self.stats.handler_errors += 1
                    self.stats.last_error = str(exc)
                    delay = min(self.reconnect_max, 0.5 * 2 ** min(self.stats.handler_errors, 4))
                    log.error("%s; retrying in %.1fs", exc, delay)
                    self.loop._stop.wait(delay)
        finally:
            self.stop()
            self.stats.reconnects = self.loop.reconnects
            if dispatcher is not None:
                dispatcher.join(timeout=self.webhook_timeout + 5)

    # -- fan-out ----------------------------------------------------------------------------------

    def _on_batch(self, conn: Conn, events: list[Event]) -> None:
        # with a handler, acknowledge every ack_every events: a crash repeats at most that many
        step = self.ack_every if self._handler is not None else len(events)
        for start in range(0, len(events), step):
            self._fan_out(conn, events[start : start + step])

    def _fan_out(self, conn: Conn, events: list[Event]) -> None:
        done = events
        failure: BaseException | None = None
        if self._handler is not None:
            for i, event in enumerate(events):
                try:
                    self._handler(event)
                except Exception as exc:
                    done, failure = events[:i], exc
                    break
        if done:
            ids = [e.event_id for e in done]
            with conn.transaction():
                if self.webhooks:
                    row = conn.execute("SELECT orderdb._webhook_enqueue(%s)", (ids,)).fetchone()
                    enqueued = int(row[0]) if row else 0
                else:
                    enqueued = 0
                payloads = notify_payloads(done) if self.notify else []
                for payload in payloads:
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                ack_events(conn, self.consumer, ids[-1])
            self.stats.batches += 1
            self.stats.events += len(done)
            self.stats.notifications += len(payloads)
            self.stats.deliveries_enqueued += enqueued
            if enqueued:
                self._wake_dispatcher.set()
        if failure is not None:
            failed = events[len(done)]
            raise HandlerFailed(
                f"handler failed on event {failed.event_id} ({failed.event_type}): {failure!r}"
            ) from failure

    def _on_idle(self, conn: Conn) -> None:
        if self.retention is None or time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + self.purge_interval
        batch = 10000
        for _ in range(100):
            row = conn.execute(
                "SELECT orderdb.purge_events(%s, %s)", (self.retention, batch)
            ).fetchone()
            deleted = int(row[0]) if row else 0
            self.stats.purged += deleted
            if deleted < batch:
                break

    # -- webhooks -------------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        backoff = _Backoff(0.1, self.reconnect_max)
        lease = timedelta(seconds=max(30.0, self.webhook_timeout * 3))
        with ThreadPoolExecutor(self.webhook_concurrency, "orderdb-webhook") as pool:
            while not self.loop.stopping:
                try:
                    with psycopg.connect(
                        self.dsn,
                        autocommit=True,
                        connect_timeout=5,
                        application_name="orderdb-webhooks",
                    ) as conn:
                        backoff.reset()
                        while not self.loop.stopping:
                            claimed = self._claim(conn, lease)
                            if claimed:
                                results = list(pool.map(self._post, claimed))
                                for delivery, result in zip(claimed, results, strict=True):
                                    self._record(conn, delivery, result)
                                continue
                            self._wake_dispatcher.wait(self.webhook_poll_interval)
                            self._wake_dispatcher.clear()
                except psycopg.OperationalError as exc:
                    delay = backoff.next_delay()
                    log.warning(
                        "webhook dispatcher lost its connection (%s); retrying in %.2fs",
                        _first_line(exc),
                        delay,
                    )
                    self.loop._stop.wait(delay)

    def _claim(self, conn: Conn, lease: timedelta) -> list[dict[str, Any]]:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT delivery_id, subscription_id, url, secret, attempt, event_id, event_type,"
                " order_id, payload::text AS payload_text, event_created_at"
                " FROM orderdb._webhook_claim(%s, %s)",
                (self.webhook_concurrency * 4, lease),
            )
            return cur.fetchall()

    def _post(self, delivery: dict[str, Any]) -> tuple[int | None, str | None, int]:
        body = webhook_body(
            delivery["event_id"],
            delivery["event_type"],
            delivery["order_id"],
            delivery["payload_text"],
            delivery["event_created_at"],
        )
        request = urllib.request.Request(  # noqa: S310 - http(s) only (CHECK on the table)
            delivery["url"],
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "orderdb-relay",
                SIGNATURE_HEADER: sign(delivery["secret"], body),
                "X-Orderdb-Event-Id": str(delivery["event_id"]),
                "X-Orderdb-Event-Type": delivery["event_type"],
                "X-Orderdb-Delivery-Id": str(delivery["delivery_id"]),
                "X-Orderdb-Attempt": str(delivery["attempt"]),
            },
        )
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            with _OPENER.open(request, timeout=self.webhook_timeout) as response:
                status = int(response.status)
                response.read(65536)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
            error = f"HTTP {exc.code} {exc.reason}"
        except Exception as exc:  # network errors, timeouts, bad URLs: recorded, retried
            error = f"{type(exc).__name__}: {exc}"
        duration = int((time.monotonic() - started) * 1000)
        if status is not None and not 100 <= status <= 599:
            error, status = f"invalid HTTP status {status}", None
        return status, error, duration

    def _record(
        self, conn: Conn, delivery: dict[str, Any], result: tuple[int | None, str | None, int]
    ) -> None:
        status, error, duration = result
        row = conn.execute(
            "SELECT orderdb._webhook_record(%s, %s, %s, %s, %s, %s, %s)",
            (
                delivery["delivery_id"],
                delivery["attempt"],
                status,
                error,
                duration,
                self.backoff_base,
                self.backoff_max,
            ),
        ).fetchone()
        outcome = row[0] if row else None
        self.stats.webhook_attempts += 1
        if outcome == "delivered":
            self.stats.webhook_delivered += 1
        elif outcome == "dead":
            self.stats.webhook_dead += 1
            self.stats.webhook_failed += 1
            log.error(
                "webhook delivery %s (event %s) dead-lettered after %s attempts: %s",
                delivery["delivery_id"],
                delivery["event_id"],
                delivery["attempt"],
                error or status,
            )
        else:
            self.stats.webhook_failed += 1


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery (a POST must not silently turn into a GET elsewhere)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def iter_lines(events: Sequence[Event]) -> Iterator[str]:
    """One compact JSON line per event (what ``orderdb events tail`` prints)."""
    for event in events:
        yield event.to_json()
