"""RFC 9457 problem details: how the HTTP servers (``orderdb ingest serve`` and the JSON side of
``orderdb web``) answer an error.

Every error answer is ``Content-Type: application/problem+json`` holding an object with

* ``type``: a URI reference naming the problem type. orderdb's own types are the path-absolute
  references ``/problems/<slug>``: RFC 9457 (section 3.1.1) recommends absolute URIs and, where
  relative ones are used, the full path; orderdb has no domain of its own to mint absolute URIs
  under (section 4: a type URI ought to be under the API's control and stable), and a
  path-absolute reference resolves to the server that answered, which documents the type at
  that path (``GET /problems/<slug>``), as section 4 asks. The string is the same on every
  orderdb server. Errors that say nothing beyond their HTTP status (a path that does not exist,
  a method not allowed) use ``about:blank`` with the status phrase as ``title`` (section
  4.2.1).
* ``title`` (the same for every occurrence of the type), ``status`` (the HTTP status of the
  answer), ``detail`` (what went wrong this time, for people), ``instance`` (only on 500: a
  ``urn:uuid:`` that the server's log names too);
* extension members (section 3.2): ``field`` (the field or parameter at fault), ``sqlstate``
  (when the database refused), ``db_detail`` (the database's DETAIL, when it gave one),
  ``retry_after`` (seconds, with 429 and 503, as the ``Retry-After`` header);
* deprecated: ``error`` (the code errors had before problem details) and ``message`` (the same
  text as ``detail``), kept for one release so that existing integrations go on working.

:func:`problem_response` builds every such answer; :data:`PROBLEM_TYPES` lists the types.
"""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

MEDIA_TYPE = "application/problem+json"
#: the type of a problem with no meaning beyond its HTTP status (RFC 9457 section 4.2.1)
ABOUT_BLANK = "about:blank"
#: where orderdb's problem types live: ``/problems/<slug>`` on the server that answered
TYPE_PREFIX = "/problems/"


@dataclass(frozen=True)
class ProblemType:
    """One documented problem type: its slug (the ``type`` is ``/problems/<slug>``), title, the
    HTTP status it is used with, the deprecated ``error`` code, and what it means."""

    slug: str
    title: str
    status: int
    code: str
    description: str
    servers: tuple[str, ...] = ("ingest",)

    @property
    def uri(self) -> str:
        return TYPE_PREFIX + self.slug


_TYPES = (
    ProblemType(
        "unknown-integration",
        "Unknown integration",
        404,
        "unknown_integration",
        "No enabled integration of that name and kind (the carrier code in the path, or "
        "X-OrderDB-Integration for the WMS). The body is not read; the connection is closed.",
    ),
    ProblemType(
        "body-too-large",
        "Request body too large",
        413,
        "too_large",
        "The body is over 64 kB: declared by Content-Length (refused before any of it is read) "
        "or counted while a chunked body arrives. The connection is closed.",
    ),
    ProblemType(
        "body-timeout",
        "Request body not received in time",
        408,
        "timeout",
        "The body did not arrive in full within the read timeout (10 s unless the server was "
        "started with another --read-timeout). The connection is closed.",
    ),
    ProblemType(
        "client-disconnected",
        "Client disconnected",
        400,
        "disconnected",
        "The client went away before its body arrived in full.",
    ),
    ProblemType(
        "bad-signature",
        "Missing or wrong signature",
        401,
        "bad_signature",
        "X-OrderDB-Signature is missing, malformed (not 64 hex digits) or not the HMAC-SHA256 "
        "of the body (of '<timestamp>.<path?query>' for a status query) with the integration's "
        "secret; for a status query also: X-OrderDB-Timestamp missing or more than 5 minutes "
        "from the server's clock, or the integration unknown or disabled. The answer tells "
        "nothing else.",
    ),
    ProblemType(
        "rate-limited",
        "Rate limit exceeded",
        429,
        "rate_limited",
        "The integration's token bucket is empty. Retry after retry_after seconds (also the "
        "Retry-After header) with the same body.",
    ),
    ProblemType(
        "bad-json",
        "Body is not a JSON object",
        400,
        "bad_json",
        "The body is not JSON in UTF-8 (NaN, Infinity and numbers beyond a double such as 1e400 "
        "are not JSON), not a JSON object, or nests deeper than 32 levels outside any field.",
    ),
    ProblemType(
        "invalid-field",
        "Invalid field",
        422,
        "invalid_field",
        "A field of the body (or the tracking number or carrier of a status query) is missing "
        "or malformed, holds NUL or a lone surrogate, or nests deeper than 32 levels; field "
        "names it. Also the database's own checks (sqlstate 22xxx). Do not retry unchanged.",
    ),
    ProblemType(
        "not-found",
        "Not found",
        404,
        "not_found",
        "What the request names does not exist (sqlstate OD004, e.g. a WMS callback for an "
        "unknown order; in orderdb web: no order with this number for this customer, the same "
        "answer whatever the reason).",
        ("ingest", "web"),
    ),
    ProblemType(
        "conflict",
        "Conflict",
        409,
        "conflict",
        "The event contradicts what is recorded (sqlstate OD002 or OD003; OD006: a WMS "
        "event_id this integration already used for another order or event type, or a "
        "carrier event_id already used for another tracking number or carrier status). "
        "Nothing changed.",
    ),
    ProblemType(
        "transaction-retry",
        "Transaction conflict, retry",
        503,
        "retry",
        "A serialization failure or deadlock (sqlstate 40001 or 40P01). Nothing changed; retry "
        "after retry_after seconds with the same body.",
    ),
    ProblemType(
        "server-busy",
        "Server busy",
        503,
        "busy",
        "No database connection came free within 5 seconds. Retry after retry_after seconds "
        "with the same body.",
    ),
    ProblemType(
        "database-unavailable",
        "Database unavailable",
        503,
        "unavailable",
        "The database is not reachable. Retry after retry_after seconds (also the Retry-After "
        "header).",
        ("ingest", "web"),
    ),
    ProblemType(
        "not-migrated",
        "Database not migrated",
        503,
        "unavailable",
        "The database lacks orderdb's schema, functions or tables: run orderdb migrate.",
        ("web",),
    ),
    ProblemType(
        "invalid-parameter",
        "Invalid query parameter",
        400,
        "bad_request",
        "A query parameter is malformed (e.g. a carrier code holding control characters); "
        "field names it.",
        ("web",),
    ),
    ProblemType(
        "internal-error",
        "Internal server error",
        500,
        "internal",
        "A fault of the server. instance (a urn:uuid) names this occurrence in the server's log.",
        ("ingest", "web"),
    ),
)

