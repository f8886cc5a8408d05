"""The consumer-group benchmark: ``orderdb events bench --groups``.

Writes ``events`` outbox events (``orders`` orders, their events interleaved, 50 per
transaction), then, for 1, 2 and 4 members, lets that many :class:`~orderdb.events.groups.
GroupMember` processes (a no-op handler) work through all of them as a fresh consumer group, and
reports events/s from the first claim to the last acknowledgement, once acknowledging every event
(``orderdb events work``'s default) and once per batch (``--ack-every``). The bench's groups and
events are deleted at the end.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import secrets
import time
from typing import Any

import psycopg

from orderdb.events.groups import GroupMember
from orderdb.events.stream import Event

BENCH_ORDER_BASE = 9_900_000_000_000


_HANDLER_SECONDS = 0.0


def handler(event: Event) -> None:
    """The handler of the bench's members: nothing, or a sleep (an I/O-bound handler)."""
    if _HANDLER_SECONDS:
        time.sleep(_HANDLER_SECONDS)


def _member(
    dsn: str, group: str, name: str, ack_every: int, batch: int, delay: float, start: Any
) -> None:
    global _HANDLER_SECONDS
    _HANDLER_SECONDS = delay
    worker = GroupMember(
        dsn, group, name, batch_size=batch, ack_every=ack_every, poll_interval=0.05
    )
    start.wait()
    worker.run(handler, idle_exit=1.0)


def _fill(conn: psycopg.Connection[Any], events: int, orders: int, base: int) -> None:
    per_tx = 50
    for start in range(0, events, per_tx):
        with conn.transaction():
            conn.execute(
                "SELECT orderdb._emit_event('bench.group', %s + (g %% %s), NULL, '{}'::jsonb)"
                "  FROM generate_series(%s::integer, %s::integer) g",
                (base, orders, start, min(start + per_tx, events) - 1),
            )


def _one(
    dsn: str, members: int, ack_every: int, batch: int, events: int, base: int, delay: float
) -> dict[str, Any]:
    group = f"bench-{secrets.token_hex(4)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        # the group starts just before the bench's events (nothing else is counted)
        conn.execute("SELECT FROM orderdb.claim_events(%s, 'setup', 1, 1)", (group,))
        conn.execute("DELETE FROM orderdb.event_group_leases WHERE group_name = %s", (group,))
        conn.execute(
            "UPDATE orderdb.event_groups g SET low_tx_id = o.tx_id, low_event_id = o.event_id"
            "  FROM (SELECT tx_id, event_id FROM orderdb.outbox"
            "         WHERE (tx_id, event_id) < (SELECT tx_id, event_id FROM orderdb.outbox"
            "                                     WHERE order_id >= %s"
            "                                     ORDER BY tx_id, event_id LIMIT 1)"
            "         ORDER BY tx_id DESC, event_id DESC LIMIT 1) o"
            " WHERE g.group_name = %s",
            (base, group),
        )
        ctx = mp.get_context("spawn")
        start = ctx.Event()
        procs = [
            ctx.Process(
                target=_member,
                args=(dsn, group, f"m{i}", ack_every, batch, delay, start),
                daemon=True,
            )
            for i in range(members)
        ]
        for p in procs:
            p.start()
        time.sleep(1.0)  # imports and connections before the clock starts
        t0 = time.perf_counter()
        start.set()
        while True:
            row = conn.execute(
                "SELECT count(*) FROM orderdb.event_group_leases"
                " WHERE group_name = %s AND acked_at IS NOT NULL AND order_id >= %s",
                (group, base),
            ).fetchone()
            if row is not None and row[0] >= events:
                break
            if time.perf_counter() - t0 > 600:
                raise RuntimeError(f"group bench: {row[0] if row else 0} of {events} after 600 s")
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
        for p in procs:  # done (or, with a slow handler, enough measured)
            p.terminate()
            p.join(timeout=30)
        conn.execute("DELETE FROM orderdb.event_group_leases WHERE group_name = %s", (group,))
        conn.execute("DELETE FROM orderdb.event_groups WHERE group_name = %s", (group,))
    return {
        "members": members,
        "ack_every": ack_every,
        "batch_size": batch,
        "handler_ms": round(delay * 1000, 3),
        "events": events,
        "seconds": round(elapsed, 3),
        "events_per_s": round(events / elapsed),
    }


def run(dsn: str, *, events: int = 20000, orders: int = 2000, batch: int = 100) -> dict[str, Any]:
    """Fill, then time 1, 2 and 4 members: a no-op handler with per-event and per-batch
    acknowledgements, and a 2 ms handler (I/O-bound work: members add up) on the first
    ``events // 10`` events."""
    base = BENCH_ORDER_BASE + secrets.randbelow(10**9) * 10**4
    with psycopg.connect(dsn, autocommit=True) as conn:
        _fill(conn, events, orders, base)
        server = conn.execute("SHOW server_version").fetchone()
    try:
        runs = [
            _one(dsn, members, ack_every, batch, n, base, delay)
            for ack_every, delay, n in (
                (1, 0.0, events),
                (batch, 0.0, events),
                (1, 0.002, events // 10),
            )
            for members in (1, 2, 4)
        ]
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM orderdb.outbox WHERE order_id BETWEEN %s AND %s",
                (base, base + orders),
            )
    return {
        "benchmark": "consumer groups",
        "events": events,
        "orders": orders,
        "runs": runs,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "server_version": server[0] if server else None,
        },
    }


def print_result(result: dict[str, Any]) -> None:
    print(
        f"consumer groups: {result['events']} events of {result['orders']} orders, "
        f"{result['machine']['cpus']} CPUs, PostgreSQL {result['machine']['server_version']}"
    )
    for r in result["runs"]:
        print(
            f"  {r['members']} member(s), handler {r['handler_ms']} ms, ack every"
            f" {r['ack_every']:>3}, batch {r['batch_size']}: "
            f"{r['events_per_s']:>6} events/s ({r['seconds']} s)"
        )
