"""The Starlette application: the customer tracking page and the operations board (read-only).

Routes:

``/``                                   a form to look up an order, and a link to the board
``?lang=en|zh-CN`` on the customer pages chooses their language (else ``Accept-Language``, else
English; :mod:`orderdb.web.i18n`); dates are shown in the document's ``time_zone``.
``/track/{order_no}?customer=ID``       the tracking page (HTML)
``/api/track/{order_no}?customer=ID``   the same document as JSON (order_timeline_by_no)
``/api/track/{order_no}/events?customer=ID``
                                        server-sent events: ``timeline`` whenever it changes
``/ops?warehouse=ID&carrier=CODE``      the operations board (HTML)
``/api/ops?warehouse=ID&carrier=CODE``  the board's data as JSON
``/healthz``                            ``ok`` when the database answers and is migrated

Every way of naming an order that is not the customer's (unknown number, another customer's order,
a malformed number or customer id, control characters such as NUL) gets the same 404: the same
status, headers and body. When the database is away (no connection within about a second) or not
migrated, pages and ``/healthz`` answer 503 with ``Retry-After``.

Errors to JSON clients (the ``/api/`` paths, or an ``Accept`` header asking for JSON) are RFC 9457
problem details (:func:`orderdb.problems.problem_response`); browsers get HTML or plain text.
``/problems/<slug>`` documents each problem type.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import anyio
import psycopg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderdb.problems import (
    PROBLEM_TYPES,
    new_instance,
    problem_body,
    problem_page,
    problem_response,
    wants_json,
)
from orderdb.web import i18n, present
from orderdb.web.data import MIGRATE_HINT, Board, TrackingNotFound, WebDB
from orderdb.web.live import EventHub

log = logging.getLogger("orderdb.web")

HERE = Path(__file__).parent
MAX_ORDER_NO = 255
#: characters no order number or carrier code holds (and NUL, which PostgreSQL text cannot hold)
_NOT_TEXT = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
#: SQLSTATEs of a database the schema is missing from: not migrated
_UNMIGRATED_STATES = frozenset({"3F000", "42883", "42P01"})


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: object) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))


NOT_FOUND_DETAIL = "No order with this number for this customer."
#: the one body every "not your order" answer to a JSON client gets (no order number echoed:
#: compared byte for byte): an RFC 9457 problem
NOT_FOUND_JSON = dumps(problem_body(PROBLEM_TYPES["not-found"], NOT_FOUND_DETAIL)).encode()


class BadParameter(Exception):
    """A malformed query parameter: 400 (a problem for JSON clients, plain text for pages)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class WebState:
    """What the routes share: the database access, the templates, the live-update settings."""

    def __init__(
        self,
        db: WebDB,
        *,
        poll_interval: float,
        stream_seconds: float,
        idle_poll: float = 30.0,
        hub: EventHub | None = None,
        board_refresh: float = 15.0,
    ) -> None:
        self.db = db
        self.hub = hub
        #: seconds between the board page's own refreshes of its data region (ops.js)
        self.board_refresh = board_refresh
        self.poll_interval = poll_interval
        self.idle_poll = max(idle_poll, poll_interval)
        self.stream_seconds = stream_seconds
        self.stopping = threading.Event()
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = self.templates.env
        env.filters["fmt_time"] = present.fmt_time
        env.filters["iso_time"] = present.iso_time
        env.filters["label"] = present.label
        env.filters["duration"] = present.fmt_duration
        env.filters["value"] = present.fmt_value
        env.filters["local_time"] = i18n.fmt_local_time
        # pages that do not choose a language (the operations board) are English
        env.globals["locale"] = i18n.DEFAULT_LOCALE
        env.globals["t"] = i18n.texts(i18n.DEFAULT_LOCALE)
        self._not_found_html: dict[str, bytes] = {}

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        return self.templates.get_template(name).render(**context)

    def not_found_html(self, locale: str = i18n.DEFAULT_LOCALE) -> bytes:
        """The one "not found" page of a language (every way of missing an order gets it)."""
        if locale not in self._not_found_html:
            context = {"locale": locale, "t": i18n.texts(locale)}
            self._not_found_html[locale] = self.render("not_found.html", context).encode()
        return self._not_found_html[locale]


def _state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def _customer(request: Request) -> int | None:
    raw = request.query_params.get("customer", "")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return None
    value = int(raw)
    return value if value > 0 else None


def _locale(request: Request) -> str:
    """The customer page's language: ``?lang=``, else ``Accept-Language``, else English."""
    return i18n.negotiate(request.query_params.get("lang"), request.headers.get("accept-language"))


def _language_headers(locale: str) -> dict[str, str]:
    return {"Content-Language": locale, "Vary": "Accept-Language"}