#: every problem type, by slug
PROBLEM_TYPES: Mapping[str, ProblemType] = {t.slug: t for t in _TYPES}


def _legacy_code(status: int) -> str:
    return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")


def problem_body(
    kind: ProblemType | int,
    detail: str | None = None,
    *,
    instance: str | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    """The problem details object: ``kind`` is a :class:`ProblemType` or, for ``about:blank``,
    an HTTP status. Extension members whose value is None are left out."""
    if isinstance(kind, ProblemType):
        type_uri, title, status, code = kind.uri, kind.title, kind.status, kind.code
    else:
        phrase = HTTPStatus(kind).phrase
        type_uri, title, status, code = ABOUT_BLANK, phrase, kind, _legacy_code(kind)
    text = detail if detail is not None else title
    body: dict[str, Any] = {"type": type_uri, "title": title, "status": status, "detail": text}
    if instance is not None:
        body["instance"] = instance
    body.update((k, v) for k, v in extensions.items() if v is not None)
    body["error"] = code  # deprecated
    body["message"] = text  # deprecated
    return body


def _encode(body: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate in some text: escape it rather than fail
        return json.dumps(body, separators=(",", ":")).encode()


def problem_response(
    kind: ProblemType | int,
    detail: str | None = None,
    *,
    field: str | None = None,
    sqlstate: str | None = None,
    retry_after: int | None = None,
    instance: str | None = None,
    close: bool = False,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """The one way an error is answered: an ``application/problem+json`` response.

    ``kind``: a problem type, or an HTTP status for ``about:blank``. ``retry_after`` also sets
    the ``Retry-After`` header; ``close`` adds ``Connection: close`` (the request body was not
    read to its end, so the connection cannot carry another request); ``headers`` are added
    (e.g. ``Allow`` of a 405). Problems are never cached (``Cache-Control: no-store``)."""
    body = problem_body(
        kind,
        detail,
        instance=instance,
        field=field,
        sqlstate=sqlstate,
        retry_after=retry_after,
        **extensions,
    )
    all_headers = {"Cache-Control": "no-store", **(headers or {})}
    if retry_after is not None:
        all_headers["Retry-After"] = str(retry_after)
    if close:
        all_headers["Connection"] = "close"
    return Response(_encode(body), body["status"], headers=all_headers, media_type=MEDIA_TYPE)


def new_instance() -> str:
    """A fresh ``instance`` for an occurrence the server logs (a 500): ``urn:uuid:<uuid4>``."""
    return f"urn:uuid:{uuid.uuid4()}"


def wants_json(request: Request) -> bool:
    """Whether the client reads JSON rather than HTML: an ``/api/`` path, or an ``Accept``
    header naming ``application/json``, ``application/problem+json`` or another ``+json``."""
    if request.url.path.startswith("/api/"):
        return True
    accept = request.headers.get("accept", "").lower()
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip()
        if media == "application/json" or media.endswith("+json"):
            return True
    return False


def problem_page(slug: str, server: str) -> Response:
    """``GET /problems/<slug>``: the documentation of one problem type (HTML), or a
    ``about:blank`` 404 problem when the server has no such type."""
    kind = PROBLEM_TYPES.get(slug)
    if kind is None or server not in kind.servers:
        return problem_response(404, f"no problem type {slug!r}")
    e = html.escape
    page = (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{e(kind.title)}</title></head>\n'
        f"<body><h1>{e(kind.title)}</h1>\n"
        f"<p><code>type</code>: <code>{e(kind.uri)}</code>; HTTP status {kind.status}; "
        f"deprecated <code>error</code>: <code>{e(kind.code)}</code></p>\n"
        f"<p>{e(kind.description)}</p>\n"
        "<p>Answers are RFC 9457 problem details (<code>application/problem+json</code>).</p>\n"
        "</body></html>\n"
    )
    return HTMLResponse(page, headers={"Cache-Control": "public, max-age=3600"})


def types_for(server: str) -> list[ProblemType]:
    """The problem types one server (``ingest`` or ``web``) answers with."""
    return [t for t in _TYPES if server in t.servers]


__all__ = [
    "ABOUT_BLANK",
    "MEDIA_TYPE",
    "PROBLEM_TYPES",
    "ProblemType",
    "new_instance",
    "problem_body",
    "problem_page",
    "problem_response",
    "types_for",
    "wants_json",
]
