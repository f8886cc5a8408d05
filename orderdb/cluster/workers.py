"""Run one worker per shard of a cluster in one process (docs/scaling.md "Tools against the
proxy"): ``orderdb relay``, ``orderdb wms-dispatch`` and ``orderdb poll-carriers`` with the
proxy's DSN.

:func:`run_per_shard` is the one place of the threads: a thread per shard, the main thread
joining with a timeout so that it runs the signal handlers (``SIGTERM``/``SIGINT`` set the
tools' stop events), every shard's outcome or error collected. Each tool says what one shard's
failure does (``on_failure``): the relay stops every shard's relay, a dispatcher or poller
leaves the other shards working. A lost connection is each shard's own worker's affair (it
reconnects with its own backoff, see :func:`reconnecting`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import psycopg

T = TypeVar("T")
R = TypeVar("R")


class _Log(Protocol):
    def warning(self, msg: str, *args: object) -> object: ...


class _Report(Protocol):
    def add(self, other: Any) -> None: ...


ReportT = TypeVar("ReportT", bound=_Report)


def run_per_shard(
    shards: Mapping[int, T],
    work: Callable[[int, T], R],
    *,
    stop: Callable[[], None],
    on_failure: Callable[[int, BaseException], None] | None = None,
    name: str = "orderdb-shard",
) -> tuple[dict[int, R], dict[int, BaseException]]:
    """Runs ``work(shard, item)`` for every shard, each in a thread of its own, until all have
    returned; returns each shard's result and each failed shard's error. ``on_failure(shard,
    exc)`` is called in the failed shard's thread (e.g. to stop the others). ``stop()`` is
    called once all returned, or when the main thread is interrupted (then the threads are
    waited for)."""
    results: dict[int, R] = {}
    failures: dict[int, BaseException] = {}
    lock = threading.Lock()

    def run_one(shard: int, item: T) -> None:
        try:
            result = work(shard, item)
        except BaseException as exc:  # the caller decides: returned with the others
            with lock:
                failures[shard] = exc
            if on_failure is not None:
                on_failure(shard, exc)
            return
        with lock:
            results[shard] = result

    threads = [
        threading.Thread(target=run_one, args=(shard, item), name=f"{name}{shard}")
        for shard, item in shards.items()
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                # a timeout, so that the main thread runs the signal handlers meanwhile
                thread.join(timeout=0.5)
    finally:
        stop()
        for thread in threads:
            thread.join()
    return results, failures


def reconnecting(
    work: Callable[[], R],
    stop: threading.Event,
    log: _Log,
    *,
    first_wait: float = 1.0,
    longest_wait: float = 30.0,
) -> R | None:
    """Runs ``work()`` until it returns (its result) or ``stop`` is set (None); a lost or
    refused connection (:class:`psycopg.OperationalError`) is logged and ``work`` runs again
    after a wait doubling from ``first_wait`` to ``longest_wait``."""
    wait = first_wait
    while not stop.is_set():
        try:
            return work()
        except psycopg.OperationalError as exc:
            log.warning("database unavailable: %s; again in %.1f s", str(exc).strip(), wait)
            stop.wait(wait)
            wait = min(wait * 2, longest_wait)
    return None


def run_tool_per_shard(
    shards: Mapping[int, str],
    work: Callable[[int, str, threading.Event], ReportT],
    *,
    total: ReportT,
    once: bool,
    logger: logging.Logger,
    what: str,
    announce: Callable[[], None],
    print_partial: Callable[[ReportT], None],
    name: str,
) -> ReportT:
    """A tool's workers per shard (``orderdb wms-dispatch`` and ``orderdb poll-carriers`` with the
    proxy's DSN): ``work(shard, dsn, stop)`` in a thread per shard (:func:`run_per_shard`), each
    with its own stop event; returns ``total`` with every shard's report added. A shard's error
    is logged (``shard N: <what> failed: ...``); without ``once`` it stops every shard's worker
    (as one worker stops) and SIGTERM/SIGINT stop them all (``announce()`` says what runs). A
    failed shard's error is raised once the others have returned, after ``print_partial(total)``
    (its exit status is the tool's)."""
    from orderdb.cluster.relay import ShardLog  # it imports this module

    stops = {shard: threading.Event() for shard in shards}

    def stop_all() -> None:
        for event in stops.values():
            event.set()

    def failed(shard: int, exc: BaseException) -> None:
        ShardLog(logger, shard).error("%s failed: %s", what, str(exc).strip() or repr(exc))
        if not once:  # not a lost connection (that one reconnects): stop every shard's
            stop_all()

    if not once:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop_all())
        announce()
    results, failures = run_per_shard(
        shards,
        lambda shard, dsn: work(shard, dsn, stops[shard]),
        stop=stop_all,
        on_failure=failed,
        name=name,
    )
    for report in results.values():
        total.add(report)
    if failures:
        print_partial(total)
        raise next(iter(failures.values()))
    return total
