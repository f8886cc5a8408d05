"""The consumer loop: one dedicated autocommit connection that reads a consumer's events batch
by batch, waits for work with LISTEN plus a poll timeout, and reconnects with jittered
exponential backoff, catching up from the durable position every time."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

if TYPE_CHECKING:
    pass


from orderdb.events.stream import Event, read_events

log = logging.getLogger("orderdb.events")

Conn = psycopg.Connection[Any]
#: where a loop logs: the module's logger, or an adapter that names what the loop serves (the
#: relay of one shard of a cluster: orderdb.cluster.relay)
Log = logging.Logger | logging.LoggerAdapter[logging.Logger]


# --------------------------------------------------------------------------- the consumer loop


class Backoff:
    """Exponential backoff with jitter: a delay drawn from [d/2, d], d = min(cap, base * 2^n)
    after n consecutive failures, so that reconnecting clients do not arrive together."""

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap, self.failures = base, cap, 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * (2**self.failures))
        self.failures = min(self.failures + 1, 30)
        return random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not security

    def reset(self) -> None:
        self.failures = 0


#: TCP keep-alives of a listening connection: a peer that vanished without closing (a network
#: cut, a server host that died) is noticed within about a minute instead of never
KEEPALIVES = "keepalives=1 keepalives_idle=30 keepalives_interval=10 keepalives_count=3"


def listening_connection(
    dsn: str, channels: Sequence[str], *, application_name: str, connect_timeout: int = 5
) -> Conn:
    """A dedicated autocommit connection with TCP keep-alives that LISTENs on ``channels``: the
    one way orderdb opens a connection to wait for notifications (the relay's consumer loop,
    the web pages' live updates). Reconnecting is the caller's loop, with :class:`Backoff`."""
    conn = psycopg.connect(
        make_conninfo(KEEPALIVES, **conninfo_to_dict(dsn)),
        autocommit=True,
        connect_timeout=connect_timeout,
        application_name=application_name[:63],
    )
    for channel in channels:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    return conn


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
        logger: Log | None = None,
    ) -> None:
        self.dsn = dsn
        self.log: Log = logger or log
        self.consumer = consumer
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.listen = tuple(listen)
        self.connect_timeout = connect_timeout
        self._backoff = Backoff(reconnect_base, reconnect_max)
        self._stop = threading.Event()
        self.reconnects = 0

    def stop(self) -> None:
        """Ask :meth:`run` to return (within about ``poll_interval`` seconds)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _connect(self) -> Conn:
        return listening_connection(
            self.dsn,
            self.listen,
            application_name=f"orderdb-events:{self.consumer}",
            connect_timeout=self.connect_timeout,
        )

    def run(
        self,
        on_batch: Callable[[Conn, list[Event]], None],
        *,
        idle_exit: float | None = None,
        on_idle: Callable[[Conn], None] | None = None,
    ) -> None:
        """Loop until :meth:`stop`, or until no event arrived for ``idle_exit`` seconds (when
        they run out while the database cannot be reached, the connection error is raised).

        ``on_idle(conn)`` runs whenever a read came back short (housekeeping such as purging).
        Errors other than a lost connection propagate.
        """
        last_event = time.monotonic()
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except psycopg.OperationalError as exc:
                if idle_exit is not None and time.monotonic() - last_event >= idle_exit:
                    # idleness is only measured on a database that was read: one that cannot
                    # be reached is an error (the command line exits 75, retry later)
                    raise
                delay = self._backoff.next_delay()
                self.log.warning("connect failed (%s); retrying in %.2fs", _first_line(exc), delay)
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
                self.log.warning(
                    "connection lost (%s); reconnecting in %.2fs", _first_line(exc), delay
                )
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
