"""Events: the outbox as a stream (:mod:`~orderdb.events.stream`), the consumer loop
(:mod:`~orderdb.events.listen`), the relay that fans it out (:mod:`~orderdb.events.relay`) and its
outgoing webhooks (:mod:`~orderdb.events.webhooks`).

Business functions write outbox rows in their own transaction (``orderdb._emit_event``) and never
``NOTIFY``; everything here reads that outbox.
"""

from orderdb.events.listen import EventLoop
from orderdb.events.relay import HandlerFailed, Relay, RelayStats
from orderdb.events.stream import (
    CHANNEL,
    EVENT_COLUMNS,
    WAKEUP_CHANNEL,
    Event,
    ack_events,
    iter_lines,
    notify_payloads,
    read_events,
)
from orderdb.events.webhooks import (
    SIGNATURE_HEADER,
    secret_key,
    sign,
    verify_signature,
    webhook_body,
    webhook_headers,
    webhook_id,
    webhook_signature,
)

__all__ = [
    "CHANNEL",
    "EVENT_COLUMNS",
    "SIGNATURE_HEADER",
    "WAKEUP_CHANNEL",
    "Event",
    "EventLoop",
    "HandlerFailed",
    "Relay",
    "RelayStats",
    "ack_events",
    "iter_lines",
    "notify_payloads",
    "read_events",
    "secret_key",
    "sign",
    "verify_signature",
    "webhook_body",
    "webhook_headers",
    "webhook_id",
    "webhook_signature",
]
