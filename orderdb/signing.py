"""HMAC-SHA256 signatures, the one implementation every signed exchange uses: inbound carrier and
WMS requests (:mod:`orderdb.integrations.http`), outgoing webhooks
(:mod:`orderdb.events.webhooks`), and the simulated WMS and carriers that play the other side.

Two header forms: ``sha256=<hex>`` (:func:`hex_signature`, :func:`verify_hex_signature`: the
``X-OrderDB-Signature`` of ingestion and the deprecated ``X-Orderdb-Signature`` of webhooks) and
the Standard Webhooks ``v1,<base64>`` (built in :mod:`orderdb.events.webhooks` from :func:`digest`).
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def digest(secret: str | bytes, data: bytes) -> bytes:
    """The raw HMAC-SHA256 of ``data`` under ``secret`` (text is keyed by its UTF-8 bytes)."""
    return hmac.new(_key(secret), data, hashlib.sha256).digest()


def hex_signature(secret: str | bytes, data: bytes) -> str:
    """The header value ``sha256=<lower-case hex HMAC-SHA256>`` of ``data``."""
    return PREFIX + digest(secret, data).hex()


def verify_hex_signature(secret: str | bytes, data: bytes, header: str | None) -> bool:
    """Whether ``header`` (``sha256=<hex>`` or the bare hex, any case, surrounding blanks
    ignored) signs ``data`` under ``secret``. Constant-time; never raises, whatever the header
    holds (non-ASCII text, wrong length)."""
    if not header:
        return False
    given = header.strip()
    if given.startswith(PREFIX):
        given = given[len(PREFIX) :]
    if len(given) != 64 or not given.isascii():  # compare_digest refuses non-ASCII text
        return False
    expected = digest(secret, data).hex()
    return hmac.compare_digest(given.lower().encode(), expected.encode())
