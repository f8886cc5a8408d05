"""Signed HTTP ingestion for carriers and the WMS (``orderdb ingest serve``): a small ASGI app.

Endpoints::

    POST /hooks/carriers/<carrier>   one carrier scan    -> orderdb.record_tracking_event
    POST /hooks/wms                  one WMS callback    -> orderdb.wms_callback
    GET  /status/<tracking_number>   shipment and order status (?carrier=SF optional)
    GET  /healthz                    liveness and database reachability

Every POST names an integration (``orderdb.integrations``): the carrier code in the path, or the
``X-OrderDB-Integration`` header for the WMS (default ``wms``). Per request, in this order:

1. unknown or disabled integration (or of the other kind): 404;
2. token bucket of the integration (``rate`` per second, ``burst``): 429 with ``Retry-After``
   when empty; nothing else is done for such a request, so a burst costs the database nothing;
3. body over 64 kB: 413; signature ``X-OrderDB-Signature: sha256=<hex HMAC-SHA256 of the raw
   body with the integration's secret>`` missing or wrong: 401;
4. body not a JSON object: 400; a required field missing or malformed: 422 naming the field;
5. the entry point, one transaction: the same event id twice is accepted once (the database
   dedupes; the second answer says ``"duplicate": true``). Contract errors map to 422 (22xxx,
   with the field), 404 (OD004), 409 (OD002/OD003; OD006: a WMS event id reused for another
   order or event type — ids are scoped per integration), 503 (40001/40P01, retry).

Status queries and health checks use a connection pool of their own, so they keep answering
while ingestion is saturated. Secrets are read from ``orderdb.integrations`` (owner only) and
refreshed every ``refresh_seconds``; the process therefore runs with the owner's DSN.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-orderdb-signature"
INTEGRATION_HEADER = "x-orderdb-integration"
DEFAULT_WMS_INTEGRATION = "wms"
MAX_BODY_BYTES = 65536
WMS_EVENT_TYPES = ("PICKED", "PACKED", "SHIPPED", "EXCEPTION")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# SQL parameter names (as the database names them in 22023 messages) -> HTTP body fields
_SQL_FIELD_TO_HTTP = {
    "event_time": "timestamp",
    "carrier_status": "status",
    "payload.occurred_at": "timestamp",
    "p_event_type": "event_type",
}


def sign(secret: str | bytes, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """Constant-time check of a signature header (``sha256=<hex>`` or the bare hex)."""
    if not header:
        return False
    given = header.strip()
    if given.startswith("sha256="):
        given = given[len("sha256=") :]
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.lower(), expected)


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


def _error(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    return JSONResponse({"error": error, "message": message, **extra}, status, headers=headers)


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


def _db_error(exc: psycopg.Error) -> JSONResponse:
    state = exc.sqlstate or ""
    message = exc.diag.message_primary or str(exc)
    detail = exc.diag.message_detail
    if state.startswith("22"):
        return _error(
            422, "invalid_field", message, field=_sql_field(message), sqlstate=state, detail=detail
        )
    if state == "OD004":
        return _error(404, "not_found", message, sqlstate=state, detail=detail)
    if state in ("OD002", "OD003", "OD006"):
        return _error(409, "conflict", message, sqlstate=state, detail=detail)
    if state in ("40001", "40P01"):
        return _error(503, "retry", message, sqlstate=state, retry_after=1)
    log.error("ingestion failed: %s (%s)", message, state)
    return _error(500, "internal", "the database refused the event", sqlstate=state)


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
    ) -> None:
        self.dsn = dsn
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
        self.app = Starlette(
            routes=[
                Route("/hooks/carriers/{carrier}", self.carrier_hook, methods=["POST"]),
                Route("/hooks/wms", self.wms_hook, methods=["POST"]),
                Route("/status/{tracking_number}", self.status, methods=["GET"]),
                Route("/healthz", self.healthz, methods=["GET"]),
            ],
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
        await self._pool.open(wait=True)
        await self._status_pool.open(wait=True)
        try:
            await self.refresh(force=True)
            yield
        finally:
            await self._pool.close()
            await self._status_pool.close()

    async def refresh(self, *, force: bool = False, min_age: float | None = None) -> None:
        """Reloads the integrations when older than ``refresh_seconds`` (or ``min_age``)."""
        threshold = 0.0 if force else (self.refresh_seconds if min_age is None else min_age)
        if not force and time.monotonic() - self._loaded_at < threshold:
            return
        assert self._refresh_lock is not None and self._pool is not None
        async with self._refresh_lock:
            if not force and time.monotonic() - self._loaded_at < threshold:
                return  # refreshed meanwhile by another request
            async with self._pool.connection(timeout=self.acquire_timeout) as conn:
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

    async def _integration(self, name: str, kind: str) -> Integration | None:
        await self.refresh()
        integ = self.integrations.get(name)
        if integ is None:
            await self.refresh(min_age=1.0)  # a new integration is found within a second
            integ = self.integrations.get(name)
        if integ is None or not integ.enabled or integ.kind != kind:
            return None
        return integ

    # -- the common part of both hooks -------------------------------------------------------

    async def _admit(
        self, request: Request, name: str, kind: str
    ) -> tuple[Integration, dict[str, Any]] | JSONResponse:
        if not _NAME.match(name):
            return _error(404, "unknown_integration", f"no {kind} integration {name!r}")
        integ = await self._integration(name, kind)
        if integ is None:
            return _error(404, "unknown_integration", f"no {kind} integration {name!r}")
        wait = self.buckets[name].take()
        if wait > 0:
            return _error(
                429,
                "rate_limited",
                f"integration {name} is over its rate ({integ.rate:g}/s, burst {integ.burst})",
                retry_after=max(1, math.ceil(wait)),
            )
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return _error(413, "too_large", f"body over {self.max_body_bytes} bytes")
        raw = await request.body()
        if len(raw) > self.max_body_bytes:
            return _error(413, "too_large", f"body over {self.max_body_bytes} bytes")
        if not verify(integ.secret, raw, request.headers.get(SIGNATURE_HEADER)):
            return _error(
                401,
                "bad_signature",
                "missing or wrong X-OrderDB-Signature (sha256=<hex HMAC-SHA256 of the body>)",
            )
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "bad_json", "the body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "bad_json", "the body must be a JSON object")
        return integ, body

    async def _call(self, query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | JSONResponse:
        assert self._pool is not None
        try:
            async with self._pool.connection(timeout=self.acquire_timeout) as conn:
                cur = await conn.execute(query, params)
                row = await cur.fetchone()
        except PoolTimeout:
            return _error(503, "busy", "no database connection free; retry", retry_after=1)
        except psycopg.Error as exc:
            return _db_error(exc)
        assert row is not None
        return tuple(row)

    # -- endpoints ---------------------------------------------------------------------------

    async def carrier_hook(self, request: Request) -> JSONResponse:
        carrier = str(request.path_params["carrier"])
        admitted = await self._admit(request, carrier, "carrier")
        if isinstance(admitted, JSONResponse):
            return admitted
        _integ, body = admitted
        try:
            event = parse_carrier_event(body)
        except FieldError as exc:
            return _error(422, "invalid_field", exc.message, field=exc.field)
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
        if isinstance(row, JSONResponse):
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

    async def wms_hook(self, request: Request) -> JSONResponse:
        name = request.headers.get(INTEGRATION_HEADER) or DEFAULT_WMS_INTEGRATION
        admitted = await self._admit(request, name, "wms")
        if isinstance(admitted, JSONResponse):
            return admitted
        _integ, body = admitted
        try:
            event = parse_wms_event(body)
        except FieldError as exc:
            return _error(422, "invalid_field", exc.message, field=exc.field)
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
        if isinstance(row, JSONResponse):
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

    async def status(self, request: Request) -> JSONResponse:
        assert self._status_pool is not None
        tracking_number = str(request.path_params["tracking_number"])
        carrier = request.query_params.get("carrier")
        try:
            async with self._status_pool.connection(timeout=self.acquire_timeout) as conn:
                cur = await conn.execute(
                    "SELECT orderdb.tracking_status(%s, %s)", (tracking_number, carrier)
                )
                row = await cur.fetchone()
        except PoolTimeout:
            return _error(503, "busy", "no database connection free; retry", retry_after=1)
        except psycopg.Error as exc:
            return _db_error(exc)
        assert row is not None
        return JSONResponse(row[0], 200)

    async def healthz(self, _request: Request) -> JSONResponse:
        assert self._status_pool is not None
        try:
            async with self._status_pool.connection(timeout=self.acquire_timeout) as conn:
                await conn.execute("SELECT 1")
        except (PoolTimeout, psycopg.Error) as exc:
            return JSONResponse({"status": "degraded", "database": str(exc)[:200]}, 503)
        return JSONResponse(
            {"status": "ok", "database": "ok", "integrations": len(self.integrations)}, 200
        )


def serve(
    dsn: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8089,
    pool_size: int = 8,
    log_level: str = "info",
) -> None:
    """Runs the ingestion server until interrupted (``orderdb ingest serve``)."""
    import uvicorn

    app = IngestApp(dsn, pool_size=pool_size).app
    uvicorn.run(app, host=host, port=port, log_level=log_level, lifespan="on")


__all__ = [
    "IngestApp",
    "Integration",
    "TokenBucket",
    "parse_carrier_event",
    "parse_wms_event",
    "serve",
    "sign",
    "verify",
]