def _order_no(request: Request) -> str | None:
    order_no = str(request.path_params.get("order_no", ""))
    if not order_no or len(order_no) > MAX_ORDER_NO or _NOT_TEXT.search(order_no):
        return None
    return order_no


def not_found_html(request: Request) -> Response:
    if wants_json(request):
        return not_found_json()
    locale = _locale(request)
    return Response(
        _state(request).not_found_html(locale),
        status_code=404,
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-store", **_language_headers(locale)},
    )


def not_found_json() -> Response:
    return problem_response(PROBLEM_TYPES["not-found"], NOT_FOUND_DETAIL)


async def _lookup(request: Request) -> tuple[str, int, dict[str, Any], str] | None:
    """(order number, customer, the SQL document in the request's language, that language)."""
    order_no, customer, locale = _order_no(request), _customer(request), _locale(request)
    if order_no is None or customer is None:
        return None
    try:
        doc = await anyio.to_thread.run_sync(
            _state(request).db.timeline, order_no, customer, locale
        )
    except TrackingNotFound:
        return None
    return order_no, customer, doc, locale


def _track_path(path: str, customer: int, locale: str) -> str:
    return f"/track/{path}?{urlencode({'customer': customer, 'lang': locale})}"


def _track_context(
    order_no: str, customer: int, doc: dict[str, Any], locale: str = i18n.DEFAULT_LOCALE
) -> dict[str, Any]:
    events = list(doc.get("timeline") or [])
    path = quote(order_no, safe="")
    query = urlencode({"customer": customer, "lang": locale})
    return {
        "order_no": order_no,
        "customer": customer,
        "doc": doc,
        "locale": locale,
        "t": i18n.texts(locale, doc),
        "tz": str(doc.get("time_zone") or i18n.zone(None, locale).key),
        "events_newest_first": list(reversed(events)),
        "stream_url": f"/api/track/{path}/events?{query}",
        "json_url": f"/api/track/{path}?{query}",
        "languages": [
            (code, i18n.CHROME[code]["language_name"], _track_path(path, customer, code))
            for code in i18n.offered()
        ],
    }


def _doc_tag(doc: Mapping[str, Any]) -> str:
    return hashlib.sha256(dumps(doc).encode()).hexdigest()[:20]


# -- routes ------------------------------------------------------------------------------------


async def index(request: Request) -> Response:
    locale = _locale(request)
    context = {"locale": locale, "t": i18n.texts(locale)}
    return _state(request).templates.TemplateResponse(
        request, "index.html", context, headers=_language_headers(locale)
    )


async def track_form(request: Request) -> Response:
    """The form on ``/``: ``/track?order_no=N&customer=C`` -> ``/track/N?customer=C``."""
    order_no = request.query_params.get("order_no", "").strip()
    customer = request.query_params.get("customer", "").strip()
    lang = i18n.match(request.query_params.get("lang", ""))
    if not order_no:
        return RedirectResponse("/" + (f"?{urlencode({'lang': lang})}" if lang else ""), 303)
    query = {"customer": customer, **({"lang": lang} if lang else {})}
    target = f"/track/{quote(order_no, safe='')}?{urlencode(query)}"
    return RedirectResponse(target, status_code=303)


async def track_page(request: Request) -> Response:
    found = await _lookup(request)
    if found is None:
        return not_found_html(request)
    order_no, customer, doc, locale = found
    context = _track_context(order_no, customer, doc, locale)
    context["tag"] = _doc_tag(doc)
    return _state(request).templates.TemplateResponse(
        request,
        "track.html",
        context,
        headers={"Cache-Control": "no-store", **_language_headers(locale)},
    )


async def track_json(request: Request) -> Response:
    found = await _lookup(request)
    if found is None:
        return not_found_json()
    return Response(
        dumps(found[2]),
        media_type="application/json",
        headers={"Cache-Control": "no-store", **_language_headers(found[3])},
    )


