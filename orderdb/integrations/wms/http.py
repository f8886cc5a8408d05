"""The ``http`` WMS connector: orderdb's JSON-over-HTTP protocol, which a WMS implements from
docs/wms-protocol.md alone.

One request per command (``{url}`` is the connector's ``url`` setting, without a trailing slash)::

    create   POST {url}/orders                              -> 201 (or 200) {"wms_order_id": ...}
    update   PUT  {url}/orders/{wms_order_id}               -> 200 (or 202, 204)
    cancel   POST {url}/orders/{wms_order_id}/cancel        -> 200 (or 202, 204)

The body is the same bytes on every attempt of a command (:func:`request_body`); the headers
carry ``Idempotency-Key: orderdb-<command_id>``, the attempt number, and a Standard Webhooks
signature (``webhook-id`` = the idempotency key, ``webhook-timestamp``, ``webhook-signature``:
``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, :func:`orderdb.events.webhooks
.webhook_signature`, keyed with the connector's ``secret``).

What the answer means (:func:`classify`): 2xx accepted; 408, 409 (the same key still being
processed), 429, 5xx, a network error or a timeout: :class:`~orderdb.integrations.wms
.WmsUnavailable` (retried, honouring ``Retry-After``); any other status (3xx, 4xx):
:class:`~orderdb.integrations.wms.WmsRejected` (dead-lettered at once), with the WMS's RFC 9457
problem details (``type``, ``title``, ``detail``) in the message.

Settings: ``url`` (http or https, required), ``secret`` (required), ``timeout`` (seconds for the
connection and for each read and write, default 10). One keep-alive ``httpx.Client`` per
connector (the ``ops`` extra installs httpx).
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from orderdb.events.webhooks import webhook_signature
from orderdb.integrations.wms import (
    COMMAND_KINDS,
    WmsAccepted,
    WmsCommand,
    WmsRejected,
    WmsUnavailable,
    idempotency_key,
)

if TYPE_CHECKING:
    import httpx

NAME = "http"
DEFAULT_TIMEOUT = 10.0
#: the longest answer read from the WMS (longer: the rest is not read)
MAX_RESPONSE_BYTES = 65536
#: the longest ``wms_order_id`` accepted (the column's bound)
MAX_WMS_ORDER_ID = 255
#: the bound of a Retry-After honoured (longer waits are the dispatcher's backoff's business)
MAX_RETRY_AFTER = 3600.0
#: statuses retried besides 5xx
RETRIED_STATUSES = frozenset({408, 409, 429})
ATTEMPT_HEADER = "X-OrderDB-Attempt"
#: how much of the WMS's text an error message quotes
_QUOTED = 300


def _version() -> str:
    from orderdb import __version__

    return __version__


def request_body(command: WmsCommand) -> bytes:
    """The JSON body of a command: ``command_id``, ``kind``, ``warehouse_id``, ``order_id``,
    ``order_no``, ``wms_order_id`` and ``order`` (the payload built by SQL). Keys sorted, no
    blanks: the same bytes on every attempt, so a WMS can compare a repeated request with the
    first (the attempt number is a header, not part of the body)."""
    document = {
        "command_id": command.command_id,
        "kind": command.kind,
        "warehouse_id": command.warehouse_id,
        "order_id": command.order_id,
        "order_no": command.order_no,
        "wms_order_id": command.wms_order_id,
        "order": dict(command.payload),
    }
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_value
    ).encode()


def _json_value(value: Any) -> Any:
    """Decimals (money, when the payload was read with them) as JSON numbers; timestamps as ISO
    8601 text; anything else as its text."""
    if isinstance(value, Decimal) and value.is_finite():
        return (
            int(value)
            if value == value.to_integral_value() and "." not in str(value)
            else float(value)
        )
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def request_target(command: WmsCommand) -> tuple[str, str]:
    """The method and the path (below the connector's url) of a command. Raises WmsRejected for
    an update or cancel without the WMS's order id (its create was never accepted)."""
    if command.kind not in COMMAND_KINDS:
        raise WmsRejected(
            f"command {command.command_id}: kind {command.kind!r} is not one of "
            f"{', '.join(COMMAND_KINDS)}"
        )
    if command.kind == "create":
        return "POST", "/orders"
    if not command.wms_order_id:
        raise WmsRejected(
            f"command {command.command_id}: {command.kind} of order {command.order_no} needs "
            "the WMS's order id, and the WMS never accepted a create for it"
        )
    path = "/orders/" + quote(command.wms_order_id, safe="")
    if command.kind == "update":
        return "PUT", path
    return "POST", path + "/cancel"


def request_headers(
    command: WmsCommand, secret: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The headers of one attempt: content type, ``Idempotency-Key``, ``X-OrderDB-Attempt`` and
    the Standard Webhooks signature (``webhook-id`` is the idempotency key)."""
    key = idempotency_key(command.command_id)
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "Accept": "application/json, application/problem+json",
        "User-Agent": f"orderdb/{_version()}",
        "Idempotency-Key": key,
        ATTEMPT_HEADER: str(command.attempt),
        "webhook-id": key,
        "webhook-timestamp": str(stamp),
        "webhook-signature": webhook_signature(secret, key, stamp, body),
    }


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """The delay a ``Retry-After`` header asks for (delta seconds or an HTTP date), bounded to
    0..MAX_RETRY_AFTER; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(delta):
        return None
    return min(max(delta, 0.0), MAX_RETRY_AFTER)


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _QUOTED else text[: _QUOTED - 1] + "…"


def _parse(body: bytes) -> Any:
    """The answer's JSON, or None when it is empty or not JSON."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:  # UnicodeDecodeError is a ValueError
        return None


def _problem_text(document: Any, body: bytes) -> str:
    """What an error answer says: its problem details (type, title, detail, field), else the
    start of its text."""
    if isinstance(document, dict):
        parts = []
        for member in ("type", "title", "detail", "field"):
            value = document.get(member)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                parts.append(f"{member} {_quote(str(value))}")
        if parts:
            return "; ".join(parts)
    text = body.decode("utf-8", "replace").strip()
    return _quote(text) if text else "no body"


def classify(
    command: WmsCommand,
    where: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    truncated: bool = False,
) -> WmsAccepted:
    """The meaning of the WMS's answer to ``command`` (``where``: method and URL, for messages):
    WmsAccepted, or raises WmsUnavailable / WmsRejected."""
    headers = {name.lower(): value for name, value in headers.items()}
    document = _parse(body)
    if 200 <= status < 300:
        if truncated:
            raise WmsRejected(
                f"{where} answered {status} with a body over {MAX_RESPONSE_BYTES} bytes"
            )
        if document is not None and not isinstance(document, dict):
            raise WmsRejected(f"{where} answered {status} with JSON that is not an object")
        if document is None and body.strip():
            raise WmsRejected(f"{where} answered {status} with a body that is not JSON")
        answer: dict[str, Any] = document or {}
        wms_order_id = answer.get("wms_order_id")
        if wms_order_id is not None and (
            not isinstance(wms_order_id, str)
            or not wms_order_id
            or len(wms_order_id) > MAX_WMS_ORDER_ID
        ):
            raise WmsRejected(
                f"{where} answered {status} with wms_order_id {_quote(repr(wms_order_id))}: "
                f"it must be a string of 1 to {MAX_WMS_ORDER_ID} characters"
            )
        if command.kind == "create" and wms_order_id is None:
            raise WmsRejected(
                f"{where} answered {status} without wms_order_id: a create must answer "
                '{"wms_order_id": "<the WMS\'s id of the order>"}'
            )
        return WmsAccepted(
            wms_order_id=wms_order_id or command.wms_order_id,
            response={"http_status": status, "body": answer},
        )
    said = _problem_text(document, body)
    if status >= 500 or status in RETRIED_STATUSES:
        wait = retry_after_seconds(headers.get("retry-after"))
        later = f"; retry after {wait:g} s" if wait is not None else ""
        raise WmsUnavailable(f"{where} answered {status} ({said}){later}", retry_after=wait)
    if 300 <= status < 400:
        location = headers.get("location")
        target = f" to {_quote(location)}" if location else ""
        raise WmsRejected(
            f"{where} answered {status}, a redirect{target}: redirects are not followed; "
            "set the connector's url to the final address"
        )
    raise WmsRejected(f"{where} refused command {command.command_id} with {status} ({said})")


def _require_httpx() -> None:
    """Without httpx the connector is not usable: LookupError, as for a connector not installed
    (the dispatcher retries the command, and dead-letters it if httpx never comes)."""
    try:
        import httpx  # noqa: F401
    except ImportError:  # pragma: no cover - the ops extra is missing
        raise LookupError(
            "the http WMS connector needs httpx: pip install 'orderdb[ops]'"
        ) from None


def _setting_url(config: Mapping[str, Any]) -> str:
    url = config.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ValueError("url is required: the WMS's base URL, e.g. https://wms.example.com/api")
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if "@" in parts.netloc:  # never quoted: it would show a password
        raise ValueError("url must not hold a user name or password: the secret is the key")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url must be an http or https URL with a host, got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError("url must not have a query or a fragment")
    return url


def _setting_timeout(config: Mapping[str, Any]) -> float:
    raw = config.get("timeout", DEFAULT_TIMEOUT)
    try:
        timeout = float(raw if raw is not None else DEFAULT_TIMEOUT)
    except (TypeError, ValueError):
        raise ValueError(f"timeout must be a number of seconds, got {raw!r}") from None
    if not 0 < timeout <= 300 or math.isnan(timeout):
        raise ValueError(f"timeout must be more than 0 and at most 300 seconds, got {raw!r}")
    return timeout


class HttpWmsConnector:
    """Sends commands to a WMS that implements docs/wms-protocol.md (see the module docstring).
    Safe to share between threads."""

    name = NAME

    def __init__(self, config: Mapping[str, Any]) -> None:
        _require_httpx()
        import httpx

        self.url = _setting_url(config)
        secret = config.get("secret")
        if not isinstance(secret, str) or not secret:
            raise ValueError("secret is required: the key the WMS verifies webhook-signature with")
        self._secret = secret
        self.timeout = _setting_timeout(config)
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=8, keepalive_expiry=60.0),
        )

    def __repr__(self) -> str:  # never the secret
        return f"HttpWmsConnector(url={self.url!r}, timeout={self.timeout:g})"

    def send(self, command: WmsCommand) -> WmsAccepted:
        import httpx

        method, path = request_target(command)
        url = self.url + path
        where = f"{method} {url}"
        body = request_body(command)
        headers = request_headers(command, self._secret, body)
        try:
            with self._client.stream(method, url, content=body, headers=headers) as response:
                raw, truncated = self._read(response)
                status, answer_headers = response.status_code, dict(response.headers)
        except httpx.TimeoutException as exc:
            raise WmsUnavailable(
                f"{where}: no answer within {self.timeout:g} s ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise WmsUnavailable(f"{where}: {type(exc).__name__}: {_quote(str(exc))}") from exc
        return classify(command, where, status, answer_headers, raw, truncated=truncated)

    @staticmethod
    def _read(response: httpx.Response) -> tuple[bytes, bool]:
        """At most MAX_RESPONSE_BYTES of the answer, and whether there was more."""
        data = bytearray()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > MAX_RESPONSE_BYTES:
                return bytes(data[:MAX_RESPONSE_BYTES]), True
        return bytes(data), False

    def close(self) -> None:
        self._client.close()


def factory(config: Mapping[str, Any]) -> HttpWmsConnector:
    """The entry point (``http = "orderdb.integrations.wms.http:factory"``)."""
    return HttpWmsConnector(config)


__all__ = [
    "ATTEMPT_HEADER",
    "HttpWmsConnector",
    "classify",
    "factory",
    "request_body",
    "request_headers",
    "request_target",
    "retry_after_seconds",
]
