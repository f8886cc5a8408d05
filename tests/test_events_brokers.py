"""The relay's broker sinks against the running NATS JetStream (127.0.0.1:4222) and RabbitMQ
(127.0.0.1:5672, guest/guest): every event published, confirmed and consumed; the relay killed
with SIGKILL mid-batch and restarted (JetStream holds each event once, RabbitMQ at least once);
a broker that does not answer holds the relay back and loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import psycopg
import pytest

from orderdb.events.sinks import SinkError, open_sink, redact

ROOT = Path(__file__).resolve().parent.parent
NATS = "nats://127.0.0.1:4222"
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _wait_for(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Brokers:
    """One test's stream, subject prefix, exchange and queue (bound to every routing key)."""

    stream: str
    subject: str
    exchange: str
    queue: str

    @property
    def nats_url(self) -> str:
        return f"{NATS}/?stream={self.stream}&subject={self.subject}"

    @property
    def amqp_url(self) -> str:
        return f"{AMQP}?exchange={self.exchange}"

    def nats_messages(self) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
        """Every message of the stream, read with an ephemeral pull consumer: (subject, headers,
        body)."""

        async def read() -> list[tuple[str, dict[str, str], dict[str, Any]]]:
            import nats
            from nats.errors import TimeoutError as NatsTimeout

            nc = await nats.connect(NATS)
            try:
                js = nc.jetstream()
                info = await js.stream_info(self.stream)
                total = info.state.messages
                sub = await js.pull_subscribe(f"{self.subject}.>", stream=self.stream)
                out: list[tuple[str, dict[str, str], dict[str, Any]]] = []
                while len(out) < total:
                    try:
                        msgs = await sub.fetch(500, timeout=5)
                    except NatsTimeout:
                        break
                    for m in msgs:
                        out.append((m.subject, dict(m.headers or {}), json.loads(m.data)))
                        await m.ack()
                return out
            finally:
                await nc.close()

        return asyncio.run(read())

    def nats_count(self) -> int:
        async def count() -> int:
            import nats
            from nats.js.errors import NotFoundError

            nc = await nats.connect(NATS)
            try:
                return int((await nc.jetstream().stream_info(self.stream)).state.messages)
            except NotFoundError:
                return 0
            finally:
                await nc.close()

        return asyncio.run(count())

    def amqp_messages(self) -> list[tuple[str, pika.BasicProperties, dict[str, Any]]]:
        """Everything in the queue, in queue order: (routing key, properties, body)."""
        conn = pika.BlockingConnection(pika.URLParameters(AMQP))
        try:
            ch = conn.channel()
            out = []
            while True:
                method, props, body = ch.basic_get(self.queue, auto_ack=True)
                if method is None:
                    return out
                out.append((method.routing_key, props, json.loads(body)))
        finally:
            conn.close()

    def amqp_count(self) -> int:
        conn = pika.BlockingConnection(pika.URLParameters(AMQP))
        try:
            q = conn.channel().queue_declare(self.queue, passive=True)
            return int(q.method.message_count)
        finally:
            conn.close()


@pytest.fixture
def brokers() -> Iterator[Brokers]:
    tag = secrets.token_hex(4)
    b = Brokers(
        stream=f"ORDERDB_T_{tag}",
        subject=f"t{tag}",
        exchange=f"orderdb.t{tag}",
        queue=f"orderdb.t{tag}.all",
    )
    # the consumer's queue exists before anything is published (a topic exchange drops what
    # no queue is bound for)
    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    ch = conn.channel()
    ch.exchange_declare(b.exchange, exchange_type="topic", durable=True)
    ch.queue_declare(b.queue, durable=True)
    ch.queue_bind(b.queue, b.exchange, routing_key="#")
    conn.close()
    try:
        yield b
    finally:
        conn = pika.BlockingConnection(pika.URLParameters(AMQP))
        ch = conn.channel()
        ch.queue_delete(b.queue)
        ch.exchange_delete(b.exchange)
        conn.close()

        async def drop() -> None:
            import nats

            nc = await nats.connect(NATS)
            with contextlib.suppress(Exception):
                await nc.jetstream().delete_stream(b.stream)
            await nc.close()

        asyncio.run(drop())


