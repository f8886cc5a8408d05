"""Broker sinks of the relay (``orderdb relay --sink URL``): every event is published to a message
broker, and the relay acknowledges the outbox only after every sink confirmed the batch.

* ``nats://HOST:PORT/?stream=NAME&subject=PREFIX`` — NATS JetStream (``nats-py``): subject
  ``PREFIX.<event_type>``, header ``Nats-Msg-Id`` = the event id, so that the stream drops a
  message published again within its duplicate window (effectively once); every publish waits for
  the stream's acknowledgement. The stream is created with subjects ``PREFIX.>`` when missing.
* ``amqp://USER:PASS@HOST:PORT/VHOST?exchange=NAME`` — RabbitMQ (``pika``): a durable topic
  exchange (declared when missing), routing key = the event type, persistent messages
  (delivery mode 2), ``message_id`` = the event id, publisher confirms (at-least-once: a message
  confirmed before a crash of the relay is published again after it).

The body is the event as one JSON object, as ``orderdb events tail`` prints it: ``event_id``,
``event_type``, ``order_id``, ``payload``, ``created_at``. Both clients are the ``brokers`` extra.
A sink that cannot publish raises :class:`SinkError`; it reconnects on the next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from orderdb.events.stream import Event

if TYPE_CHECKING:
    import pika.adapters.blocking_connection

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
_SUBJECT = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


class SinkError(Exception):
    """A sink could not publish (or have confirmed) every event of a batch."""


class Sink(Protocol):
    """What the relay needs of a sink."""

    #: the URL without its password (logs, errors)
    name: str

    def publish(self, events: Sequence[Event]) -> None:
        """Publish the events in order; return once the broker confirmed every one of them."""

    def idle(self) -> None:
        """Called while the relay waits for events (keep-alives)."""

    def close(self) -> None:
        """Close the connection (publishing again reconnects)."""


def redact(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{netloc[1]}").geturl()


def _query(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    out: dict[str, str] = {}
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        if len(values) != 1:
            raise ValueError(f"{redact(url)}: {key} given {len(values)} times")
        out[key] = values[0]
    return out


def open_sink(url: str, *, timeout: float = 10.0) -> Sink:
    """The sink for ``url`` (``nats://`` or ``amqp://``); ValueError for a malformed URL, a
    missing parameter, or a missing client library (install ``orderdb[brokers]``)."""
    scheme = urlsplit(url).scheme
    if scheme == "nats":
        return NatsSink(url, timeout=timeout)
    if scheme in ("amqp", "amqps"):
        return AmqpSink(url, timeout=timeout)
    raise ValueError(f"{redact(url)}: a sink URL starts with nats:// or amqp://")


# --------------------------------------------------------------------------- NATS JetStream


class NatsSink:
    """NATS JetStream: one connection, its asyncio loop in a thread of its own (so that the
    client answers the server's pings while the relay waits for events)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        try:
            import nats  # noqa: F401
        except ImportError as exc:
            raise ValueError("the NATS sink needs nats-py: pip install 'orderdb[brokers]'") from exc
        parts = urlsplit(url)
        params = _query(url)
        unknown = set(params) - {"stream", "subject"}
        if unknown:
            raise ValueError(f"{redact(url)}: unknown parameter(s) {', '.join(sorted(unknown))}")
        self.stream = params.get("stream", "")
        self.subject = params.get("subject", "")
        if not _NAME.match(self.stream):
            raise ValueError(f"{redact(url)}: stream= must be a stream name (A-Z a-z 0-9 _ -)")
        if not _SUBJECT.match(self.subject):
            raise ValueError(f"{redact(url)}: subject= must be a subject prefix such as orderdb")
        if not parts.hostname:
            raise ValueError(f"{redact(url)}: no host")
        self.name = redact(url)
        self.server = parts._replace(path="", query="", fragment="").geturl()
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="orderdb-sink-nats", daemon=True
        )
        self._thread.start()
        self._nc: Any = None
        self._js: Any = None

    def _run(self, coro: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=self.timeout * 3 + 5)

    async def _connect(self) -> None:
        import nats
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError

        if self._nc is not None and self._nc.is_connected:
            return
        await self._aclose()
        self._nc = await nats.connect(
            self.server,
            connect_timeout=self.timeout,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            name="orderdb-relay",
        )
        self._js = self._nc.jetstream(timeout=self.timeout)
        try:
            await self._js.stream_info(self.stream)
        except NotFoundError:
            await self._js.add_stream(
                StreamConfig(name=self.stream, subjects=[f"{self.subject}.>"])
            )

    async def _publish(self, events: Sequence[Event]) -> None:
        await self._connect()
        js = self._js
        futures = [
            await js.publish_async(
                f"{self.subject}.{_token(e.event_type)}",
                e.to_json().encode(),
                stream=self.stream,
                headers={"Nats-Msg-Id": str(e.event_id), "Orderdb-Event-Type": e.event_type},
            )
            for e in events
        ]
        acks = await asyncio.wait_for(asyncio.gather(*futures), self.timeout)
        for event, ack in zip(events, acks, strict=True):
            if ack.stream != self.stream:
                raise SinkError(f"event {event.event_id} stored in stream {ack.stream}")

    async def _aclose(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        try:
            self._run(self._publish(events))
        except SinkError:
            self._run(self._aclose())
            raise
        except Exception as exc:  # connection refused, timeouts, JetStream errors
            with contextlib.suppress(Exception):
                self._run(self._aclose())
            raise SinkError(f"{self.name}: {type(exc).__name__}: {exc}") from exc

    def idle(self) -> None:
        """Nothing to do: the client's own loop answers the server's pings."""

    def close(self) -> None:
        try:
            self._run(self._aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)


def _token(event_type: str) -> str:
    """An event type as a subject suffix: its dots stay (order.created -> PREFIX.order.created);
    characters a subject may not hold become _."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", event_type).strip(".") or "_"


# --------------------------------------------------------------------------- RabbitMQ


class AmqpSink:
    """RabbitMQ through ``pika``'s BlockingConnection with publisher confirms."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        try:
            import pika  # noqa: F401
        except ImportError as exc:
            raise ValueError("the AMQP sink needs pika: pip install 'orderdb[brokers]'") from exc
        parts = urlsplit(url)
        params = _query(url)
        unknown = set(params) - {"exchange"}
        if unknown:
            raise ValueError(f"{redact(url)}: unknown parameter(s) {', '.join(sorted(unknown))}")
        self.exchange = params.get("exchange", "")
        if not _NAME.match(self.exchange.replace(".", "_")):
            raise ValueError(f"{redact(url)}: exchange= must be an exchange name")
        if not parts.hostname:
            raise ValueError(f"{redact(url)}: no host")
        self.name = redact(url)
        self.timeout = timeout
        self._host = parts.hostname
        self._port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
        self._vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        self._user = unquote(parts.username or "guest")
        self._password = unquote(parts.password or "guest")
        self._tls = parts.scheme == "amqps"
        self._conn: pika.BlockingConnection | None = None
        self._channel: pika.adapters.blocking_connection.BlockingChannel | None = None

    def _connect(self) -> pika.adapters.blocking_connection.BlockingChannel:
        import ssl

        import pika

        if self._conn is not None and self._conn.is_open and self._channel is not None:
            return self._channel
        self.close()
        params = pika.ConnectionParameters(
            host=self._host,
            port=self._port,
            virtual_host=self._vhost,
            credentials=pika.PlainCredentials(self._user, self._password),
            socket_timeout=self.timeout,
            blocked_connection_timeout=self.timeout * 3,
            connection_attempts=1,
            heartbeat=30,
            client_properties={"connection_name": "orderdb-relay"},
            ssl_options=pika.SSLOptions(ssl.create_default_context(), self._host)
            if self._tls
            else None,
        )
        self._conn = pika.BlockingConnection(params)
        channel = self._conn.channel()
        channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
        channel.confirm_delivery()
        self._channel = channel
        return channel

    def publish(self, events: Sequence[Event]) -> None:
        import pika

        if not events:
            return
        try:
            channel = self._connect()
            for event in events:
                # with confirms on, basic_publish returns once the broker confirmed (a nack raises)
                channel.basic_publish(
                    exchange=self.exchange,
                    routing_key=event.event_type,
                    body=event.to_json().encode(),
                    properties=pika.BasicProperties(
                        content_type="application/json",
                        delivery_mode=pika.DeliveryMode.Persistent,
                        message_id=str(event.event_id),
                        type=event.event_type,
                        timestamp=int(event.created_at.timestamp()),
                        app_id="orderdb",
                    ),
                )
            if self._conn is not None:
                self._conn.process_data_events(0)  # heartbeats between batches
        except Exception as exc:  # refused, closed, nacked, blocked, timeouts
            self.close()
            raise SinkError(f"{self.name}: {type(exc).__name__}: {exc}") from exc

    def idle(self) -> None:
        """Lets pika send and answer heartbeats while the relay waits for events."""
        if self._conn is not None and self._conn.is_open:
            try:
                self._conn.process_data_events(0)
            except Exception:  # the next publish reconnects
                self.close()

    def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            with contextlib.suppress(Exception):
                conn.close()
