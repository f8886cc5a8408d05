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
  deliveries over one kept-alive ``httpx`` client (signed per Standard Webhooks, retried with
  exponential backoff and jitter, dead-lettered after ``max_attempts``, one at a time per order and
  subscription; every attempt's status, response headers, the start of its body and its duration
  are recorded). ``httpx`` is needed for webhooks only (the ``ops`` extra); the rest of this module
  works without it.

Standard Webhooks (https://www.standardwebhooks.com, spec ``spec/standard-webhooks.md`` of
github.com/standard-webhooks/standard-webhooks): each POST carries ``webhook-id`` (``evt_<event
id>``, the same for every attempt), ``webhook-timestamp`` (the attempt's Unix time in seconds) and
``webhook-signature`` (``v1,<base64 of HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">``).
The key is :func:`secret_key` of the subscription's secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    import httpx

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
    "secret_key",
    "sign",
    "verify_signature",
    "webhook_body",
    "webhook_headers",
    "webhook_id",
    "webhook_signature",
]

log = logging.getLogger("orderdb.events")

Conn = psycopg.Connection[Any]

#: channel the relay NOTIFYs after acknowledging a batch (payload: see :func:`notify_payloads`)
CHANNEL = "orderdb_events"
#: channel the relay LISTENs on to wake up early (``NOTIFY orderdb_relay`` after a manual retry)
WAKEUP_CHANNEL = "orderdb_relay"
#: payloads are cut well below PostgreSQL's 8000-byte limit
MAX_NOTIFY_BYTES = 4000
#: deprecated (kept for one release beside the Standard Webhooks headers): see :func:`sign`
SIGNATURE_HEADER = "X-Orderdb-Signature"
#: the prefix of a Standard Webhooks secret (``whsec_`` + base64 of the key)
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
#: how much of a receiver's answer an attempt keeps: body characters, header JSON bytes
MAX_RESPONSE_BODY = 4096
MAX_RESPONSE_HEADERS = 15000


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


def _hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def secret_key(secret: str) -> bytes:
    """The Standard Webhooks HMAC key of a subscription secret.

    ``whsec_<base64>`` (what new subscriptions get): the decoded bytes, as
    ``standardwebhooks.Webhook(secret)`` decodes them. Any other secret (the 64-hex-character
    secrets of earlier releases, or one chosen by hand): its UTF-8 bytes, so a receiver verifies
    with ``standardwebhooks.Webhook(secret.encode())``.
    """
    if secret.startswith(SECRET_PREFIX):
        b64 = secret[len(SECRET_PREFIX) :].rstrip("=")
        try:
            key = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if key:
            return key
    return secret.encode()


def webhook_id(event_id: int) -> str:
    """The ``webhook-id`` of an event's deliveries: ``evt_<event_id>`` (the same for every attempt
    and every subscription: receivers use it as the idempotency key)."""
    return f"evt_{event_id}"


def webhook_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (Standard Webhooks, symmetric): ``v1,<base64 of
    HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`` keyed with :func:`secret_key`."""
    mac = _hmac_sha256(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body)
    return "v1," + base64.b64encode(mac).decode()


def webhook_headers(
    secret: str, event_id: int, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The signature headers of one attempt: ``webhook-id``, ``webhook-timestamp`` (now, unless
    given), ``webhook-signature`` and the deprecated ``X-Orderdb-Signature``."""
    ts = int(time.time()) if timestamp is None else timestamp
    msg_id = webhook_id(event_id)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": webhook_signature(secret, msg_id, ts, body),
        SIGNATURE_HEADER: sign(secret, body),
    }


