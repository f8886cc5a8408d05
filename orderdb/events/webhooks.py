"""Outgoing webhooks: Standard Webhooks signatures and bodies, and what an attempt keeps of the
answer; the relay (:mod:`orderdb.events.relay`) queues and POSTs the deliveries.

Standard Webhooks (https://www.standardwebhooks.com, spec ``spec/standard-webhooks.md`` of
github.com/standard-webhooks/standard-webhooks): each POST carries ``webhook-id`` (``evt_<event
id>``, the same for every attempt), ``webhook-timestamp`` (the attempt's Unix time in seconds) and
``webhook-signature`` (``v1,<base64 of HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">``).
The key is :func:`secret_key` of the subscription's secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from orderdb import signing
from orderdb.events.stream import Event

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("orderdb.events")

Conn = psycopg.Connection[Any]


#: deprecated (kept for one release beside the Standard Webhooks headers): see :func:`sign`
SIGNATURE_HEADER = "X-Orderdb-Signature"
#: the prefix of a Standard Webhooks secret (``whsec_`` + base64 of the key)
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
#: how much of a receiver's answer an attempt keeps: body characters, header JSON bytes
MAX_RESPONSE_BODY = 4096
MAX_RESPONSE_HEADERS = 15000


def secret_key(secret: str) -> bytes:
    """The Standard Webhooks HMAC key of a subscription secret.

    ``whsec_<base64>`` (what new subscriptions get): the decoded bytes, as
    ``standardwebhooks.Webhook(secret)`` decodes them. Any other secret (the 64-hex-character
    secrets of earlier releases, or one chosen by hand): its UTF-8 bytes, so a receiver verifies
    with ``standardwebhooks.Webhook(secret.encode())``.
    """
    if secret.startswith(SECRET_PREFIX):
        b64 = secret[len(SECRET_PREFIX) :].rstrip("=")
        try:
            key = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if key:
            return key
    return secret.encode()


def webhook_id(event_id: int) -> str:
    """The ``webhook-id`` of an event's deliveries: ``evt_<event_id>`` (the same for every attempt
    and every subscription: receivers use it as the idempotency key)."""
    return f"evt_{event_id}"


def webhook_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (Standard Webhooks, symmetric): ``v1,<base64 of
    HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`` keyed with :func:`secret_key`."""
    mac = signing.digest(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body)
    return "v1," + base64.b64encode(mac).decode()


def webhook_headers(
    secret: str, event_id: int, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The signature headers of one attempt: ``webhook-id``, ``webhook-timestamp`` (now, unless
    given), ``webhook-signature`` and the deprecated ``X-Orderdb-Signature``."""
    ts = int(time.time()) if timestamp is None else timestamp
    msg_id = webhook_id(event_id)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": webhook_signature(secret, msg_id, ts, body),
        SIGNATURE_HEADER: sign(secret, body),
    }


def sign(secret: str, body: bytes) -> str:
    """The deprecated ``X-Orderdb-Signature`` header value of ``body``: ``sha256=<hex
    HMAC-SHA256>`` keyed with the secret's text (UTF-8), whatever its form. Sent for one more
    release beside the Standard Webhooks headers; verify ``webhook-signature`` instead."""
    return signing.hex_signature(secret, body)


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the deprecated ``X-Orderdb-Signature`` of ``body`` under ``secret``
    (constant-time compare)."""
    return signing.verify_hex_signature(secret, body, header)


def webhook_body(
    event_id: int,
    event_type: str,
    order_id: int | None,
    payload_text: str,
    created_at: datetime,
) -> bytes:
    """The JSON body POSTed for an event (the same bytes for every attempt): event_id,
    event_type, order_id, payload (its stored JSON text), created_at."""
    return Event(event_id, event_type, order_id, {}, created_at, payload_text).to_json().encode()


@dataclass
class _Attempt:
    """What one POST gave: HTTP status (None: no answer), error, duration, and the bounded
    response headers and body."""

    status: int | None = None
    error: str | None = None
    duration_ms: int = 0
    headers: dict[str, str] | None = None
    body: str | None = None


def _require_httpx() -> None:
    try:
        import httpx  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RuntimeError(
            "sending webhooks needs httpx: pip install 'orderdb[ops]' (or run the relay with"
            " --no-webhooks)"
        ) from exc


def _no_nul(text: str) -> str:
    # PostgreSQL text and jsonb hold no NUL character
    return text.replace("\x00", "\ufffd")


def _bounded_headers(headers: httpx.Headers) -> dict[str, str]:
    """The response headers as ``{lower-case name: value}`` (repeated names joined with ", "),
    each value cut to 1000 characters, at most :data:`MAX_RESPONSE_HEADERS` bytes of JSON."""
    joined: dict[str, str] = {}
    for name, value in headers.multi_items():
        key = _no_nul(name.lower()[:200])
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    out: dict[str, str] = {}
    size = 2
    for key, value in joined.items():
        value = _no_nul(value[:1000])
        item = len(json.dumps({key: value}).encode()) + 2
        if size + item > MAX_RESPONSE_HEADERS:
            break
        out[key] = value
        size += item
    return out


def _bounded_body(response: httpx.Response) -> str:
    """The first :data:`MAX_RESPONSE_BODY` bytes of the body as text (undecodable bytes and NUL
    replaced); the rest is not read."""
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= MAX_RESPONSE_BODY:
            break
    return _no_nul(bytes(data[:MAX_RESPONSE_BODY]).decode("utf-8", errors="replace"))
