"""``orderdb relay --dsn PROXY``: one :class:`orderdb.events.Relay` per shard, in one process
(docs/scaling.md "Tools against the proxy").

Each shard's outbox is its own: its webhook subscriptions and deliveries, its retention
(``purge_events``), its consumers' positions, its ``NOTIFY orderdb_events``. So the relay of a
cluster is the relay of one database run once per shard, each on its own connections to the
shard's DSN as the proxy records it (``orderdb_cluster.shards``; user and password come from
libpq's environment or password file, as for ``orderdb migrate --dsn PROXY``), under the same
consumer name: a consumer position per shard, as when one relay per shard is started by hand.
Every relay reconnects with its own backoff, so a shard that is down or restarts holds back
only its own events; its log lines name the shard. :meth:`ShardRelays.stop` stops them all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import psycopg

from orderdb.cluster.workers import run_per_shard
from orderdb.events import Event, Relay
from orderdb.events.listen import Log

log = logging.getLogger("orderdb.events")


class ShardLog(logging.LoggerAdapter[logging.Logger]):
    """The relay's logger for one shard: ``shard <n>: `` before each message, and a ``shard``
    field in the record (``--log-format json`` prints it)."""

    def __init__(self, logger: logging.Logger, shard: int) -> None:
        super().__init__(logger, {"shard": shard})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        shard = (self.extra or {}).get("shard")
        kwargs["extra"] = {**(kwargs.get("extra") or {}), "shard": shard}
        return f"shard {shard}: {msg}", kwargs


def proxy_shards(dsn: str) -> dict[int, str] | None:
    """The shards (number: DSN as the proxy records it) when ``dsn`` is a cluster's proxy;
    None for one database (or a shard). Raises :class:`psycopg.OperationalError` when the
    database cannot be reached (the caller waits and asks again)."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT to_regclass('orderdb_cluster.shards') IS NOT NULL").fetchone()
        if not (row and row[0]):
            return None
        rows = conn.execute("SELECT shard, dsn FROM orderdb_cluster.shards ORDER BY shard")
        return {int(r[0]): str(r[1]) for r in rows.fetchall()}


class ShardRelays:
    """One :class:`Relay` per shard, each run in a thread of its own by :meth:`run`.

    ``make_relay(shard_dsn, logger)`` builds a shard's relay with the options of the command
    line (one database's rules: nothing of the relay is repeated here). The Python handler, if
    any, is called by one shard's relay at a time (a handler written for one relay needs no
    locking). A lost connection is each relay's own affair (it reconnects); any other error
    of one relay (a shard without orderdb, a bug) stops them all and is raised by :meth:`run`,
    as one relay raises it.
    """

    def __init__(self, shards: Mapping[int, str], make_relay: Callable[[str, Log], Relay]) -> None:
        self.relays: dict[int, Relay] = {
            shard: make_relay(dsn, ShardLog(log, shard)) for shard, dsn in shards.items()
        }
        self._handler_lock = threading.Lock()
        self._stopped = threading.Event()

    def stop(self) -> None:
        """Stop every shard's relay; :meth:`run` returns once all have stopped."""
        self._stopped.set()
        for relay in self.relays.values():
            relay.stop()

    def run(self, handler: Callable[[Event], None] | None = None) -> None:
        """Run every shard's relay until :meth:`stop` (or until one fails: then raised)."""
        one_at_a_time = None if handler is None else self._serialised(handler)

        def failed(shard: int, exc: BaseException) -> None:  # raised by run() once all stopped
            self.relays[shard].log.error("relay failed: %r; stopping every shard's relay", exc)
            self.stop()

        _, failures = run_per_shard(
            self.relays,
            lambda _shard, relay: relay.run(one_at_a_time),
            stop=self.stop,
            on_failure=failed,
            name="orderdb-relay-shard",
        )
        if failures:
            raise next(iter(failures.values()))

    def _serialised(self, handler: Callable[[Event], None]) -> Callable[[Event], None]:
        def call(event: Event) -> None:
            with self._handler_lock:
                handler(event)

        return call