def sign(secret: str, body: bytes) -> str:
    """The deprecated ``X-Orderdb-Signature`` header value of ``body``: ``sha256=<hex
    HMAC-SHA256>`` keyed with the secret's text (UTF-8), whatever its form. Sent for one more
    release beside the Standard Webhooks headers; verify ``webhook-signature`` instead."""
    return "sha256=" + _hmac_sha256(secret.encode(), body).hex()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the deprecated ``X-Orderdb-Signature`` of ``body`` under ``secret``
    (constant-time compare)."""
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

    A dispatcher thread (``webhooks=True``, needs ``httpx``) claims due deliveries, POSTs them
    (see :func:`webhook_body`, :func:`webhook_headers`) over one kept-alive ``httpx.Client`` with
    up to ``webhook_concurrency`` requests in flight, records every attempt (status or error,
    duration, response headers, the first 4096 characters of the response body), and retries
    failures after ``backoff_base * 2^(attempt-1)`` (capped at ``backoff_max``) plus up to 25 %
    random jitter until the subscription's ``max_attempts``, then dead-letters the delivery.
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
            _require_httpx()  # fail here, not in the dispatcher thread
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

    def _http_client(self) -> httpx.Client:
        """One client for every delivery: connections are kept alive and reused per host;
        redirects are not followed (a 3xx is a failed attempt)."""
        import httpx

        client = httpx.Client(
            timeout=self.webhook_timeout,
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=self.webhook_concurrency,
                max_keepalive_connections=self.webhook_concurrency,
                keepalive_expiry=30.0,
            ),
            headers={"User-Agent": "orderdb-relay"},
        )
        return client

    def _dispatch_loop(self) -> None:
        backoff = _Backoff(0.1, self.reconnect_max)
        lease = timedelta(seconds=max(30.0, self.webhook_timeout * 3))
        with (
            ThreadPoolExecutor(self.webhook_concurrency, "orderdb-webhook") as pool,
            self._http_client() as client,
        ):

            def post(delivery: dict[str, Any]) -> _Attempt:
                return self._post(client, delivery)

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
                                results = list(pool.map(post, claimed))
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

    def _post(self, client: httpx.Client, delivery: dict[str, Any]) -> _Attempt:
        import httpx

        body = webhook_body(
            delivery["event_id"],
            delivery["event_type"],
            delivery["order_id"],
            delivery["payload_text"],
            delivery["event_created_at"],
        )
        headers = {
            "Content-Type": "application/json",
            **webhook_headers(delivery["secret"], delivery["event_id"], body),
            "X-Orderdb-Event-Id": str(delivery["event_id"]),
            "X-Orderdb-Event-Type": delivery["event_type"],
            "X-Orderdb-Delivery-Id": str(delivery["delivery_id"]),
            "X-Orderdb-Attempt": str(delivery["attempt"]),
        }
        started = time.monotonic()
        attempt = _Attempt()
        try:
            with client.stream("POST", delivery["url"], content=body, headers=headers) as response:
                attempt.status = response.status_code
                attempt.headers = _bounded_headers(response.headers)
                attempt.body = _bounded_body(response)
                if not 200 <= response.status_code <= 299:
                    attempt.error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        except httpx.HTTPError as exc:  # network errors, timeouts, bad URLs: recorded, retried
            attempt.error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # anything else a receiver can provoke: recorded, retried
            attempt.error = f"{type(exc).__name__}: {exc}"
        attempt.duration_ms = int((time.monotonic() - started) * 1000)
        if attempt.status is not None and not 100 <= attempt.status <= 599:
            attempt.error, attempt.status = f"invalid HTTP status {attempt.status}", None
        return attempt

    def _record(self, conn: Conn, delivery: dict[str, Any], attempt: _Attempt) -> None:
        row = conn.execute(
            "SELECT orderdb._webhook_record(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                delivery["delivery_id"],
                delivery["attempt"],
                attempt.status,
                attempt.error,
                attempt.duration_ms,
                self.backoff_base,
                self.backoff_max,
                None if attempt.headers is None else Jsonb(attempt.headers),
                attempt.body,
            ),
        ).fetchone()
        status, error = attempt.status, attempt.error
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


@dataclass
class _Attempt:
    """What one POST gave: HTTP status (None: no answer), error, duration, and the bounded
    response headers and body."""

    status: int | None = None
    error: str | None = None
    duration_ms: int = 0
    headers: dict[str, str] | None = None
    body: str | None = None


def _require_httpx() -> None:
    try:
        import httpx  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RuntimeError(
            "sending webhooks needs httpx: pip install 'orderdb[ops]' (or run the relay with"
            " --no-webhooks)"
        ) from exc


def _no_nul(text: str) -> str:
    # PostgreSQL text and jsonb hold no NUL character
    return text.replace("\x00", "\ufffd")


def _bounded_headers(headers: httpx.Headers) -> dict[str, str]:
    """The response headers as ``{lower-case name: value}`` (repeated names joined with ", "),
    each value cut to 1000 characters, at most :data:`MAX_RESPONSE_HEADERS` bytes of JSON."""
    joined: dict[str, str] = {}
    for name, value in headers.multi_items():
        key = _no_nul(name.lower()[:200])
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    out: dict[str, str] = {}
    size = 2
    for key, value in joined.items():
        value = _no_nul(value[:1000])
        item = len(json.dumps({key: value}).encode()) + 2
        if size + item > MAX_RESPONSE_HEADERS:
            break
        out[key] = value
        size += item
    return out


def _bounded_body(response: httpx.Response) -> str:
    """The first :data:`MAX_RESPONSE_BODY` bytes of the body as text (undecodable bytes and NUL
    replaced); the rest is not read."""
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= MAX_RESPONSE_BODY:
            break
    return _no_nul(bytes(data[:MAX_RESPONSE_BODY]).decode("utf-8", errors="replace"))


def iter_lines(events: Sequence[Event]) -> Iterator[str]:
    """One compact JSON line per event (what ``orderdb events tail`` prints)."""
    for event in events:
        yield event.to_json()