async def track_events(request: Request) -> Response:
    """Server-sent events: a ``timeline`` event (id = a hash of the document; data = the document
    and its rendered HTML) first (unless it is the one the client has: ``Last-Event-ID`` or
    ``?since=``, the page's own) and then whenever ``order_timeline_by_no`` answers differently.
    The server re-reads the function when the relay's ``NOTIFY orderdb_events`` names the order
    (:class:`~orderdb.web.live.EventHub`), at the latest every ``idle_poll`` seconds while the
    relay is heard, else every ``poll_interval`` seconds. The stream ends after
    ``stream_seconds`` (the browser reconnects with Last-Event-ID, which skips an unchanged
    first event)."""
    found = await _lookup(request)
    if found is None:
        return not_found_json()
    order_no, customer, first, locale = found
    state = _state(request)
    # what the client shows already: the page's document (?since=) or the last event it got
    last_tag = request.headers.get("last-event-id") or request.query_params.get("since")

    def event(doc: dict[str, Any]) -> str:
        context = _track_context(order_no, customer, doc, locale)
        html = state.render("_tracking.html", context)
        events = doc.get("timeline") or []
        newest = events[-1] if events else {}
        said = newest.get("description") or doc.get("status_text") or ""
        announce = f"{context['t']['updated']} {said}".strip()
        data = dumps({"html": html, "announce": announce, "timeline": doc})
        return f"id: {_doc_tag(doc)}\nevent: timeline\ndata: {data}\n\n"

    order_id = int(first.get("order_id") or 0)
    hub = state.hub

    def next_poll_in() -> float:
        # the relay's NOTIFYs wake the stream; without them, poll the timeline function
        return state.idle_poll if hub is not None and hub.relay_heard else state.poll_interval

    async def stream() -> AsyncIterator[str]:
        nonlocal last_tag
        deadline = time.monotonic() + state.stream_seconds
        last_write = time.monotonic()
        yield "retry: 2000\n\n"
        doc: dict[str, Any] | None = first
        seen = hub.signature(order_id) if hub is not None else None
        while not state.stopping.is_set():
            if doc is not None:
                tag = _doc_tag(doc)
                if tag != last_tag:
                    last_tag = tag
                    last_write = time.monotonic()
                    yield event(doc)
            poll_at = time.monotonic() + next_poll_in()
            while not state.stopping.is_set():
                now = time.monotonic()
                if now - last_write > 15:
                    last_write = now
                    yield ": keep-alive\n\n"
                if now >= deadline:
                    return
                current = hub.signature(order_id) if hub is not None else None
                if current != seen or now >= poll_at:
                    seen = current
                    break
                await anyio.sleep(min(0.2, state.poll_interval))
            try:
                doc = await anyio.to_thread.run_sync(state.db.timeline, order_no, customer, locale)
            except TrackingNotFound:
                yield "event: gone\ndata: {}\n\n"
                return
            except psycopg.Error as exc:  # database restart, timeout: keep the stream, try again
                log.warning("timeline poll failed: %s", exc)
                doc = None

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _filters(request: Request) -> tuple[int | None, str | None]:
    raw_wh = request.query_params.get("warehouse", "").strip()
    warehouse = int(raw_wh) if raw_wh.isascii() and raw_wh.isdigit() and len(raw_wh) < 10 else None
    carrier = request.query_params.get("carrier", "").strip()[:255] or None
    if carrier is not None and _NOT_TEXT.search(carrier):
        raise BadParameter("carrier", "carrier: not a carrier code (control characters)")
    return (warehouse if warehouse else None), carrier


