"""CLI commands: ``orderdb events tail|bench``, ``orderdb relay``, ``orderdb webhooks ...``."""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import threading
from datetime import timedelta
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import click
import psycopg
from click.core import ParameterSource

from orderdb import events as ev
from orderdb.cli.base import (
    INT8,
    SECONDS,
    FiniteFloatRange,
    dsn_option,
    echo_json,
    err_console,
    get_dsn,
    handle_errors,
    log_format_option,
    main,
    notice,
    print_table,
    read_secret,
    redact,
    refuse_cluster_proxy,
    secret_options,
    setup_logging,
    warn,
)
from orderdb.events.listen import Log

WEBHOOK_SECRET_ENV = "ORDERDB_WEBHOOKS_ADD_SECRET"  # noqa: S105 - a variable name
#: the relay's sink URLs (separated by blanks): the place for URLs with a password
RELAY_SINK_ENV = "ORDERDB_RELAY_SINK"
SINK_ARGV_WARNING = (
    "warning: the password in --sink is visible to other local users (ps) and kept in shell "
    f"histories: put the URL in {RELAY_SINK_ENV} instead"
)


@main.group("events")
def events_group() -> None:
    """The transactional outbox: tail it as a consumer, benchmark the event path."""


@events_group.command("tail")
@click.option("--consumer", required=True, help="Consumer name: its position is kept durably.")
@click.option(
    "--idle-exit",
    type=SECONDS,
    default=None,
    metavar="SECONDS",
    help="Exit after this many seconds without a new event (default: run until interrupted).",
)
@click.option("--batch-size", type=click.IntRange(1, 10000), default=500, show_default=True)
@click.option(
    "--poll-interval",
    type=FiniteFloatRange(min=0.001, max=3600),
    default=0.01,
    show_default=True,
    help="Seconds between reads when idle (a NOTIFY on orderdb_events wakes it earlier).",
)
@log_format_option
@dsn_option
@click.pass_context
@handle_errors
def events_tail(
    ctx: click.Context,
    consumer: str,
    idle_exit: float | None,
    batch_size: int,
    poll_interval: float,
    log_format: str,
    sub_dsn: str | None,
) -> None:
    """Print the consumer's events, one JSON object per line, and acknowledge them.

    Each line has event_id, event_type, order_id, payload and created_at. Starts after the
    consumer's acknowledged position; a batch is acknowledged only once its lines are written and
    flushed, so after a crash the unacknowledged lines come again (at-least-once: dedupe on
    event_id). Reconnects by itself after a lost connection.
    """
    dsn = get_dsn(ctx, sub_dsn)
    loop = ev.EventLoop(
        dsn, consumer, batch_size=batch_size, poll_interval=poll_interval, listen=(ev.CHANNEL,)
    )
    out = sys.stdout

    def on_batch(conn: psycopg.Connection[Any], batch: list[ev.Event]) -> None:
        try:
            out.write("".join(line + "\n" for line in ev.iter_lines(batch)))
            out.flush()
        except BrokenPipeError:
            loop.stop()  # the reader went away: acknowledge nothing more
            return
        ev.ack_events(conn, consumer, batch[-1].event_id)

    _stop_on_signals(loop.stop)
    setup_logging(log_format, logging.WARNING)
    loop.run(on_batch, idle_exit=idle_exit)


