"""Wake-ups for the tracking page's live updates: one ``LISTEN orderdb_events`` per web process.

The relay (orderdb/events/relay.py) NOTIFYs ``orderdb_events`` with the order ids of every batch it
acknowledged. :class:`EventHub` listens on one dedicated autocommit connection and counts, per
order id, how many notifications named it. A live stream compares that count with the one it saw
last and re-reads the order's timeline when it changed, instead of polling every second. A
notification is a hint, the timeline function is the truth: after every (re)connect the hub bumps
its epoch, which makes every stream re-read once, and while no relay is heard (nothing received
for :attr:`EventHub.quiet_after` seconds) streams fall back to polling.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import psycopg

from orderdb.events.listen import Backoff, listening_connection
from orderdb.events.stream import CHANNEL

log = logging.getLogger("orderdb.web")

MAX_TRACKED = 100_000


class EventHub:
    """Counts ``orderdb_events`` notifications per order id (thread-safe, reconnects)."""

    def __init__(self, dsn: str, *, quiet_after: float = 60.0) -> None:
        self.dsn = dsn
        self.quiet_after = quiet_after
        self._counts: dict[int, int] = {}
        self._epoch = 0
        self._last_heard = float("-inf")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="orderdb-web-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    @property
    def relay_heard(self) -> bool:
        """Whether a notification arrived lately (then streams need not poll often)."""
        return time.monotonic() - self._last_heard < self.quiet_after

    def signature(self, order_id: int) -> tuple[int, int]:
        """Changes whenever a notification names ``order_id`` or the hub reconnects."""
        with self._lock:
            return self._epoch, self._counts.get(order_id, 0)

    def handle(self, payload: str) -> None:
        """Count one notification (a JSON array of {"event_id", "event_type", "order_id"})."""
        try:
            items: Any = json.loads(payload)
        except ValueError:
            items = []
        ids = {
            item["order_id"]
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, dict) and isinstance(item.get("order_id"), int)
        }
        with self._lock:
            self._last_heard = time.monotonic()
            if len(self._counts) + len(ids) > MAX_TRACKED:
                self._counts.clear()
                self._epoch += 1
            for order_id in ids:
                self._counts[order_id] = self._counts.get(order_id, 0) + 1

    def _run(self) -> None:
        backoff = Backoff(0.5, 30.0)
        while not self._stop.is_set():
            try:
                with listening_connection(
                    self.dsn, (CHANNEL,), application_name="orderdb-web-listen"
                ) as conn:
                    with self._lock:
                        self._epoch += 1  # catch up: every stream re-reads once
                    self.connected.set()
                    backoff.reset()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self.handle(note.payload)
            except psycopg.Error as exc:
                self.connected.clear()
                delay = backoff.next_delay()
                log.warning("LISTEN %s failed (%s); retrying in %.1f s", CHANNEL, exc, delay)
                self._stop.wait(delay)
