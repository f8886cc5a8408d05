"""Signed HTTP ingestion for carriers and the WMS (``orderdb ingest serve``): a small ASGI app.

Endpoints::

    POST /hooks/carriers/<carrier>   one carrier scan    -> orderdb.record_tracking_event
    POST /hooks/carriers/<carrier>/batch  {"events": [scan, ...]}: 1..1000 scans of a carrier
                                     that pushes arrays -> orderdb.record_tracking_events
    POST /hooks/wms                  one WMS callback    -> orderdb.wms_callback
    POST /hooks/sf/route-push/<token>  SF's route push   -> orderdb.record_tracking_events
    POST /hooks/kuaidi100/callback   Kuaidi100's callback -> orderdb.record_tracking_events
    GET  /status/<tracking_number>   shipment and order status (?carrier=SF optional), signed
    GET  /healthz                    liveness and database reachability
    GET  /openapi.json               the OpenAPI 3.1 document of these endpoints (unsigned)
    GET  /problems/<slug>            the documentation of a problem type (unsigned)

Every POST names an integration (``orderdb.integrations``): the carrier code in the path, or the
``X-OrderDB-Integration`` header for the WMS (default ``wms``). Per request, in this order:

1. unknown or disabled integration (or of the other kind): 404;
2. body over 64 kB (declared, or counted while it arrives, chunked or not): 413, and the body is
   not read further; a body not complete within ``read_timeout`` seconds: 408 (both close the
   connection);
3. signature ``X-OrderDB-Signature: sha256=<hex HMAC-SHA256 of the raw body with the
   integration's secret>`` missing or wrong: 401;
4. token bucket of the integration (``rate`` per second, ``burst``): 429 with ``Retry-After``
   when empty. Only signed requests take tokens, so nobody without the secret can use up a
   sender's rate; the database is not touched before this point;
5. body not a JSON object: 400; a field missing or malformed, a string holding NUL or a lone
   surrogate, a value nested deeper than 32 levels: 422 naming the field;
6. the entry point, one transaction: the same event id twice is accepted once (the database
   dedupes; the second answer says ``"duplicate": true``). Contract errors map to 422 (22xxx,
   with the field), 404 (OD004), 409 (OD002/OD003; OD006: a WMS event id reused for another
   order or event type — ids are scoped per integration — or a carrier event id reused for
   another parcel or status), 503 (40001/40P01, retry; database away).

Errors answer RFC 9457 problem details (``application/problem+json``, built by
:func:`orderdb.problems.problem_response`): ``type`` ``/problems/<slug>`` (documented at that path
of this server), ``title``, ``status``, ``detail``, and ``field`` where one field is at fault,
``sqlstate`` when the database refused, ``retry_after`` with 429 and 503. ``GET /openapi.json``
describes every endpoint (:mod:`orderdb.integrations.openapi`; docs/ingest-openapi.json).

A status query is signed too: ``X-OrderDB-Integration`` (any enabled integration, default
``wms``), ``X-OrderDB-Timestamp`` (Unix seconds, within 5 minutes of the server's clock) and
``X-OrderDB-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<path and query as sent>">``
(:func:`sign_status`); else 401.

The two carrier routes take the carriers' own formats and answer in them (success and failure
alike: SF ``{"return_code": "0000" | "1000", "return_msg"}``, Kuaidi100 ``{"result",
"returnCode": "200" | "500", "message"}``, with the HTTP status of the equivalent problem):

* ``/hooks/sf/route-push/<token>``: the JSON route push of SF's RoutePushService
  (``{"Body": {"WaybillRoute": [...]}}``, read by
  :func:`orderdb.integrations.carriers.sf.parse_route_push`).
  SF signs nothing, so the only protection is the token: the secret of the carrier integration
  ``SF``, compared in constant time before the body is read (401 otherwise). It is in the URL:
  proxies and access logs see it (``serve`` blanks it in uvicorn's access log);
* ``/hooks/kuaidi100/callback``: the form (``param``, ``sign``) of Kuaidi100's subscription
  callback, ``sign`` = MD5(param + salt) with the secret of the carrier integration
  ``KUAIDI100`` as the salt (the plugin's rule, :func:`~orderdb.integrations.carriers.kuaidi100.
  callback_sign`; scans read by its ``parse_result``).

Then: 415 for another content type, 413/408 for the body and 429 for the rate as on the other
hooks, 400 for a body that is not the format, 422 for a push holding NUL, a lone surrogate or a
control character (other than tab, LF, CR) anywhere, or whose every scan is refused. The scans
of one push are recorded with one call of ``orderdb.record_tracking_events``
(:func:`orderdb.integrations.tracking_batches.record_tracking_batch`, on a small pool of its own,
in a worker thread): a scan the database or the parser refuses is logged and the others are
recorded, a scan recorded before is a duplicate (nothing changes).

Status queries and health checks use a connection pool of their own, so they keep answering
while ingestion is saturated. Secrets are read from ``orderdb.integrations`` (owner only) and
refreshed every ``refresh_seconds``; the process therefore runs with the owner's DSN.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import re
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orderdb import signing
from orderdb.integrations.carriers import CarrierError, TrackingEvent
from orderdb.integrations.tracking_batches import (
    MAX_BATCH,
    RecordedEvent,
    RefusedEvent,
    event_element,
    record_tracking_batch,
)
from orderdb.problems import (
    PROBLEM_TYPES,
    new_instance,
    problem_body,
    problem_page,
    problem_response,
)

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-orderdb-signature"
INTEGRATION_HEADER = "x-orderdb-integration"
DEFAULT_WMS_INTEGRATION = "wms"
TIMESTAMP_HEADER = "x-orderdb-timestamp"
MAX_BODY_BYTES = 65536
#: seconds a request body may take to arrive in full
DEFAULT_READ_TIMEOUT = 10.0
#: how deep a JSON field may nest (the database's bound for a JSON argument)
MAX_JSON_DEPTH = 32
#: how far the timestamp of a signed status query may be from the server's clock
STATUS_CLOCK_SKEW = 300
WMS_EVENT_TYPES = ("PICKED", "PACKED", "SHIPPED", "EXCEPTION")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: the carriers' own push routes: the carrier integration each reads its secret from (also the
#: carrier code its scans are recorded under)
SF_PUSH_PATH = "/hooks/sf/route-push"
KUAIDI100_CALLBACK_PATH = "/hooks/kuaidi100/callback"
SF_PUSH_INTEGRATION = "SF"
KUAIDI100_INTEGRATION = "KUAIDI100"
#: SF's answers to a JSON route push (RoutePushService): return_code 0000 success, 1000 failure
SF_PUSH_FAILURE_CODE = "1000"
#: Kuaidi100's failure answer to a callback: result false, returnCode 500 (it posts again later)
KUAIDI100_FAILURE_CODE = "500"
#: the zone of the carriers' times in a push (they name none): China time, as the plugins assume
PUSH_TIMEZONE = "Asia/Shanghai"
#: database connections for the carriers' pushes (a pool of their own, opened on first use)
DEFAULT_PUSH_POOL_SIZE = 2
# what a push may not hold anywhere: NUL, other control characters than tab, LF and CR, and
# lone surrogates
_HOSTILE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

# SQL parameter names (as the database names them in 22023 messages) -> HTTP body fields
_SQL_FIELD_TO_HTTP = {
    "event_time": "timestamp",
    "carrier_status": "status",
    "payload.occurred_at": "timestamp",
    "p_event_type": "event_type",
}


def sign(secret: str | bytes, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return signing.hex_signature(secret, body)


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """Constant-time check of a signature header (``sha256=<hex>`` or the bare hex)."""
    return signing.verify_hex_signature(secret, body, header)


def sign_status(secret: str | bytes, target: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers that sign ``GET <target>`` (path and query exactly as sent, e.g.
    ``/status/SF1234567890?carrier=SF``) for the integration whose secret this is; add
    ``X-OrderDB-Integration`` unless it is ``wms``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "X-OrderDB-Timestamp": stamp,
        "X-OrderDB-Signature": sign(secret, f"{stamp}.{target}".encode()),
    }


class TokenBucket:
    """``rate`` tokens per second, at most ``burst``; one token per request."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0.0 when a token was taken, else the seconds until one is available."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate


@dataclass(frozen=True)
class Integration:
    name: str
    kind: str
    secret: bytes
    rate: float
    burst: int
    enabled: bool


class FieldError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _error(slug: str, detail: str, **members: Any) -> Response:
    """The problem details answer of orderdb's problem type ``slug`` (``close=True``: the request
    body was not read to its end, so the connection cannot carry another request)."""
    return problem_response(PROBLEM_TYPES[slug], detail, **members)


async def _http_exception(_request: Request, exc: Exception) -> Response:
    """What the framework refuses (no such path, method not allowed): ``about:blank``."""
    assert isinstance(exc, HTTPException)
    return problem_response(exc.status_code, exc.detail, headers=exc.headers)


async def _internal_error(_request: Request, exc: Exception) -> Response:
    instance = new_instance()
    log.error("internal error %s", instance, exc_info=exc)
    return _error("internal-error", "the server failed; it logged this instance", instance=instance)


# a JSON string (its escapes left alone) or a bracket; what scanning for depth needs to see
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def _too_deep(raw: bytes, limit: int) -> tuple[bool, str | None]:
    """Whether the JSON ``raw`` has a value of the top-level object nested more than ``limit``
    levels deep, and the key of that value when known. A linear scan, run before parsing, so a
    body of 20,000 brackets costs neither the parser's recursion nor much time."""
    depth = 0
    last_string: bytes | None = None
    key: bytes | None = None
    for match in _JSON_TOKEN.finditer(raw):
        token = match.group()
        first = token[0]
        if first == 0x22:  # a string: at depth 1, the last one before a bracket is its key
            if depth == 1:
                last_string = token
        elif first in (0x5B, 0x7B):
            depth += 1
            if depth == 2:
                key = last_string
            if depth > limit + 1:
                try:
                    name = json.loads(key) if key is not None else None
                except ValueError:
                    name = None
                if isinstance(name, str) and _BAD_TEXT.search(name) is None:
                    return True, name
                return True, None
        else:
            depth -= 1
    return False, None


def _refuse_constant(name: str) -> Any:
    """json.loads accepts NaN and Infinity, which JSON (and jsonb) do not."""
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400
        raise ValueError(f"{text} is out of range")
    return value


def _text_problem(value: str) -> str | None:
    bad = _BAD_TEXT.search(value)
    if bad is None:
        return None
    if bad.group() == "\x00":
        return "contains NUL (\\u0000), which text cannot hold"
    return "contains a lone surrogate (\\ud800 to \\udfff), which is not text"


