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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from orderdb.events.listen import Backoff, EventLoop, Log, _first_line
from orderdb.events.sinks import Sink, SinkError
from orderdb.events.stream import (
    CHANNEL,
    WAKEUP_CHANNEL,
    Event,
    ack_events,
    notify_payloads,
)
from orderdb.events.webhooks import (
    _Attempt,
    _bounded_body,
    _bounded_headers,
    _require_httpx,
    webhook_body,
    webhook_headers,
)

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("orderdb.events")

Conn = psycopg.Connection[Any]


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
    sink_published: int = 0
    sink_errors: int = 0
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
    ``sinks`` (:mod:`orderdb.events.sinks`: NATS JetStream, RabbitMQ) get every batch after the
    handler and before the acknowledging transaction; the outbox moves on only once every sink
    confirmed, so a broker that is down holds the relay back (``relay_lag`` grows) and the batch is
    published again, in order, when it returns.
    Acknowledged events older than ``retention`` are purged every ``purge_interval`` seconds
    (``retention=None``: never). Both loops reconnect with backoff after a lost connection.
    ``logger`` (default: ``orderdb.events``) gets the relay's log lines; the relays of a
    cluster's shards (:mod:`orderdb.cluster.relay`) pass one that names the shard.
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
        sinks: Sequence[Sink] = (),
        logger: Log | None = None,
    ) -> None:
        self.dsn = dsn
        self.log: Log = logger or log
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
        self.sinks = tuple(sinks)
        self._sink_backoff = Backoff(0.5, reconnect_max)
        self.loop = EventLoop(
            dsn,
            consumer,
            batch_size=batch_size,
            poll_interval=poll_interval,
            listen=(WAKEUP_CHANNEL,),
            reconnect_max=reconnect_max,
            logger=self.log,
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
                except SinkError as exc:
                    # what was not acknowledged is read and published again, in order
                    self.stats.sink_errors += 1
                    self.stats.last_error = str(exc)
                    delay = self._sink_backoff.next_delay()
                    self.log.error("%s; the outbox waits, retrying in %.1fs", exc, delay)
                    self.loop._stop.wait(delay)
                except HandlerFailed as exc:
                    self.stats.handler_errors += 1
                    self.stats.last_error = str(exc)
                    delay = min(self.reconnect_max, 0.5 * 2 ** min(self.stats.handler_errors, 4))
                    self.log.error("%s; retrying in %.1fs", exc, delay)
                    self.loop._stop.wait(delay)
        finally:
            self.stop()
            self.stats.reconnects = self.loop.reconnects
            if dispatcher is not None:
                dispatcher.join(timeout=self.webhook_timeout + 5)
            for sink in self.sinks:
                sink.close()

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
        if done and self.sinks:
            # every sink confirms before the outbox moves on (SinkError: acknowledged nothing)
            for sink in self.sinks:
                sink.publish(done)
            self._sink_backoff.reset()
            self.stats.sink_published += len(done)
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
        for sink in self.sinks:
            sink.idle()
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
        backoff = Backoff(0.1, self.reconnect_max)
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
                    self.log.warning(
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
            self.log.error(
                "webhook delivery %s (event %s) dead-lettered after %s attempts: %s",
                delivery["delivery_id"],
                delivery["event_id"],
                delivery["attempt"],
                error or status,
            )
        else:
            self.stats.webhook_failed += 1