@events_group.command("bench")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option(
    "--rate",
    type=click.IntRange(1, 1_000_000),
    default=1000,
    show_default=True,
    help="Events/s for latency.",
)
@click.option(
    "--seconds",
    type=click.IntRange(1, 3600),
    default=10,
    show_default=True,
    help="Length of each phase.",
)
@click.option(
    "--clients",
    type=click.IntRange(1, 150),
    default=8,
    show_default=True,
    help="Throughput clients.",
)
@click.option(
    "--rounds",
    type=click.IntRange(1, 100),
    default=4,
    show_default=True,
    help="Off/on throughput pairs.",
)
@click.option(
    "--groups",
    is_flag=True,
    help="Instead: consumer-group throughput (events/s) with 1, 2 and 4 `events work` members.",
)
@click.option(
    "--events",
    "group_events",
    type=click.IntRange(100, 10_000_000),
    default=20000,
    show_default=True,
    help="With --groups: events to work through per run.",
)
@dsn_option
@click.pass_context
@handle_errors
def events_bench(
    ctx: click.Context,
    as_json: bool,
    rate: int,
    seconds: int,
    clients: int,
    rounds: int,
    groups: bool,
    group_events: int,
    sub_dsn: str | None,
) -> None:
    """Measure commit -> `events tail` latency at RATE events/s, and create_order throughput with
    the relay running vs without (same run); or, with --groups, how many events/s a consumer
    group works through with 1, 2 and 4 members. The database must be migrated."""
    import orderdb.bench.events as bench_events

    dsn = get_dsn(ctx, sub_dsn)
    if groups:
        import orderdb.bench.groups as bench_groups

        group_result = bench_groups.run(dsn, events=group_events)
        if as_json:
            echo_json(group_result)
        else:
            bench_groups.print_result(group_result)
        return
    result = bench_events.run(dsn, rate=rate, seconds=seconds, clients=clients, rounds=rounds)
    if as_json:
        echo_json(result)
    else:
        bench_events.print_result(result)