def check_json_fields(body: Mapping[str, Any], max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raises FieldError for the first top-level field whose value holds a string (or key) with
    NUL or a lone surrogate, or nests deeper than ``max_depth`` (``{}`` and ``[]`` are 1)."""
    for name, value in body.items():
        problem = _text_problem(name)
        if problem is not None:
            field = json.dumps(name)[1:-1]  # ASCII, escaped
            raise FieldError(field, f"a field name {problem}")
        stack: list[tuple[Any, int]] = [(value, 1)]
        while stack:
            item, depth = stack.pop()
            if isinstance(item, str):
                problem = _text_problem(item)
                if problem is not None:
                    raise FieldError(name, f"{name} {problem}")
            elif isinstance(item, dict | list):
                if depth > max_depth:
                    raise FieldError(name, f"{name} nests deeper than {max_depth} levels")
                if isinstance(item, dict):
                    for key, inner in item.items():
                        problem = _text_problem(key)
                        if problem is not None:
                            raise FieldError(name, f"{name} has a key that {problem}")
                        stack.append((inner, depth + 1))
                else:
                    stack.extend((inner, depth + 1) for inner in item)


def _text(body: Mapping[str, Any], name: str, *, required: bool, max_len: int) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise FieldError(name, f"{name} is required")
        return None
    if not isinstance(value, str):
        raise FieldError(name, f"{name} must be a string")
    if required and not value:
        raise FieldError(name, f"{name} must be 1 to {max_len} characters")
    if len(value) > max_len:
        raise FieldError(name, f"{name} must be at most {max_len} characters")
    return value


def _timestamp(body: Mapping[str, Any], name: str) -> datetime:
    raw = _text(body, name, required=True, max_len=64)
    assert raw is not None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise FieldError(name, f"{name} must be an ISO 8601 timestamp") from None
    if value.tzinfo is None:
        raise FieldError(name, f"{name} must include a time zone (e.g. 2026-05-01T10:00:00Z)")
    return value


def _object(body: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FieldError(name, f"{name} must be a JSON object")
    return value


def _positive_int(body: Mapping[str, Any], name: str) -> int:
    value = body.get(name)
    if value is None:
        raise FieldError(name, f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise FieldError(name, f"{name} must be a positive integer")
    return value


def parse_carrier_event(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``POST /hooks/carriers/<carrier>``; raises FieldError."""
    return {
        "event_id": _text(body, "event_id", required=True, max_len=255),
        "tracking_number": _text(body, "tracking_number", required=True, max_len=255),
        "status": _text(body, "status", required=True, max_len=255),
        "timestamp": _timestamp(body, "timestamp"),
        "location": _text(body, "location", required=False, max_len=1000),
        "description": _text(body, "description", required=False, max_len=1000),
        "data": _object(body, "data"),
    }


def parse_wms_event(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``POST /hooks/wms``; raises FieldError."""
    event_id = _text(body, "event_id", required=True, max_len=255)
    order_id = _positive_int(body, "order_id")
    event_type = _text(body, "event_type", required=True, max_len=32)
    if event_type not in WMS_EVENT_TYPES:
        raise FieldError("event_type", f"event_type must be one of {', '.join(WMS_EVENT_TYPES)}")
    timestamp = _timestamp(body, "timestamp")
    payload = dict(_object(body, "payload") or {})
    payload["occurred_at"] = timestamp.isoformat()
    return {
        "event_id": event_id,
        "order_id": order_id,
        "event_type": event_type,
        "payload": payload,
    }


def _sql_field(message: str) -> str | None:
    first = message.split(" ", 1)[0]
    if re.fullmatch(r"[a-z_]+(\.[a-z_]+)?(\[\d+\])?(\.[a-z_]+)?", first):
        return _SQL_FIELD_TO_HTTP.get(first, first)
    return None


def _db_error(exc: psycopg.Error) -> Response:
    state = exc.sqlstate or ""
    message = exc.diag.message_primary or str(exc)
    db_detail = exc.diag.message_detail
    if state.startswith("22"):
        # orderdb's own checks (22023) start with the field; PostgreSQL's messages do not
        field = _sql_field(message) if state == "22023" else None
        return _error("invalid-field", message, field=field, sqlstate=state, db_detail=db_detail)
    if state == "OD004":
        return _error("not-found", message, sqlstate=state, db_detail=db_detail)
    if state in ("OD002", "OD003", "OD006"):
        return _error("conflict", message, sqlstate=state, db_detail=db_detail)
    if state in ("40001", "40P01"):
        return _error("transaction-retry", message, sqlstate=state, retry_after=1)
    if not state and isinstance(exc, psycopg.DataError):  # refused by psycopg before sending
        return _error("invalid-field", message)
    if isinstance(exc, psycopg.OperationalError) and (not state or state.startswith("08")):
        log.warning("database unavailable: %s", message)
        return _error("database-unavailable", "the database is not reachable; retry", retry_after=1)
    instance = new_instance()
    log.error("ingestion failed %s: %s (%s)", instance, message, state)
    return _error(
        "internal-error", "the database refused the event", sqlstate=state, instance=instance
    )


# -- the carriers' own push formats ------------------------------------------------------------


@dataclass(frozen=True)
class PushFormat:
    """One carrier push route: the carrier integration it authenticates against (its name is
    also the carrier code of the scans), the body's media type, and the carrier's answers."""

    integration: str
    media_type: str
    failure: Callable[[str], dict[str, Any]]


def sf_push_failure(message: str) -> dict[str, Any]:
    """SF's failure answer to a route push: SF pushes the routes again."""
    return {"return_code": SF_PUSH_FAILURE_CODE, "return_msg": message}


def kuaidi100_callback_failure(message: str) -> dict[str, Any]:
    """Kuaidi100's failure answer to a callback: Kuaidi100 posts it again later."""
    return {"result": False, "returnCode": KUAIDI100_FAILURE_CODE, "message": message}


SF_PUSH = PushFormat(SF_PUSH_INTEGRATION, "application/json", sf_push_failure)
KUAIDI100_CALLBACK = PushFormat(
    KUAIDI100_INTEGRATION, "application/x-www-form-urlencoded", kuaidi100_callback_failure
)


def _push_answer(
    push: PushFormat, status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """The carrier's failure answer with an HTTP status (never cached)."""
    return JSONResponse(
        push.failure(message[:1000]),
        status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _as_push_answer(push: PushFormat, problem: Response) -> Response:
    """A problem answer of the common checks (413, 408, ...) in the carrier's format: the same
    status, detail and Retry-After / Connection headers."""
    try:
        detail = str(json.loads(bytes(problem.body)).get("detail") or "refused")
    except ValueError:  # pragma: no cover - problems are JSON
        detail = "refused"
    kept = {k: v for k, v in problem.headers.items() if k.lower() in ("retry-after", "connection")}
    return _push_answer(push, problem.status_code, detail, kept)


def _media_type(request: Request) -> tuple[str, str | None]:
    """The Content-Type's media type (lower case) and charset parameter (None: not given)."""
    main, _, params = request.headers.get("content-type", "").partition(";")
    charset = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return main.strip().lower(), charset


def _hostile_path(value: Any) -> str | None:
    """The path (``Body.WaybillRoute[0].remark``) of the first string or key of a parsed JSON
    value holding NUL, a control character other than tab, LF and CR, or a lone surrogate."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if _HOSTILE_TEXT.search(item):
                return where or "the body"
        elif isinstance(item, dict):
            for key, inner in item.items():
                if _HOSTILE_TEXT.search(key):
                    return f"a key of {where or 'the body'}"
                stack.append((inner, f"{where}.{key}" if where else key))
        elif isinstance(item, list):
            stack.extend((inner, f"{where}[{i}]") for i, inner in enumerate(item))
    return None


def parse_push_json(raw: bytes | str, what: str) -> dict[str, Any]:
    """The JSON object of a carrier push (``what`` names it in messages); raises FieldError
    with field ``""`` when it is not JSON (400) and with the path of the value at fault when it
    nests too deep or holds a hostile character (422)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    deep, _key = _too_deep(data, MAX_JSON_DEPTH)
    if deep:
        raise FieldError(what, f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        body = json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise FieldError("", f"{what} is not JSON (UTF-8; numbers finite)") from None
    if not isinstance(body, dict):
        raise FieldError("", f"{what} must be a JSON object")
    where = _hostile_path(body)
    if where is not None:
        field = f"{what}.{where}" if what != "the body" else where
        raise FieldError(
            field[:200],
            f"{field[:200]} holds NUL, a control character (other than tab, LF, CR) or a lone "
            "surrogate",
        )
    return body


def sf_route_scans(
    body: Mapping[str, Any], timezone: str = PUSH_TIMEZONE
) -> list[TrackingEvent | str]:
    """The scans of an SF route push, one per route: a TrackingEvent, or the parser's reason
    for refusing that route (the others are kept). Raises FieldError when the body is not a
    route push at all."""
    from orderdb.integrations.carriers import sf

    envelope = body.get("Body", body.get("body"))
    if not isinstance(envelope, Mapping):
        raise FieldError("Body", "Body is missing: not an SF route push")
    routes = envelope.get("WaybillRoute")
    if isinstance(routes, Mapping):
        routes = [routes]
    if not isinstance(routes, list) or not routes:
        raise FieldError("Body.WaybillRoute", "Body.WaybillRoute holds no route")
    scans: list[TrackingEvent | str] = []
    for i, route in enumerate(routes):
        try:
            scans.extend(
                sf.parse_route_push({"Body": {"WaybillRoute": [route]}}, timezone=timezone)
            )
        except (ValueError, CarrierError) as exc:
            scans.append(str(exc).replace("WaybillRoute[0]", f"WaybillRoute[{i}]", 1))
    return scans


def kuaidi100_scans(
    param: Mapping[str, Any], timezone: str = PUSH_TIMEZONE
) -> list[TrackingEvent | str]:
    """The scans of a Kuaidi100 callback's ``param`` (``lastResult``): TrackingEvents, and the
    reason for each scan the parser refuses (the others are kept). Raises FieldError when it is
    not a callback."""
    from zoneinfo import ZoneInfo

    from orderdb.integrations.carriers import kuaidi100

    result = param.get("lastResult")
    if not isinstance(result, Mapping):
        raise FieldError(
            "param.lastResult", "param.lastResult is missing: not a Kuaidi100 callback"
        )
    rows = result.get("data")
    if rows is None:
        rows = []
    if not isinstance(rows, list):
        raise FieldError("param.lastResult.data", "param.lastResult.data must be a list")
    zone = ZoneInfo(timezone)
    number = {"nu": result.get("nu"), "com": result.get("com")}
    good: list[Any] = []
    refused: list[TrackingEvent | str] = []
    for i, row in enumerate(rows):
        try:
            kuaidi100.parse_result({**number, "data": [row]}, zone)
        except (ValueError, CarrierError) as exc:
            refused.append(f"lastResult.data[{i}]: {exc}")
        else:
            good.append(row)
    try:
        events = kuaidi100.parse_result({**result, "data": good}, zone)
    except (ValueError, CarrierError) as exc:
        raise FieldError("param.lastResult", f"param.lastResult: {exc}") from None
    return [*events, *refused]


class _HidePushTokens(logging.Filter):
    """Blanks the token of ``POST /hooks/sf/route-push/<token>`` in uvicorn's access log."""

    _TOKEN = re.compile(r"(/hooks/sf/route-push/)[^?\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._TOKEN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = self._TOKEN.sub(r"\1***", record.msg)
        return True


HIDE_PUSH_TOKENS = _HidePushTokens()


class IngestApp:
    """The ASGI application (``.app``) and the state it keeps: pools, integrations, buckets."""

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 8,
        status_pool_size: int = 2,
        refresh_seconds: float = 30.0,
        acquire_timeout: float = 5.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        push_pool_size: int = DEFAULT_PUSH_POOL_SIZE,
    ) -> None:
        self.dsn = dsn
        self.push_pool_size = push_pool_size
        self.read_timeout = read_timeout
        self.pool_size = pool_size
        self.status_pool_size = status_pool_size
        self.refresh_seconds = refresh_seconds
        self.acquire_timeout = acquire_timeout
        self.max_body_bytes = max_body_bytes
        self.integrations: dict[str, Integration] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self._loaded_at = -math.inf
        self._refresh_lock: asyncio.Lock | None = None
        self._pool: AsyncConnectionPool[Any] | None = None
        self._status_pool: AsyncConnectionPool[Any] | None = None
        self._push_pool: ConnectionPool[Any] | None = None
        self.app = Starlette(
            routes=[
                Route("/hooks/carriers/{carrier}", self.carrier_hook, methods=["POST"]),
                Route("/hooks/carriers/{carrier}/batch", self.carrier_batch_hook, methods=["POST"]),
                Route("/hooks/wms", self.wms_hook, methods=["POST"]),
                Route(SF_PUSH_PATH + "/{token}", self.sf_route_push, methods=["POST"]),
                Route(KUAIDI100_CALLBACK_PATH, self.kuaidi100_callback, methods=["POST"]),
                Route("/status/{tracking_number}", self.status, methods=["GET"]),
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/openapi.json", self.openapi, methods=["GET"]),
                Route("/problems/{slug}", self.problem_type, methods=["GET"]),
            ],
            exception_handlers={HTTPException: _http_exception, Exception: _internal_error},
            lifespan=self._lifespan,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self._refresh_lock = asyncio.Lock()
        self._pool = AsyncConnectionPool(
            self.dsn,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True},
            open=False,
            name="ingest",
        )
        self._status_pool = AsyncConnectionPool(
            self.dsn,
            min_size=1,
            max_size=self.status_pool_size,
            kwargs={"autocommit": True},
            open=False,
            name="ingest-status",
        )
        # the carriers' pushes: record_tracking_batch is synchronous (run in a worker thread)
        self._push_pool = ConnectionPool(
            self.dsn,
            min_size=0,
            max_size=self.push_pool_size,
            kwargs={"autocommit": True},
            open=False,
            name="ingest-push",
        )
        await self._pool.open(wait=True)
        await self._status_pool.open(wait=True)
        self._push_pool.open()
        try:
            await self.refresh(force=True)
            yield
        finally:
            await self._pool.close()
            await self._status_pool.close()
            await asyncio.to_thread(self._push_pool.close)

    async def refresh(
        self,
        *,
        force: bool = False,
        min_age: float | None = None,
        pool: AsyncConnectionPool[Any] | None = None,
    ) -> None:
        """Reloads the integrations when older than ``refresh_seconds`` (or ``min_age``), with a
        connection of ``pool`` (default: the event pool)."""
        threshold = 0.0 if force else (self.refresh_seconds if min_age is None else min_age)
        if not force and time.monotonic() - self._loaded_at < threshold:
            return
        assert self._refresh_lock is not None and self._pool is not None
        async with self._refresh_lock:
            if not force and time.monotonic() - self._loaded_at < threshold:
                return  # refreshed meanwhile by another request
            async with (pool or self._pool).connection(timeout=self.acquire_timeout) as conn:
                cur = await conn.execute(
                    "SELECT name, kind, secret, rate, burst, enabled FROM orderdb.integrations"
                )
                rows = await cur.fetchall()
            loaded = {
                str(r[0]): Integration(
                    str(r[0]), str(r[1]), str(r[2]).encode(), float(r[3]), int(r[4]), bool(r[5])
                )
                for r in rows
            }
            for name, integ in loaded.items():
                bucket = self.buckets.get(name)
                if bucket is None or (bucket.rate, bucket.burst) != (integ.rate, integ.burst):
                    self.buckets[name] = TokenBucket(integ.rate, integ.burst)
            self.integrations = loaded
            self._loaded_at = time.monotonic()

    async def _integration(
        self, name: str, kind: str | None, pool: AsyncConnectionPool[Any] | None = None
    ) -> Integration | None:
        """The enabled integration ``name`` of this ``kind`` (None: of any kind)."""
        await self.refresh(pool=pool)
        integ = self.integrations.get(name)
        if integ is None:
            await self.refresh(min_age=1.0, pool=pool)  # a new one is found within a second
            integ = self.integrations.get(name)
        if integ is None or not integ.enabled or (kind is not None and integ.kind != kind):
            return None
        return integ

    async def _read_body(self, request: Request) -> bytes | Response:
        """The body, read as it arrives: at most ``max_body_bytes`` (413 as soon as it is more,
        declared or counted) and within ``read_timeout`` seconds (408)."""
        too_large = f"body over {self.max_body_bytes} bytes"
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return _error("body-too-large", too_large, close=True)
        body = bytearray()
        try:
            async with asyncio.timeout(self.read_timeout):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > self.max_body_bytes:
                        return _error("body-too-large", too_large, close=True)
        except TimeoutError:
            return _error(
                "body-timeout",
                f"the body did not arrive within {self.read_timeout:g} seconds",
                close=True,
            )
        except ClientDisconnect:
            return _error("client-disconnected", "the client went away", close=True)
        return bytes(body)

    # -- the common part of both hooks -------------------------------------------------------

    async def _admit(
        self, request: Request, name: str, kind: str
    ) -> tuple[Integration, dict[str, Any]] | Response:
        # answers before the body is read close the connection (the rest of the body is not read)
        unknown = _error("unknown-integration", f"no {kind} integration {name!r}", close=True)
        if not _NAME.match(name):
            return unknown
        try:
            integ = await self._integration(name, kind)
        except (PoolTimeout, psycopg.OperationalError):
            return _error(
                "database-unavailable",
                "the database is not reachable; retry",
                close=True,
                retry_after=1,
            )
        if integ is None:
            return unknown
        raw = await self._read_body(request)
        if isinstance(raw, Response):
            return raw
        if not verify(integ.secret, raw, request.headers.get(SIGNATURE_HEADER)):
            return _error(
                "bad-signature",
                "missing or wrong X-OrderDB-Signature (sha256=<hex HMAC-SHA256 of the body>)",
            )
        # only now, signed: a request without the secret takes none of the sender's tokens
        wait = self.buckets[name].take()
        if wait > 0:
            return _error(
                "rate-limited",
                f"integration {name} is over its rate ({integ.rate:g}/s, burst {integ.burst})",
                retry_after=max(1, math.ceil(wait)),
            )
        return self._parse(raw, integ)

    @staticmethod
    def _parse(raw: bytes, integ: Integration) -> tuple[Integration, dict[str, Any]] | Response:
        deep, key = _too_deep(raw, MAX_JSON_DEPTH)
        if deep:
            if key is not None and raw.lstrip()[:1] == b"{":
                message = f"{key} nests deeper than {MAX_JSON_DEPTH} levels"
                return _error("invalid-field", message, field=key)
            return _error("bad-json", f"the body nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            body = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return _error(
                "bad-json", "the body is not JSON (UTF-8; numbers finite, no NaN/Infinity)"
            )
        if not isinstance(body, dict):
            return _error("bad-json", "the body must be a JSON object")
        try:
            check_json_fields(body)
        except FieldError as exc:
            return _error("invalid-field", exc.message, field=exc.field)
        return integ, body

    async def _call(self, query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | Response:
        assert self._pool is not None
        try:
            async with self._pool.connection(timeout=self.acquire_timeout) as conn:
                cur = await conn.execute(query, params)
                row = await cur.fetchone()
        except PoolTimeout:
            return _error("server-busy", "no database connection free; retry", retry_after=1)
        except psycopg.Error as exc:
            return _db_error(exc)
        assert row is not None
        return tuple(row)

    # -- endpoints ---------------------------------------------------------------------------

    async def carrier_hook(self, request: Request) -> Response:
        carrier = str(request.path_params["carrier"])
        admitted = await self._admit(request, carrier, "carrier")
        if isinstance(admitted, Response):
            return admitted
        _integ, body = admitted
        try:
            event = parse_carrier_event(body)
        except FieldError as exc:
            return _error("invalid-field", exc.message, field=exc.field)
        row = await self._call(
            "SELECT tracking_event_id, duplicate, normalized_status, order_id, order_status "
            "FROM orderdb.record_tracking_event(%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                carrier,
                event["tracking_number"],
                event["timestamp"],
                event["status"],
                event["location"],
                event["description"],
                event["event_id"],
                Jsonb(event["data"]) if event["data"] is not None else None,
            ),
        )
        if isinstance(row, Response):
            return row
        duplicate = bool(row[1])
        return JSONResponse(
            {
                "result": "duplicate" if duplicate else "accepted",
                "duplicate": duplicate,
                "event_id": event["event_id"],
                "tracking_event_id": row[0],
                "normalized_status": row[2],
                "order_id": row[3],
                "order_status": row[4],
            },
            200,
        )

    async def carrier_batch_hook(self, request: Request) -> Response:
        """``{"events": [scan, ...]}``: 1..1000 scans, each as ``carrier_hook`` takes it, recorded
        with one call of orderdb.record_tracking_events (record_tracking_batch). 200 with one
        result per scan, in order: accepted / duplicate as ``carrier_hook`` answers, or rejected
        with its problem (a malformed scan: invalid-field naming ``events[i].<field>``; one the
        database refuses: invalid-field or conflict, with its SQLSTATE); the other scans are
        recorded. A body that is not such an object is 422 naming ``events``."""
        carrier = str(request.path_params["carrier"])
        admitted = await self._admit(request, carrier, "carrier")
        if isinstance(admitted, Response):
            return admitted
        _integ, body = admitted
        extra = sorted(k for k in body if k != "events")
        if extra:
            return _error("invalid-field", f"unknown member {extra[0]!r}", field=extra[0])
        scans = body.get("events")
        if not isinstance(scans, list) or not 1 <= len(scans) <= MAX_BATCH:
            return _error(
                "invalid-field",
                f"events must be a JSON array of 1 to {MAX_BATCH} carrier scans",
                field="events",
            )
        results: list[dict[str, Any]] = [{} for _ in scans]
        elements: list[dict[str, Any]] = []
        positions: list[int] = []
        for i, scan in enumerate(scans):
            try:
                if not isinstance(scan, dict):
                    raise FieldError("", "must be a JSON object")
                event = parse_carrier_event(scan)
            except FieldError as exc:
                field = f"events[{i}]" + (f".{exc.field}" if exc.field else "")
                results[i] = {
                    "result": "rejected",
                    "event_id": scan.get("event_id") if isinstance(scan, dict) else None,
                    "problem": problem_body(
                        PROBLEM_TYPES["invalid-field"], f"{field}: {exc.message}", field=field
                    ),
                }
                continue
            positions.append(i)
            elements.append(
                event_element(
                    carrier,
                    event["tracking_number"],
                    event["timestamp"],
                    event["status"],
                    event["location"],
                    event["description"],
                    event["event_id"],
                    event["data"],
                )
            )
        if elements:
            try:
                outcomes = await asyncio.to_thread(self._record_batch, elements)
            except PoolTimeout:
                return _error("server-busy", "no database connection free; retry", retry_after=1)
            except psycopg.Error as exc:
                return _db_error(exc)
            for i, element, outcome in zip(positions, elements, outcomes, strict=True):
                if isinstance(outcome, RefusedEvent):
                    slug = "conflict" if outcome.sqlstate == "OD006" else "invalid-field"
                    at = _sql_field(outcome.message) if outcome.sqlstate == "22023" else None
                    results[i] = {
                        "result": "rejected",
                        "event_id": element["event_id"],
                        "problem": problem_body(
                            PROBLEM_TYPES[slug],
                            outcome.message,
                            field=f"events[{i}].{at}" if at else None,
                            sqlstate=outcome.sqlstate,
                            db_detail=outcome.detail,
                        ),
                    }
                else:
                    results[i] = {
                        "result": "duplicate" if outcome.duplicate else "accepted",
                        "duplicate": outcome.duplicate,
                        "event_id": element["event_id"],
                        "tracking_event_id": outcome.tracking_event_id,
                        "normalized_status": outcome.normalized_status,
                        "order_id": outcome.order_id,
                        "order_status": outcome.order_status,
                    }
        counts = Counter(str(r["result"]) for r in results)
        return JSONResponse(
            {
                "accepted": counts["accepted"],
                "duplicate": counts["duplicate"],
                "rejected": counts["rejected"],
                "results": results,
            },
            200,
        )

    async def wms_hook(self, request: Request) -> Response:
        name = request.headers.get(INTEGRATION_HEADER) or DEFAULT_WMS_INTEGRATION
        admitted = await self._admit(request, name, "wms")
        if isinstance(admitted, Response):
            return admitted
        _integ, body = admitted
        try:
            event = parse_wms_event(body)
        except FieldError as exc:
            return _error("invalid-field", exc.message, field=exc.field)
        row = await self._call(
            "SELECT order_id, status, version, duplicate"
            " FROM orderdb.wms_callback(%s, %s, %s, %s, %s)",
            (
                event["event_id"],
                event["order_id"],
                event["event_type"],
                Jsonb(event["payload"]),
                name,
            ),
        )
        if isinstance(row, Response):
            return row
        duplicate = bool(row[3])
        return JSONResponse(
            {
                "result": "duplicate" if duplicate else "accepted",
                "duplicate": duplicate,
                "event_id": event["event_id"],
                "order_id": row[0],
                "status": row[1],
                "version": row[2],
            },
            200,
        )

    # -- the carriers' own push formats ------------------------------------------------------

    async def _push_integration(self, push: PushFormat) -> Integration | Response:
        """The enabled carrier integration of ``push``, else the carrier's failure answer (the
        body is not read: the connection is closed)."""
        try:
            integ = await self._integration(push.integration, "carrier")
        except (PoolTimeout, psycopg.OperationalError):
            return _push_answer(
                push,
                503,
                "the database is not reachable; retry",
                {"Retry-After": "1", "Connection": "close"},
            )
        if integ is None:
            return _push_answer(
                push,
                404,
                f"no enabled carrier integration {push.integration} "
                f"(orderdb integrations add {push.integration} --kind carrier)",
                {"Connection": "close"},
            )
        return integ

    async def _push_body(self, request: Request, push: PushFormat) -> bytes | Response:
        """The body, when its content type is the carrier's (415 otherwise), bounded in size and
        time like the other hooks' (413, 408)."""
        media, charset = _media_type(request)
        if media != push.media_type or charset not in (None, "utf-8", "utf8"):
            return _push_answer(
                push,
                415,
                f"the body must be {push.media_type} in UTF-8, not {media or 'untyped'}",
                {"Connection": "close"},
            )
        raw = await self._read_body(request)
        if isinstance(raw, Response):
            return _as_push_answer(push, raw)
        return raw

    def _push_rate(self, push: PushFormat, integ: Integration) -> Response | None:
        wait = self.buckets[integ.name].take()
        if wait <= 0:
            return None
        retry = max(1, math.ceil(wait))
        return _push_answer(
            push,
            429,
            f"integration {integ.name} is over its rate ({integ.rate:g}/s, burst {integ.burst})",
            {"Retry-After": str(retry)},
        )

    def _record_batch(self, elements: Sequence[Mapping[str, Any]]) -> list[Any]:
        """record_tracking_batch on a connection of the push pool (runs in a worker thread)."""
        assert self._push_pool is not None
        with self._push_pool.connection(timeout=self.acquire_timeout) as conn:
            return list(record_tracking_batch(conn, elements))

    async def _record_push(
        self, push: PushFormat, scans: Sequence[TrackingEvent | str], success: dict[str, Any]
    ) -> Response:
        """Records the scans of one push in one call of orderdb.record_tracking_events; answers
        the carrier's success unless every scan was refused (422: nothing was recorded)."""
        carrier = push.integration
        events = [s for s in scans if isinstance(s, TrackingEvent)]
        refusals = [s for s in scans if isinstance(s, str)]
        outcomes: list[Any] = []
        if events:
            elements = [
                event_element(
                    carrier,
                    e.tracking_number,
                    e.event_time,
                    e.status,
                    e.location,
                    e.description,
                    e.event_id,
                    e.payload,
                )
                for e in events
            ]
            try:
                outcomes = await asyncio.to_thread(self._record_batch, elements)
            except PoolTimeout:
                return _push_answer(
                    push, 503, "no database connection free; retry", {"Retry-After": "1"}
                )
            except psycopg.Error as exc:
                return _as_push_answer(push, _db_error(exc))
            for event, outcome in zip(events, outcomes, strict=True):
                if isinstance(outcome, RefusedEvent):
                    refusals.append(
                        f"{event.tracking_number} {event.status} at "
                        f"{event.event_time.isoformat()}: {outcome.message} ({outcome.sqlstate})"
                    )
        recorded = [o for o in outcomes if isinstance(o, RecordedEvent)]
        if refusals and not recorded:
            return _push_answer(push, 422, "every scan was refused: " + "; ".join(refusals))
        for refusal in refusals:
            log.warning("%s push: a scan was refused and not recorded: %r", carrier, refusal)
        return JSONResponse(success, 200, headers={"Cache-Control": "no-store"})

    async def _guarded(
        self, push: PushFormat, handler: Callable[[Request], Any], request: Request
    ) -> Response:
        """``handler``'s answer; a failure of the server is the carrier's failure answer (500)
        too, so that the carrier retries, and logged with an instance id."""
        try:
            answer: Response = await handler(request)
        except Exception as exc:
            instance = new_instance()
            log.error("%s push failed %s", push.integration, instance, exc_info=exc)
            return _push_answer(push, 500, f"the server failed; it logged {instance}")
        return answer

    async def sf_route_push(self, request: Request) -> Response:
        """``POST /hooks/sf/route-push/<token>``: SF's JSON route push (RoutePushService)."""
        return await self._guarded(SF_PUSH, self._sf_route_push, request)

    async def _sf_route_push(self, request: Request) -> Response:
        from orderdb.integrations.carriers import sf

        push = SF_PUSH
        integ = await self._push_integration(push)
        if isinstance(integ, Response):
            return integ
        token = str(request.path_params.get("token", ""))
        # constant time; the token is the SF integration's secret (SF signs nothing)
        if not hmac.compare_digest(token.encode("utf-8", "replace"), integ.secret):
            return _push_answer(
                push,
                401,
                f"missing or wrong token: POST {SF_PUSH_PATH}/<the secret of integration "
                f"{integ.name}>",
                {"Connection": "close"},
            )
        raw = await self._push_body(request, push)
        if isinstance(raw, Response):
            return raw
        limited = self._push_rate(push, integ)
        if limited is not None:
            return limited
        try:
            body = parse_push_json(raw, "the body")
            scans = sf_route_scans(body)
        except FieldError as exc:
            return _push_answer(push, 400 if exc.field == "" else 422, exc.message)
        return await self._record_push(push, scans, dict(sf.ROUTE_PUSH_ANSWER))

    async def kuaidi100_callback(self, request: Request) -> Response:
        """``POST /hooks/kuaidi100/callback``: Kuaidi100's subscription callback."""
        return await self._guarded(KUAIDI100_CALLBACK, self._kuaidi100_callback, request)

    async def _kuaidi100_callback(self, request: Request) -> Response:
        from orderdb.integrations.carriers import kuaidi100

        push = KUAIDI100_CALLBACK
        integ = await self._push_integration(push)
        if isinstance(integ, Response):
            return integ
        raw = await self._push_body(request, push)
        if isinstance(raw, Response):
            return raw
        try:
            form = urllib.parse.parse_qs(
                raw.decode("utf-8"),
                keep_blank_values=True,
                encoding="utf-8",
                errors="strict",
                max_num_fields=16,
            )
        except ValueError:  # not UTF-8, a bad %-escape, too many fields
            return _push_answer(push, 400, "the body is not a UTF-8 form of at most 16 fields")
        params, signs = form.get("param", []), form.get("sign", [])
        if len(params) != 1 or not params[0] or len(signs) > 1:
            return _push_answer(push, 400, "the form must hold param once (and sign at most once)")
        param = params[0]
        expected = kuaidi100.callback_sign(param, integ.secret.decode())
        given = (signs[0] if signs else "").upper().encode("utf-8", "replace")
        # constant time, either case (Kuaidi100 sends upper-case hex)
        if not hmac.compare_digest(given, expected.encode()):
            return _push_answer(
                push,
                401,
                "missing or wrong sign: MD5(param + salt) with the secret of integration "
                f"{integ.name} as the salt",
            )
        limited = self._push_rate(push, integ)
        if limited is not None:
            return limited
        try:
            data = parse_push_json(param, "param")
            scans = kuaidi100_scans(data)
        except FieldError as exc:
            return _push_answer(push, 400 if exc.field == "" else 422, exc.message)
        if data.get("status") == "abort":
            result = data.get("lastResult")
            number = result.get("nu") if isinstance(result, Mapping) else None
            log.warning(
                "KUAIDI100 ended the subscription of %r (status abort: %r); subscribe it again "
                "if the number and company are right",
                number,
                data.get("message"),
            )
        return await self._record_push(push, scans, dict(kuaidi100.CALLBACK_ANSWER))

    async def _authorize_status(self, request: Request) -> Response | None:
        """None when the status query is signed by an enabled integration, else the 401."""
        refused = _error(
            "bad-signature",
            "a status query needs X-OrderDB-Integration, X-OrderDB-Timestamp (Unix seconds, "
            "within 5 minutes) and X-OrderDB-Signature: sha256=<hex HMAC-SHA256 of "
            '"<timestamp>.<path?query>" with the integration\'s secret>',
        )
        name = request.headers.get(INTEGRATION_HEADER) or DEFAULT_WMS_INTEGRATION
        stamp = request.headers.get(TIMESTAMP_HEADER) or ""
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature or not _NAME.match(name):
            return refused
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            return refused
        if abs(time.time() - int(stamp)) > STATUS_CLOCK_SKEW:
            return refused
        try:
            integ = await self._integration(name, None, self._status_pool)
        except (PoolTimeout, psycopg.OperationalError):
            return _error(
                "database-unavailable", "the database is not reachable; retry", retry_after=1
            )
        if integ is None:
            return refused
        target = bytes(request.scope.get("raw_path") or request.url.path.encode())
        query = bytes(request.scope.get("query_string") or b"")
        if query:
            target += b"?" + query
        if not verify(integ.secret, stamp.encode() + b"." + target, signature):
            return refused
        return None

    async def status(self, request: Request) -> Response:
        assert self._status_pool is not None
        refused = await self._authorize_status(request)
        if refused is not None:
            return refused
        tracking_number = str(request.path_params["tracking_number"])
        carrier = request.query_params.get("carrier")
        for field, value in (("tracking_number", tracking_number), ("carrier", carrier)):
            problem = _text_problem(value or "")
            if problem is not None:
                return _error("invalid-field", f"{field} {problem}", field=field)
        try:
            async with self._status_pool.connection(timeout=self.acquire_timeout) as conn:
                cur = await conn.execute(
                    "SELECT orderdb.tracking_status(%s, %s)", (tracking_number, carrier)
                )
                row = await cur.fetchone()
        except PoolTimeout:
            return _error("server-busy", "no database connection free; retry", retry_after=1)
        except psycopg.Error as exc:
            return _db_error(exc)
        assert row is not None
        return JSONResponse(row[0], 200)

    async def healthz(self, _request: Request) -> Response:
        assert self._status_pool is not None
        try:
            async with self._status_pool.connection(timeout=self.acquire_timeout) as conn:
                await conn.execute("SELECT 1")
        except (PoolTimeout, psycopg.Error) as exc:
            return _error(
                "database-unavailable",
                f"the database is not reachable: {str(exc)[:200]}",
                retry_after=1,
            )
        return JSONResponse(
            {"status": "ok", "database": "ok", "integrations": len(self.integrations)}, 200
        )

    async def openapi(self, _request: Request) -> Response:
        """The OpenAPI document (docs/ingest-openapi.json holds the same bytes)."""
        from orderdb.integrations import openapi

        return Response(openapi.render(), media_type="application/json")

    async def problem_type(self, request: Request) -> Response:
        """The documentation of the problem type ``/problems/<slug>``."""
        return problem_page(str(request.path_params["slug"]), "ingest")


def serve(
    dsn: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8089,
    pool_size: int = 8,
    log_level: str = "info",
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    uvicorn_logging: bool = True,
) -> None:
    """Runs the ingestion server until interrupted (``orderdb ingest serve``).

    ``uvicorn_logging=False``: uvicorn leaves logging alone and its records (uvicorn.error,
    uvicorn.access) go to the root logger's handlers, e.g. ``--log-format json``'s."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    app = IngestApp(dsn, pool_size=pool_size, read_timeout=read_timeout).app
    # SF's route push carries its token in the path: keep it out of the access log
    logging.getLogger("uvicorn.access").addFilter(HIDE_PUSH_TOKENS)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        log_config=LOGGING_CONFIG if uvicorn_logging else None,
    )


__all__ = [
    "HIDE_PUSH_TOKENS",
    "KUAIDI100_CALLBACK",
    "SF_PUSH",
    "IngestApp",
    "Integration",
    "PushFormat",
    "TokenBucket",
    "check_json_fields",
    "kuaidi100_callback_failure",
    "kuaidi100_scans",
    "parse_carrier_event",
    "parse_push_json",
    "parse_wms_event",
    "serve",
    "sf_push_failure",
    "sf_route_scans",
    "sign",
    "sign_status",
    "verify",
]
