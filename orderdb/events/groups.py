"""Consumer groups: several member processes share one stream of the outbox.

``orderdb.claim_events(group, member, limit, lease_seconds)`` leases events to one member (read
order; an order's events one at a time, a later one only after the earlier are acknowledged; an
expired lease goes to the next member that claims), ``orderdb.ack_claimed`` acknowledges them and
``orderdb.release_claimed`` gives unhandled leases back. :class:`GroupMember` is one member
(``orderdb events work``): it claims, calls a handler with each :class:`~orderdb.events.Event`,
acknowledges after the handler returned (at-least-once: dedupe on ``event_id``), stops gracefully
(the current event is finished and acknowledged, the rest of the batch released), and reconnects
with backoff after a lost connection, catching up from what the group has not acknowledged.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from orderdb.events.listen import Backoff, _first_line, listening_connection
from orderdb.events.stream import CHANNEL, EVENT_COLUMNS, Event

log = logging.getLogger("orderdb.events")

Conn = psycopg.Connection[Any]


def claim_events(
    conn: Conn, group: str, member: str, limit: int = 100, lease_seconds: int = 30
) -> list[Event]:
    """``orderdb.claim_events``: lease the group's next events to ``member``."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {EVENT_COLUMNS} FROM orderdb.claim_events(%s, %s, %s, %s)",  # noqa: S608
            (group, member, limit, lease_seconds),
        )
        return [Event.from_row(row) for row in cur.fetchall()]


def ack_claimed(conn: Conn, group: str, member: str, event_ids: Sequence[int]) -> int:
    """``orderdb.ack_claimed``: acknowledge those of ``event_ids`` leased to ``member``."""
    row = conn.execute(
        "SELECT orderdb.ack_claimed(%s, %s, %s::bigint[])", (group, member, list(event_ids))
    ).fetchone()
    return int(row[0]) if row else 0


def release_claimed(conn: Conn, group: str, member: str, event_ids: Sequence[int]) -> int:
    """``orderdb.release_claimed``: give back unacknowledged leases of ``member``."""
    row = conn.execute(
        "SELECT orderdb.release_claimed(%s, %s, %s::bigint[])", (group, member, list(event_ids))
    ).fetchone()
    return int(row[0]) if row else 0


def default_member() -> str:
    """A member name unique on this network: ``<host>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"[:255]


@dataclass
class MemberStats:
    """Counters of a running :class:`GroupMember`."""

    claims: int = 0
    handled: int = 0
    acked: int = 0
    released: int = 0
    handler_errors: int = 0
    reconnects: int = 0
    last_error: str | None = field(default=None)


class GroupMember:
    """One member of consumer group ``group``: ``GroupMember(dsn, "erp").run(handler)``.

    Claims up to ``batch_size`` events leased for ``lease_seconds``, calls ``handler(event)`` for
    each in read order and acknowledges it once the handler returned (every ``ack_every`` events,
    and at the end of each batch). A handler that raises is logged; its event stays leased and
    comes back (to any member) when the lease runs out, and the order's later events wait for it.
    An event whose lease is about to run out before its turn (slow handlers) is released, not
    handled, so that the member that gets it next is the only one holding it.
    :meth:`stop` (SIGTERM) lets the current handler finish, acknowledges what was handled and
    releases the rest of the batch. A lost connection is reopened with jittered exponential
    backoff; unacknowledged leases then come back when they run out.
    """

    def __init__(
        self,
        dsn: str,
        group: str,
        member: str | None = None,
        *,
        batch_size: int = 50,
        lease_seconds: int = 30,
        ack_every: int = 1,
        poll_interval: float = 0.1,
        reconnect_base: float = 0.1,
        reconnect_max: float = 5.0,
        connect_timeout: int = 5,
    ) -> None:
        self.dsn = dsn
        self.group = group
        self.member = member or default_member()
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.ack_every = max(1, ack_every)
        self.poll_interval = poll_interval
        self.connect_timeout = connect_timeout
        self.stats = MemberStats()
        self._backoff = Backoff(reconnect_base, reconnect_max)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Finish the current event, acknowledge, release the rest; :meth:`run` then returns."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, handler: Callable[[Event], Any], *, idle_exit: float | None = None) -> None:
        """Work until :meth:`stop`, or until no event came for ``idle_exit`` seconds (when they
        run out while the database cannot be reached, the connection error is raised)."""
        last_event = time.monotonic()
        while not self._stop.is_set():
            try:
                conn = listening_connection(
                    self.dsn,
                    (CHANNEL,),
                    application_name=f"orderdb-group:{self.group}:{self.member}",
                    connect_timeout=self.connect_timeout,
                )
            except psycopg.OperationalError as exc:
                if idle_exit is not None and time.monotonic() - last_event >= idle_exit:
                    # idleness is only measured on a database that was read: one that cannot
                    # be reached is an error (the command line exits 75, retry later)
                    raise
                delay = self._backoff.next_delay()
                log.warning("connect failed (%s); retrying in %.2fs", _first_line(exc), delay)
                self._stop.wait(delay)
                continue
            try:
                with conn:
                    while not self._stop.is_set():
                        claimed_at = time.monotonic()
                        events = claim_events(
                            conn, self.group, self.member, self.batch_size, self.lease_seconds
                        )
                        self.stats.claims += 1
                        self._backoff.reset()
                        if events:
                            self._work(conn, events, handler, claimed_at)
                            last_event = time.monotonic()
                            if len(events) >= self.batch_size:
                                continue
                        elif idle_exit is not None and time.monotonic() - last_event >= idle_exit:
                            return
                        for _ in conn.notifies(timeout=self.poll_interval, stop_after=1):
                            pass
            except psycopg.OperationalError as exc:
                self.stats.reconnects += 1
                self.stats.last_error = _first_line(exc)
                delay = self._backoff.next_delay()
                log.warning("connection lost (%s); reconnecting in %.2fs", _first_line(exc), delay)
                self._stop.wait(delay)

    def _work(
        self,
        conn: Conn,
        events: list[Event],
        handler: Callable[[Event], Any],
        claimed_at: float,
    ) -> None:
        # an event is handled only while well inside its lease (a fifth of it, at least 1 s, kept)
        deadline = claimed_at + self.lease_seconds - max(1.0, self.lease_seconds / 5)
        done: list[int] = []
        for i, event in enumerate(events):
            if self._stop.is_set() or time.monotonic() >= deadline:
                self._ack(conn, done)
                rest = [e.event_id for e in events[i:]]
                self.stats.released += release_claimed(conn, self.group, self.member, rest)
                return
            try:
                handler(event)
            except Exception as exc:  # the event comes back when its lease runs out
                self.stats.handler_errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "handler failed on event %s (%s): %r; it is handed out again after its "
                    "lease (%s s)",
                    event.event_id,
                    event.event_type,
                    exc,
                    self.lease_seconds,
                )
                continue
            self.stats.handled += 1
            done.append(event.event_id)
            if len(done) >= self.ack_every:
                self._ack(conn, done)
                done = []
        self._ack(conn, done)

    def _ack(self, conn: Conn, ids: list[int]) -> None:
        if not ids:
            return
        # an acknowledgement lost in a server crash only means a redelivery (at-least-once): its
        # commit need not wait for the WAL flush (the claims' commits do)
        with conn.transaction():
            conn.execute("SET LOCAL synchronous_commit = off")
            self.stats.acked += ack_claimed(conn, self.group, self.member, ids)