@events_group.command("work")
@click.option("--group", required=True, help="Consumer group: its members share one stream.")
@click.option(
    "--handler",
    "handler_ref",
    required=True,
    metavar="MODULE:FUNCTION",
    help="A Python callable called with each orderdb.events.Event (at-least-once).",
)
@click.option("--member", default=None, help="This member's name (default: <host>-<pid>).")
@click.option(
    "--idle-exit",
    type=SECONDS,
    default=None,
    metavar="SECONDS",
    help="Exit after this many seconds without an event (default: run until stopped).",
)
@click.option("--batch-size", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option(
    "--lease-seconds",
    type=click.IntRange(1, 3600),
    default=30,
    show_default=True,
    help="How long a claimed event stays this member's; unacknowledged, it then goes to another.",
)
@click.option(
    "--ack-every",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="Acknowledge after this many handled events (and at the end of every batch).",
)
@click.option(
    "--poll-interval",
    type=FiniteFloatRange(min=0.001, max=3600),
    default=0.1,
    show_default=True,
    help="Seconds between claims when idle (a NOTIFY on orderdb_events wakes it earlier).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log lifecycle and counters.")
@log_format_option
@dsn_option
@click.pass_context
@handle_errors
def events_work(
    ctx: click.Context,
    group: str,
    handler_ref: str,
    member: str | None,
    idle_exit: float | None,
    batch_size: int,
    lease_seconds: int,
    ack_every: int,
    poll_interval: float,
    verbose: bool,
    log_format: str,
    sub_dsn: str | None,
) -> None:
    """Run one member of consumer group GROUP: claim events, call the handler with each,
    acknowledge after it returned.

    Start as many members (processes, hosts) as you like: each event goes to one member at a
    time; an order's events come in order, a later one only after the earlier is acknowledged.
    At-least-once: a member that dies leaves its events leased; they go to another member when
    the lease runs out (dedupe on event_id). SIGTERM/SIGINT: the current event is finished and
    acknowledged, the rest of the batch released. Reconnects by itself after a lost connection.
    """
    from orderdb.events.groups import GroupMember

    setup_logging(log_format, logging.INFO if verbose else logging.WARNING)
    handler = _load_handler(handler_ref)
    worker = GroupMember(
        get_dsn(ctx, sub_dsn),
        group,
        member,
        batch_size=batch_size,
        lease_seconds=lease_seconds,
        ack_every=ack_every,
        poll_interval=poll_interval,
    )
    _stop_on_signals(worker.stop)
    notice(
        f"member {worker.member!r} of group {group!r} working (Ctrl-C to stop)",
        group=group,
        member=worker.member,
    )
    worker.run(handler, idle_exit=idle_exit)
    s = worker.stats
    notice(
        f"member {worker.member!r} stopped: {s.handled} events handled, {s.acked} acknowledged,"
        f" {s.released} released, {s.handler_errors} handler errors",
        group=group,
        member=worker.member,
        handled=s.handled,
        acked=s.acked,
        released=s.released,
        handler_errors=s.handler_errors,
    )


@main.command("relay")
@click.option("--consumer", default="orderdb-relay", show_default=True, help="Its consumer name.")
@click.option("--batch-size", type=click.IntRange(1, 10000), default=500, show_default=True)
@click.option(
    "--poll-interval", type=FiniteFloatRange(min=0.001, max=3600), default=0.05, show_default=True
)
@click.option("--no-notify", is_flag=True, help="Do not NOTIFY orderdb_events.")
@click.option("--no-webhooks", is_flag=True, help="Neither queue nor send webhooks.")
@click.option("--webhook-concurrency", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option(
    "--webhook-timeout",
    type=FiniteFloatRange(min=0, min_open=True, max=3600),
    default=10.0,
    show_default=True,
)
@click.option(
    "--retention-hours",
    type=FiniteFloatRange(min=0, max=1_000_000),
    default=168.0,
    show_default=True,
    help="Purge events every consumer acknowledged once older than this (0: at once).",
)
@click.option("--no-purge", is_flag=True, help="Never purge the outbox.")
@click.option(
    "--handler",
    "handler_ref",
    default=None,
    metavar="MODULE:FUNCTION",
    help="A Python callable called with each orderdb.events.Event (at-least-once).",
)
@click.option(
    "--sink",
    "sink_urls",
    multiple=True,
    metavar="URL",
    envvar=RELAY_SINK_ENV,
    help="Also publish every event to a broker, acknowledging the outbox only after it confirmed"
    " (repeatable): nats://HOST:PORT/?stream=NAME&subject=PREFIX (JetStream) or"
    " amqp://USER:PASS@HOST:PORT/VHOST?exchange=NAME (RabbitMQ). Needs orderdb[brokers]."
    f" A URL with a password belongs in ${RELAY_SINK_ENV} (URLs separated by blanks).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every batch.")
@log_format_option
@dsn_option
@click.pass_context
@handle_errors
def relay(
    ctx: click.Context,
    consumer: str,
    batch_size: int,
    poll_interval: float,
    no_notify: bool,
    no_webhooks: bool,
    webhook_concurrency: int,
    webhook_timeout: float,
    retention_hours: float,
    no_purge: bool,
    handler_ref: str | None,
    sink_urls: tuple[str, ...],
    verbose: bool,
    log_format: str,
    sub_dsn: str | None,
) -> None:
    """Run the outbox relay: NOTIFY orderdb_events, webhooks, Python handlers, broker sinks,
    retention.

    Runs until SIGINT/SIGTERM; survives database restarts (reconnects and catches up). With a
    cluster's proxy DSN it runs one relay per shard, each on the shard's DSN as the proxy
    records it (docs/scaling.md "Tools against the proxy").
    """
    setup_logging(log_format, logging.INFO if verbose else logging.WARNING)
    if ctx.get_parameter_source("sink_urls") is ParameterSource.COMMANDLINE and any(
        _has_password(url) for url in sink_urls
    ):
        warn(SINK_ARGV_WARNING)  # once, however many such URLs
    handler = _load_handler(handler_ref) if handler_ref else None
    from orderdb.events.sinks import Sink, open_sink

    def open_sinks() -> list[Sink]:
        sinks = []
        for url in sink_urls:
            try:
                sinks.append(open_sink(url))
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--sink") from exc
        return sinks

    sinks = open_sinks()  # a bad URL is refused before anything runs
    unused = [sinks]  # those go to the first relay; each shard's relay opens its own
    dsn = get_dsn(ctx, sub_dsn)

    def make_relay(relay_dsn: str, logger: Log | None = None) -> ev.Relay:
        return ev.Relay(
            relay_dsn,
            consumer=consumer,
            batch_size=batch_size,
            poll_interval=poll_interval,
            notify=not no_notify,
            webhooks=not no_webhooks,
            webhook_concurrency=webhook_concurrency,
            webhook_timeout=webhook_timeout,
            retention=None if no_purge else timedelta(hours=retention_hours),
            sinks=unused.pop() if unused else open_sinks(),
            logger=logger,
        )

    shards = _proxy_shards(dsn)
    if shards is _STOPPED:
        notice("relay stopped before it reached the database", consumer=consumer)
        return
    if shards == {}:
        raise click.UsageError("the cluster proxy records no shards (orderdb cluster status)")
    publishing = "".join(f", publishing to {sink.name}" for sink in sinks)
    if shards is None:
        r = make_relay(dsn)
        _stop_on_signals(r.stop)
        notice(
            f"relay running as consumer {consumer!r}{publishing} (Ctrl-C to stop)",
            consumer=consumer,
            sinks=[sink.name for sink in sinks],
        )
        r.run(handler)
        _relay_stopped("relay stopped", consumer, r.stats)
        return
    from orderdb.cluster.relay import ShardRelays

    relays = ShardRelays(shards, make_relay)
    _stop_on_signals(relays.stop)
    notice(
        f"relay running as consumer {consumer!r} on the {len(shards)} shards of the cluster"
        + "".join(f", shard {n}: {redact(d)}" for n, d in shards.items())
        + f"{publishing} (Ctrl-C to stop)",
        consumer=consumer,
        shards={n: redact(d) for n, d in shards.items()},
        sinks=[sink.name for sink in sinks],
    )
    try:
        relays.run(handler)
    finally:
        for shard, shard_relay in relays.relays.items():
            _relay_stopped(f"relay of shard {shard} stopped", consumer, shard_relay.stats, shard)


def _has_password(url: str) -> bool:
    """Whether a sink URL carries a password (``amqp://user:secret@host/``)."""
    try:
        return bool(urlsplit(url).password)
    except ValueError:  # malformed: refused by open_sink, which never shows the password
        return False


#: what :func:`_proxy_shards` answers when SIGINT/SIGTERM came before the database answered
_STOPPED: dict[int, str] = {}


def _proxy_shards(dsn: str) -> dict[int, str] | None:
    """The shards when ``dsn`` is a cluster's proxy (None: one database). While the database
    cannot be reached, waits and asks again (as the relay itself would), until SIGINT/SIGTERM
    (then :data:`_STOPPED`)."""
    from orderdb.cluster.relay import proxy_shards
    from orderdb.events.listen import Backoff, _first_line

    stop = threading.Event()
    _stop_on_signals(stop.set)
    backoff = Backoff(0.1, 5.0)
    while not stop.is_set():
        try:
            shards = proxy_shards(dsn)
        except psycopg.OperationalError as exc:
            delay = backoff.next_delay()
            logging.getLogger("orderdb.events").warning(
                "connect failed (%s); retrying in %.2fs", _first_line(exc), delay
            )
            stop.wait(delay)
            continue
        if not stop.is_set():
            return shards
    return _STOPPED


def _relay_stopped(what: str, consumer: str, s: ev.RelayStats, shard: int | None = None) -> None:
    notice(
        f"{what}: {s.events} events in {s.batches} batches, {s.notifications} notifications,"
        f" {s.deliveries_enqueued} webhook deliveries queued, {s.webhook_delivered} delivered,"
        f" {s.webhook_dead} dead, {s.purged} purged, {s.sink_published} published to brokers"
        f" ({s.sink_errors} failed attempts)",
        consumer=consumer,
        **({} if shard is None else {"shard": shard}),
        events=s.events,
        batches=s.batches,
        notifications=s.notifications,
        deliveries_enqueued=s.deliveries_enqueued,
        webhook_delivered=s.webhook_delivered,
        webhook_dead=s.webhook_dead,
        purged=s.purged,
        sink_published=s.sink_published,
        sink_errors=s.sink_errors,
    )


def _load_handler(ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise click.BadParameter("expected MODULE:FUNCTION", param_hint="--handler")
    func = getattr(importlib.import_module(module_name), attr, None)
    if not callable(func):
        raise click.BadParameter(f"{ref} is not callable", param_hint="--handler")
    return func


def _stop_on_signals(stop: Any) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


# --------------------------------------------------------------------------- webhooks


@main.group("webhooks")
def webhooks_group() -> None:
    """Webhook subscriptions and their deliveries (sent by `orderdb relay`)."""


@webhooks_group.command("add")
@click.argument("url")
@click.option(
    "--event-type", "event_types", multiple=True, help="Only these event types (repeatable)."
)
@secret_options(WEBHOOK_SECRET_ENV, "the signing secret (whsec_<base64>)")
@click.option("--max-attempts", type=click.IntRange(1, 100), default=8, show_default=True)
@click.option("--description", default=None)
@dsn_option
@click.pass_context
@handle_errors
def webhooks_add(
    ctx: click.Context,
    url: str,
    event_types: tuple[str, ...],
    secret_file: str | None,
    prompt_secret: bool,
    max_attempts: int,
    description: str | None,
    sub_dsn: str | None,
) -> None:
    """Subscribe URL to events (all types unless --event-type); prints its id and secret.

    The secret (whsec_<base64>, Standard Webhooks) is printed this once: no other command shows
    it. Receivers verify deliveries with it, e.g. standardwebhooks.Webhook(secret).verify(...).
    A secret of your own is never a command-line argument: --secret-file, --prompt-secret or
    $ORDERDB_WEBHOOKS_ADD_SECRET.
    """
    secret = read_secret(secret_file, prompt_secret, WEBHOOK_SECRET_ENV)
    with psycopg.connect(get_dsn(ctx, sub_dsn), autocommit=True) as conn:
        row = conn.execute(
            "SELECT subscription_id, secret FROM orderdb.create_webhook_subscription("
            "%s, %s, %s, %s, %s)",
            (url, list(event_types) or None, secret, max_attempts, description),
        ).fetchone()
    assert row is not None
    echo_json({"subscription_id": row[0], "url": url, "secret": row[1]})
    err_console.print(
        "the secret is not shown again: store it now",
        markup=False,
        highlight=False,
    )


@webhooks_group.command("list")
@click.option("--dead", is_flag=True, help="List dead-lettered deliveries instead.")
@click.option("--json", "as_json", is_flag=True)
@dsn_option
@click.pass_context
@handle_errors
def webhooks_list(ctx: click.Context, dead: bool, as_json: bool, sub_dsn: str | None) -> None:
    """Subscriptions with their delivery counts (or, with --dead, the dead letters)."""
    dsn = get_dsn(ctx, sub_dsn)
    refuse_cluster_proxy(dsn, "webhooks list")
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        if dead:
            cur.execute(
                "SELECT delivery_id, subscription_id, event_id, event_type, order_id, attempts,"
                "       last_status_code, last_error, dead_at"
                "  FROM orderdb.webhook_deliveries WHERE status = 'dead'"
                " ORDER BY delivery_id"
            )
        else:
            cur.execute(
                "SELECT s.subscription_id, s.url, s.event_types, s.active, s.max_attempts,"
                "       count(*) FILTER (WHERE d.status = 'pending') AS pending,"
                "       count(*) FILTER (WHERE d.status = 'delivered') AS delivered,"
                "       count(*) FILTER (WHERE d.status = 'dead') AS dead"
                "  FROM orderdb.webhook_subscriptions s"
                "  LEFT JOIN orderdb.webhook_deliveries d USING (subscription_id)"
                " GROUP BY s.subscription_id ORDER BY s.subscription_id"
            )
        columns = [c.name for c in cur.description or []]
        rows = cur.fetchall()
    if as_json:
        echo_json([dict(zip(columns, r, strict=True)) for r in rows])
    else:
        print_table("dead webhook deliveries" if dead else "webhook subscriptions", columns, rows)


@webhooks_group.command("retry")
@click.argument("delivery_ids", nargs=-1, type=INT8)
@click.option("--all-dead", is_flag=True, help="Retry every dead-lettered delivery.")
@dsn_option
@click.pass_context
@handle_errors
def webhooks_retry(
    ctx: click.Context, delivery_ids: tuple[int, ...], all_dead: bool, sub_dsn: str | None
) -> None:
    """Put dead-lettered deliveries back in the queue (attempts reset) and wake the relay."""
    if not delivery_ids and not all_dead:
        raise click.UsageError("give delivery ids or --all-dead")
    dsn = get_dsn(ctx, sub_dsn)
    refuse_cluster_proxy(dsn, "webhooks retry")
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = list(delivery_ids)
        if all_dead:
            ids += [
                r[0]
                for r in conn.execute(
                    "SELECT delivery_id FROM orderdb.webhook_deliveries WHERE status = 'dead'"
                    " ORDER BY delivery_id"
                )
            ]
        with conn.transaction():
            for delivery_id in ids:
                conn.execute("SELECT orderdb.retry_webhook_delivery(%s)", (delivery_id,))
            conn.execute("SELECT pg_notify(%s, '')", (ev.WAKEUP_CHANNEL,))
    click.echo(f"{len(ids)} deliveries queued again")