def _emit(dsn: str, orders: int, rounds: int) -> None:
    base = 9_400_000_000 + int.from_bytes(os.urandom(3), "big") * 1000
    types = ["order.created", "order.confirmed", "order.allocated", "order.shipped"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for r in range(rounds):
            for i in range(0, orders, 50):
                with conn.transaction():
                    conn.execute(
                        "SELECT orderdb._emit_event(%s, %s + g, NULL,"
                        " jsonb_build_object('round', %s::integer, 'price', 19.90))"
                        "  FROM generate_series(%s::integer, %s::integer) g",
                        (types[r % len(types)], base, r, i, min(i + 50, orders) - 1),
                    )


def _outbox(dsn: str) -> list[tuple[int, str, int | None]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT event_id, event_type, order_id FROM orderdb.outbox ORDER BY tx_id, event_id"
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def _pending(dsn: str, consumer: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pending_events FROM orderdb_ops.relay_lag"
            " WHERE kind = 'consumer' AND consumer = %s",
            (consumer,),
        ).fetchone()
    return -1 if row is None else int(row[0])


def _relay(dsn: str, consumer: str, *sinks: str) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "orderdb", "relay", "--consumer", consumer, "--no-webhooks"]
    for url in sinks:
        args += ["--sink", url]
    return subprocess.Popen(
        [*args, "--dsn", dsn],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    return err


def _check_in_order(ids: list[int], expected: list[int]) -> None:
    """First occurrences come in read order (a redelivery may repeat, never reorder)."""
    position = {e: i for i, e in enumerate(expected)}
    seen: set[int] = set()
    firsts = []
    for e in ids:
        if e not in seen:
            seen.add(e)
            firsts.append(position[e])
    assert firsts == sorted(firsts)


def test_every_event_published_confirmed_and_consumed(fresh_dsn: str, brokers: Brokers) -> None:
    _emit(fresh_dsn, orders=120, rounds=4)
    relay = _relay(fresh_dsn, "brokers", brokers.nats_url, brokers.amqp_url)
    try:
        _wait_for(lambda: _pending(fresh_dsn, "brokers") == 0)
    finally:
        err = _stop(relay)
    assert relay.returncode == 0, err
    assert "guest:***@" in err and "guest:guest" not in err, "the password is never printed"
    outbox = _outbox(fresh_dsn)
    expected = [e for e, _t, _o in outbox]
    types = {e: t for e, t, _o in outbox}

    nats_msgs = brokers.nats_messages()
    ids = [int(h["Nats-Msg-Id"]) for _s, h, _b in nats_msgs]
    assert ids == expected, "JetStream holds every event once, in read order"
    for subject, _h, body in nats_msgs:
        assert subject == f"{brokers.subject}.{types[body['event_id']]}"
        assert body["payload"]["price"] == 19.9 and set(body) == {
            "event_id",
            "event_type",
            "order_id",
            "payload",
            "created_at",
        }

    amqp_msgs = brokers.amqp_messages()
    ids = [int(p.message_id) for _rk, p, _b in amqp_msgs]
    assert ids == expected, "RabbitMQ got every event, in read order"
    for routing_key, props, body in amqp_msgs:
        assert routing_key == types[body["event_id"]] == props.type
        assert props.delivery_mode == 2 and props.content_type == "application/json"


def test_relay_killed_mid_batch_and_restarted(fresh_dsn: str, brokers: Brokers) -> None:
    _emit(fresh_dsn, orders=1000, rounds=5)
    expected = [e for e, _t, _o in _outbox(fresh_dsn)]
    relay = _relay(fresh_dsn, "killed", brokers.nats_url, brokers.amqp_url)
    try:
        # both brokers have part of the first batch: kill it there
        _wait_for(lambda: brokers.amqp_count() > 0, timeout=60)
        relay.send_signal(signal.SIGKILL)
        relay.wait(timeout=10)
    finally:
        if relay.poll() is None:
            relay.kill()
    assert _pending(fresh_dsn, "killed") > 0, "killed before it had published everything"
    assert brokers.nats_count() < len(expected)

    again = _relay(fresh_dsn, "killed", brokers.nats_url, brokers.amqp_url)
    try:
        _wait_for(lambda: _pending(fresh_dsn, "killed") == 0, timeout=120)
    finally:
        err = _stop(again)
    assert again.returncode == 0, err

    nats_ids = [int(h["Nats-Msg-Id"]) for _s, h, _b in brokers.nats_messages()]
    assert Counter(nats_ids) == Counter(expected), "JetStream holds each event exactly once"
    _check_in_order(nats_ids, expected)
    amqp_ids = [int(p.message_id) for _rk, p, _b in brokers.amqp_messages()]
    assert set(amqp_ids) == set(expected), "RabbitMQ holds every event at least once"
    _check_in_order(amqp_ids, expected)


def test_a_broker_that_does_not_answer_holds_the_relay_back(
    fresh_dsn: str, brokers: Brokers
) -> None:
    _emit(fresh_dsn, orders=100, rounds=2)
    expected = [e for e, _t, _o in _outbox(fresh_dsn)]
    closed = f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F?exchange={brokers.exchange}"
    relay = _relay(fresh_dsn, "held", brokers.nats_url, closed)
    try:
        time.sleep(4)
        assert relay.poll() is None, "the relay keeps running (and retrying)"
        assert _pending(fresh_dsn, "held") == len(expected), "nothing acknowledged"
        with psycopg.connect(fresh_dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT oldest_pending_age > interval '3 seconds' FROM orderdb_ops.relay_lag"
                " WHERE kind = 'consumer' AND consumer = 'held'"
            ).fetchone()
        assert row == (True,), "relay_lag shows the relay held back"
    finally:
        err = _stop(relay)
    assert relay.returncode == 0, err
    assert "ConnectionRefused" in err or "AMQPConnectionError" in err, err
    assert brokers.amqp_count() == 0

    # pointed at the real broker: it catches up, nothing lost, nothing out of order
    relay = _relay(fresh_dsn, "held", brokers.nats_url, brokers.amqp_url)
    try:
        _wait_for(lambda: _pending(fresh_dsn, "held") == 0)
    finally:
        err = _stop(relay)
    assert relay.returncode == 0, err
    nats_ids = [int(h["Nats-Msg-Id"]) for _s, h, _b in brokers.nats_messages()]
    assert nats_ids == expected, "the retried batches were dropped as duplicates by JetStream"
    amqp_ids = [int(p.message_id) for _rk, p, _b in brokers.amqp_messages()]
    assert amqp_ids == expected


def test_sink_urls_are_checked_and_never_show_the_password() -> None:
    for bad in (
        "kafka://127.0.0.1:9092/?topic=x",
        f"{NATS}/?subject=orderdb",  # no stream
        f"{NATS}/?stream=S&subject=bad..prefix",
        f"{NATS}/?stream=S&subject=x&bogus=1",
        "amqp://guest:secret@127.0.0.1:5672/%2F",  # no exchange
    ):
        with pytest.raises(ValueError) as info:
            open_sink(bad)
        assert "secret" not in str(info.value)
    assert redact("amqp://u:secret@h:1/v?exchange=e") == "amqp://u:***@h:1/v?exchange=e"
    sink = open_sink(f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F?exchange=x", timeout=2)
    with pytest.raises(SinkError):
        from datetime import UTC, datetime

        from orderdb.events.stream import Event

        sink.publish([Event(1, "order.created", 1, {}, datetime.now(UTC))])
    sink.close()