def _lanes(snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The snapshot's lanes with each lane's Gantt bars laid out (presentation only)."""
    now = present.parse_time(snapshot.get("read_at"))
    out = []
    for lane in snapshot.get("lanes") or []:
        orders, axis_start, axis_end = present.gantt(lane.get("top") or [], now)
        out.append({**lane, "top": orders, "axis_start": axis_start, "axis_end": axis_end})
    return out


def _board_context(board: Board) -> dict[str, Any]:
    snapshot = board.snapshot or {}
    return {
        "board": board,
        "snapshot": snapshot,
        "lanes": _lanes(snapshot),
        "warehouses": [str(w) for w in snapshot.get("warehouses") or []],
        "carriers": [str(c) for c in snapshot.get("carriers") or []],
        "query": urlencode(
            {k: v for k, v in (("warehouse", board.warehouse_id), ("carrier", board.carrier)) if v}
        ),
        "now": present.parse_time(snapshot.get("read_at")) or datetime.now(UTC),
    }


async def ops_page(request: Request) -> Response:
    warehouse, carrier = _filters(request)
    board = await anyio.to_thread.run_sync(_state(request).db.board, warehouse, carrier)
    context = _board_context(board)
    context["refresh_ms"] = round(_state(request).board_refresh * 1000)
    name = "_board.html" if request.query_params.get("fragment") == "1" else "ops.html"
    return _state(request).templates.TemplateResponse(
        request, name, context, headers={"Cache-Control": "no-store"}
    )


async def ops_json(request: Request) -> Response:
    warehouse, carrier = _filters(request)
    board = await anyio.to_thread.run_sync(_state(request).db.board, warehouse, carrier)
    body = {
        "warehouse_id": board.warehouse_id,
        "carrier": board.carrier,
        "snapshot": board.snapshot,
        "snapshot_error": board.snapshot_error,
        "kpis": asdict(board.kpis),
        "low_stock": asdict(board.low_stock),
        "wms_backlog": asdict(board.wms_backlog),
        "elapsed_ms": round(board.elapsed_ms, 1),
    }
    return Response(
        dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


def _unavailable(request: Request, message: str) -> Response:
    if wants_json(request):
        slug = "not-migrated" if message == MIGRATE_HINT else "database-unavailable"
        return problem_response(PROBLEM_TYPES[slug], message, retry_after=5)
    headers = {"Retry-After": "5", "Cache-Control": "no-store"}
    return PlainTextResponse(message, 503, headers=headers)


def _internal(request: Request, exc: BaseException) -> Response:
    """A bug: logged with an instance id that a JSON client gets too (500)."""
    instance = new_instance()
    log.error("internal error %s", instance, exc_info=exc)
    if wants_json(request):
        detail = "the server failed; it logged this instance"
        return problem_response(PROBLEM_TYPES["internal-error"], detail, instance=instance)
    return PlainTextResponse("internal error", 500, headers={"Cache-Control": "no-store"})


async def bad_parameter(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadParameter)
    if wants_json(request):
        kind = PROBLEM_TYPES["invalid-parameter"]
        return problem_response(kind, exc.message, field=exc.field)
    return PlainTextResponse(exc.message, 400, headers={"Cache-Control": "no-store"})


async def http_error(request: Request, exc: Exception) -> Response:
    """What the framework refuses (no such path, method not allowed): ``about:blank`` problems
    for JSON clients, Starlette's plain text for browsers."""
    assert isinstance(exc, HTTPException)
    if wants_json(request):
        return problem_response(exc.status_code, exc.detail, headers=exc.headers)
    if exc.status_code in {204, 304}:
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    return _internal(request, exc)


async def problem_type(request: Request) -> Response:
    """``/problems/<slug>``: the documentation of a problem type."""
    return problem_page(str(request.path_params["slug"]), "web")


async def database_error(request: Request, exc: Exception) -> Response:
    """psycopg errors that escape a route: the database away or timing out (OperationalError),
    or its schema missing (not migrated) are 503; anything else is a bug (500, logged)."""
    assert isinstance(exc, psycopg.Error)
    if exc.sqlstate in _UNMIGRATED_STATES:
        log.error("%s (%s)", MIGRATE_HINT, str(exc).splitlines()[0] if str(exc) else exc)
        return _unavailable(request, MIGRATE_HINT)
    if isinstance(exc, psycopg.OperationalError):
        log.warning("database unavailable: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return _unavailable(request, "database unavailable; retry shortly")
    return _internal(request, exc)


async def healthz(request: Request) -> Response:
    """``ok`` only when a connection comes within about a second and the schema is there (the
    functions the pages call): else 503 saying which, so a load balancer takes the server out."""
    try:
        problem = await anyio.to_thread.run_sync(_state(request).db.health)
    except psycopg.Error:
        return _unavailable(request, "database unavailable")
    if problem is not None:
        return _unavailable(request, problem)
    return PlainTextResponse("ok", headers={"Cache-Control": "no-store"})


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    # tracking URLs carry the customer id: never send them on as a Referer
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
]


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (pure ASGI: streams stay streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    dsn: str,
    ops_dsn: str | None = None,
    *,
    poll_interval: float = 1.0,
    stream_seconds: float = 300.0,
    board_ttl: float = 5.0,
    per_lane: int = 20,
    idle_poll: float = 30.0,
    listen: bool = True,
    board_refresh: float = 15.0,
) -> Starlette:
    """The web application over the database at ``dsn`` (the board over ``ops_dsn`` if given).

    ``listen``: wake live tracking streams on the relay's ``NOTIFY orderdb_events``.
    ``board_refresh``: seconds between the board page's refreshes of its data (pausable).
    """
    db = WebDB(dsn, ops_dsn, board_ttl=board_ttl, per_lane=per_lane)
    hub = EventHub(dsn) if listen else None
    state = WebState(
        db,
        poll_interval=poll_interval,
        stream_seconds=stream_seconds,
        idle_poll=idle_poll,
        hub=hub,
        board_refresh=board_refresh,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db.open()
        if hub is not None:
            hub.start()
        try:
            yield
        finally:
            state.stopping.set()
            if hub is not None:
                await anyio.to_thread.run_sync(hub.stop)
            db.close()

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/track", track_form),
            Route("/track/{order_no}", track_page),
            Route("/api/track/{order_no}", track_json),
            Route("/api/track/{order_no}/events", track_events),
            Route("/ops", ops_page),
            Route("/api/ops", ops_json),
            Route("/healthz", healthz),
            Route("/problems/{slug}", problem_type),
            Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
        ],
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={
            psycopg.Error: database_error,
            BadParameter: bad_parameter,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
        lifespan=lifespan,
    )
    app.state.web = state
    return app
