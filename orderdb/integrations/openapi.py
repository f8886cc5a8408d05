"""The OpenAPI 3.1 document of ``orderdb ingest serve``: built here from the server's own bounds
(:mod:`orderdb.integrations.http`) and problem types (:mod:`orderdb.problems`), served at
``GET /openapi.json`` and kept in the repository as docs/ingest-openapi.json (a test checks that
both are the same bytes). Regenerate the file with::

    python -m orderdb.integrations.openapi docs/ingest-openapi.json
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from typing import Any

from orderdb.integrations.http import (
    DEFAULT_READ_TIMEOUT,
    DEFAULT_WMS_INTEGRATION,
    KUAIDI100_CALLBACK,
    KUAIDI100_CALLBACK_PATH,
    KUAIDI100_FAILURE_CODE,
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    SF_PUSH,
    SF_PUSH_FAILURE_CODE,
    SF_PUSH_PATH,
    STATUS_CLOCK_SKEW,
    WMS_EVENT_TYPES,
)
from orderdb.problems import ABOUT_BLANK, MEDIA_TYPE, PROBLEM_TYPES, types_for

#: an ISO 8601 timestamp that names its zone (Z or an offset), as the hooks require
_ZONED = r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2}(?::?[0-9]{2}(?:\.[0-9]+)?)?)?)$"
_NAME = "^[A-Za-z0-9_.-]{1,64}$"
_TEXT_RULE = (
    "Text may not hold NUL (\\u0000) or lone surrogates (\\ud800 to \\udfff), which are not text."
)


def _text(description: str, max_length: int, *, min_length: int = 1) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": min_length,
        "maxLength": max_length,
        "description": f"{description} {_TEXT_RULE}",
    }


def _timestamp(description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "format": "date-time",
        "maxLength": 64,
        "pattern": _ZONED,
        "description": f"{description} ISO 8601 with a time zone (Z or an offset), "
        "e.g. 2026-11-25T08:15:00+08:00; a timestamp without a zone is refused (422).",
        "examples": ["2026-11-25T08:15:00+08:00"],
    }


def _json_object(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"{description} Nests at most {MAX_JSON_DEPTH} levels ({{}} and [] "
        f"count one level). {_TEXT_RULE}",
    }


def _schemas() -> dict[str, Any]:
    problem_types = sorted(t.uri for t in types_for("ingest"))
    return {
        "CarrierEvent": {
            "type": "object",
            "description": "One carrier scan (orderdb.record_tracking_event). Unknown members "
            "are ignored.",
            "required": ["event_id", "tracking_number", "status", "timestamp"],
            "properties": {
                "event_id": _text(
                    "The carrier's id of the scan: the dedupe key (the same id again answers "
                    "duplicate).",
                    255,
                ),
                "tracking_number": _text("The parcel's tracking number.", 255),
                "status": _text(
                    "The carrier's status code (mapped by orderdb.carrier_status_map).", 255
                ),
                "timestamp": _timestamp(
                    "When the scan happened: from 2000-01-01, at most a day ahead."
                ),
                "location": _text("Where.", 1000, min_length=0),
                "description": _text("The carrier's text.", 1000, min_length=0),
                "data": _json_object("Anything else, stored with the event."),
            },
            "examples": [
                {
                    "event_id": "sf-8812-1",
                    "tracking_number": "SF1234567890",
                    "status": "50",
                    "timestamp": "2026-11-25T08:15:00+08:00",
                    "location": "Shenzhen",
                }
            ],
        },
        "WmsEvent": {
            "type": "object",
            "description": "One WMS callback (orderdb.wms_callback). Unknown members are ignored.",
            "required": ["event_id", "order_id", "event_type", "timestamp"],
            "properties": {
                "event_id": _text(
                    "The WMS's id of the event: the dedupe key, per integration.", 255
                ),
                "order_id": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 2**63 - 1,
                    "description": "The order.",
                },
                "event_type": {"type": "string", "enum": list(WMS_EVENT_TYPES)},
                "timestamp": _timestamp("When it happened in the warehouse (occurred_at)."),
                "payload": _json_object(
                    'SHIPPED: {"carrier", "tracking_number", "lines": [...]}; EXCEPTION: '
                    '{"exception_type", ...}.'
                ),
            },
            "examples": [
                {
                    "event_id": "wms-7781",
                    "order_id": 2,
                    "event_type": "SHIPPED",
                    "timestamp": "2026-11-25T08:02:00+08:00",
                    "payload": {"carrier": "SF", "tracking_number": "SF1234567890"},
                }
            ],
        },
        "CarrierEventAnswer": {
            "type": "object",
            "required": ["result", "duplicate", "event_id"],
            "properties": {
                "result": {"type": "string", "enum": ["accepted", "duplicate"]},
                "duplicate": {"type": "boolean"},
                "event_id": {"type": "string"},
                "tracking_event_id": {"type": ["integer", "null"]},
                "normalized_status": {"type": ["string", "null"]},
                "order_id": {
                    "type": ["integer", "null"],
                    "description": "null: no shipment has this tracking number yet (stored "
                    "unmatched).",
                },
                "order_status": {"type": ["string", "null"]},
            },
        },
        "CarrierEventBatch": {
            "type": "object",
            "description": "Scans of a carrier that pushes arrays: each element a CarrierEvent, "
            "recorded with one call of orderdb.record_tracking_events. No other member.",
            "required": ["events"],
            "properties": {
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1000,
                    "items": {"$ref": "#/components/schemas/CarrierEvent"},
                }
            },
            "additionalProperties": False,
        },
        "CarrierEventBatchAnswer": {
            "type": "object",
            "description": "One result per scan, in the order sent: accepted or duplicate (as "
            "the single hook answers), or rejected with its problem (a malformed scan: "
            "invalid-field naming events[i].<field>; one the database refuses: invalid-field or "
            "conflict, with its sqlstate). A rejected scan is not recorded; the others are.",
            "required": ["accepted", "duplicate", "rejected", "results"],
            "properties": {
                "accepted": {"type": "integer"},
                "duplicate": {"type": "integer"},
                "rejected": {"type": "integer"},
                "results": {
                    "type": "array",
                    "items": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/CarrierEventAnswer"},
                            {
                                "type": "object",
                                "required": ["result", "problem"],
                                "properties": {
                                    "result": {"const": "rejected"},
                                    "event_id": {"type": ["string", "null"]},
                                    "problem": {"$ref": "#/components/schemas/Problem"},
                                },
                            },
                        ]
                    },
                },
            },
        },
        "WmsEventAnswer": {
            "type": "object",
            "required": ["result", "duplicate", "event_id"],
            "properties": {
                "result": {"type": "string", "enum": ["accepted", "duplicate"]},
                "duplicate": {"type": "boolean"},
                "event_id": {"type": "string"},
                "order_id": {"type": "integer"},
                "status": {"type": "string", "description": "The order's status."},
                "version": {"type": "integer", "description": "The order's version."},
            },
        },
        "TrackingStatus": {
            "type": "object",
            "description": "orderdb.tracking_status: matched true (a shipment has the number: "
            "its order) or false (events only: the newest of them).",
            "required": ["matched", "tracking_number"],
            "properties": {
                "matched": {"type": "boolean"},
                "carrier": {"type": ["string", "null"]},
                "tracking_number": {"type": "string"},
                "shipment_status": {"type": ["string", "null"]},
                "shipped_at": {"type": ["string", "null"], "format": "date-time"},
                "delivered_at": {"type": ["string", "null"], "format": "date-time"},
                "last_event_time": {"type": ["string", "null"], "format": "date-time"},
                "location": {"type": ["string", "null"]},
                "order_id": {"type": ["integer", "null"]},
                "order_no": {"type": ["string", "null"]},
                "order_status": {"type": ["string", "null"]},
                "events": {"type": "integer"},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "database"],
            "properties": {
                "status": {"const": "ok"},
                "database": {"const": "ok"},
                "integrations": {"type": "integer", "minimum": 0},
            },
        },
        "SfRoutePush": {
            "type": "object",
            "description": "SF's route push (RoutePushService, request method json): up to 10 "
            "routes (SF's bound; the server takes what fits in the body). Unknown members are "
            "kept in each event's payload.",
            "required": ["Body"],
            "properties": {
                "Body": {
                    "type": "object",
                    "required": ["WaybillRoute"],
                    "properties": {
                        "WaybillRoute": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"$ref": "#/components/schemas/SfWaybillRoute"},
                        }
                    },
                }
            },
            "examples": [
                {
                    "Body": {
                        "WaybillRoute": [
                            {
                                "id": "10049361064087",
                                "mailno": "SF1234567890123",
                                "orderid": "orderdb-2",
                                "acceptTime": "2026-11-25 08:15:00",
                                "acceptAddress": "深圳市",
                                "remark": "顺丰速运 已收取快件",
                                "opCode": "50",
                            }
                        ]
                    }
                }
            ],
        },
        "SfWaybillRoute": {
            "type": "object",
            "description": "One route scan. A route the parser or the database refuses is "
            "left out (logged); the others are recorded.",
            "required": ["mailno", "acceptTime", "opCode"],
            "properties": {
                "id": {
                    "type": ["string", "integer"],
                    "description": "SF's id of the scan: the event id (dedupe key).",
                },
                "mailno": _text("The waybill number (the tracking number).", 255),
                "orderid": {"type": "string", "description": "The customer order id."},
                "acceptTime": {
                    "type": "string",
                    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$",
                    "description": "When, in China time (SF names no zone).",
                },
                "acceptAddress": _text("Where.", 1000, min_length=0),
                "remark": _text("SF's text.", 1000, min_length=0),
                "opCode": _text("SF's operation code (orderdb.carrier_status_map).", 255),
                "reasonCode": {"type": "string"},
                "reasonName": {"type": "string"},
            },
        },
        "SfPushAnswer": {
            "type": "object",
            "description": f"SF's answer format: return_code 0000 success, "
            f"{SF_PUSH_FAILURE_CODE} failure (SF pushes again).",
            "required": ["return_code", "return_msg"],
            "properties": {
                "return_code": {"type": "string", "enum": ["0000", SF_PUSH_FAILURE_CODE]},
                "return_msg": {"type": "string"},
            },
        },
        "Kuaidi100Callback": {
            "type": "object",
            "description": "The form Kuaidi100 posts to a subscription's callbackurl.",
            "required": ["param", "sign"],
            "properties": {
                "param": {
                    "type": "string",
                    "description": 'JSON: {"status", "message", "lastResult": {"nu", "com", '
                    '"state", "data": [{"ftime", "context", "areaName", "statusCode", ...}]}}; '
                    f"nests at most {MAX_JSON_DEPTH} levels. {_TEXT_RULE}",
                },
                "sign": {
                    "type": "string",
                    "pattern": "^[0-9A-Fa-f]{32}$",
                    "description": "Hex MD5 of param + salt, the salt being the secret of the "
                    f"carrier integration {KUAIDI100_CALLBACK.integration} (either letter case).",
                },
            },
        },
        "Kuaidi100Answer": {
            "type": "object",
            "description": f"Kuaidi100's answer format: result true, returnCode 200 success; "
            f"result false, returnCode {KUAIDI100_FAILURE_CODE} failure (Kuaidi100 posts again "
            "later).",
            "required": ["result", "returnCode", "message"],
            "properties": {
                "result": {"type": "boolean"},
                "returnCode": {"type": "string", "enum": ["200", KUAIDI100_FAILURE_CODE]},
                "message": {"type": "string"},
            },
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details (application/problem+json). Clients must "
            "ignore members they do not know.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {
                    "type": "string",
                    "format": "uri-reference",
                    "description": "The problem type: /problems/<slug> (resolved against this "
                    "server; GET it for its documentation) or about:blank (nothing beyond the "
                    "HTTP status).",
                    "examples": [*problem_types, ABOUT_BLANK],
                },
                "title": {
                    "type": "string",
                    "description": "Short summary of the type; the same for every occurrence.",
                },
                "status": {
                    "type": "integer",
                    "minimum": 400,
                    "maximum": 599,
                    "description": "The HTTP status of this answer.",
                },
                "detail": {"type": "string", "description": "What went wrong this time."},
                "instance": {
                    "type": "string",
                    "format": "uri-reference",
                    "description": "On 500 only: a urn:uuid that the server's log names too.",
                },
                "field": {
                    "type": "string",
                    "description": "The body field (or path or query parameter) at fault.",
                },
                "sqlstate": {
                    "type": "string",
                    "pattern": "^[0-9A-Z]{5}$",
                    "description": "The database's SQLSTATE, when the database refused.",
                },
                "db_detail": {
                    "type": "string",
                    "description": "The database's DETAIL, when it gave one.",
                },
                "retry_after": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "With 429 and 503: seconds to wait before retrying with the "
                    "same body (also the Retry-After header).",
                },
                "error": {
                    "type": "string",
                    "deprecated": True,
                    "description": "Deprecated: the error code of earlier releases "
                    "(invalid_field, bad_signature, ...); removed in the next release.",
                },
                "message": {
                    "type": "string",
                    "deprecated": True,
                    "description": "Deprecated: the same text as detail; removed in the next "
                    "release.",
                },
            },
        },
    }


def _problem_answer(slugs: Sequence[str], blank: str | None = None) -> dict[str, Any]:
    """A response of the given problem types (and ``about:blank`` when ``blank`` says when)."""
    kinds = [PROBLEM_TYPES[s] for s in slugs]
    lines = [f"`{k.uri}` ({k.title}): {k.description}" for k in kinds]
    if blank is not None:
        lines.append(f"`{ABOUT_BLANK}`: {blank}")
    examples: dict[str, Any] = {}
    for k in kinds:
        example: dict[str, Any] = {
            "type": k.uri,
            "title": k.title,
            "status": k.status,
            "detail": k.description.split(". ")[0].rstrip(".") + ".",
        }
        if k.slug == "invalid-field":
            example["detail"] = "timestamp must include a time zone (e.g. 2026-05-01T10:00:00Z)"
            example["field"] = "timestamp"
        if k.status in (429, 503):
            example["retry_after"] = 1
        example["error"] = k.code
        example["message"] = example["detail"]
        examples[k.slug] = {"summary": k.title, "value": example}
    content: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/Problem"}}
    if examples:
        content["examples"] = examples
    headers: dict[str, Any] = {}
    if any(k.status in (429, 503) for k in kinds):
        headers["Retry-After"] = {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer", "minimum": 1},
        }
    answer: dict[str, Any] = {"description": "\n\n".join(lines), "content": {MEDIA_TYPE: content}}
    if headers:
        answer["headers"] = headers
    return answer


def _hook_responses(answer_schema: str) -> dict[str, Any]:
    return {
        "200": {
            "description": 'Recorded ("result": "accepted") or already recorded ("result": '
            '"duplicate", nothing changed).',
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{answer_schema}"}}
            },
        },
        "400": _problem_answer(["bad-json", "client-disconnected"]),
        "401": _problem_answer(["bad-signature"]),
        "404": _problem_answer(["unknown-integration", "not-found"]),
        "405": _problem_answer([], blank="another method than POST."),
        "408": _problem_answer(["body-timeout"]),
        "409": _problem_answer(["conflict"]),
        "413": _problem_answer(["body-too-large"]),
        "422": _problem_answer(["invalid-field"]),
        "429": _problem_answer(["rate-limited"]),
        "500": _problem_answer(["internal-error"]),
        "503": _problem_answer(["transaction-retry", "server-busy", "database-unavailable"]),
    }


#: the answers of the carriers' push routes: status -> when
_PUSH_FAILURES = {
    "400": "The body (Kuaidi100: the form, or its param) is not the carrier's format: not JSON, "
    "not a UTF-8 form, param missing or twice.",
    "401": "SF: the token in the path is not the SF integration's secret. Kuaidi100: sign "
    "missing or not MD5(param + salt).",
    "404": "No enabled carrier integration of that name (SF, KUAIDI100).",
    "408": "The body did not arrive within the read timeout.",
    "413": f"The body is over {MAX_BODY_BYTES} bytes.",
    "415": "Another content type than the carrier's (charset UTF-8 or none).",
    "422": "Not a route push / callback (no Body.WaybillRoute, no lastResult), nested too deep, "
    "holding NUL, a lone surrogate or a control character other than tab, LF and CR, or every "
    "scan refused (nothing recorded).",
    "429": "Over the integration's rate; Retry-After says when to post again.",
    "500": "The server failed (it logged an instance id).",
    "503": "The database is not reachable or busy; Retry-After.",
}


def _push_responses(
    answer: str, success: dict[str, Any], failure: dict[str, Any]
) -> dict[str, Any]:
    """The responses of a carrier push route: its success answer with 200, its failure answer
    with every error status (a wrong method is about:blank, as on the other routes)."""
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{answer}"}}}
    responses: dict[str, Any] = {
        "200": {
            "description": "Recorded, duplicates included (a scan recorded before changes "
            "nothing); scans refused one by one are logged.",
            "content": {"application/json": {**content["application/json"], "example": success}},
        }
    }
    for status, when in _PUSH_FAILURES.items():
        response: dict[str, Any] = {
            "description": when,
            "content": {"application/json": {**content["application/json"], "example": failure}},
        }
        if status in ("429", "503"):
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before posting again.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
        responses[status] = response
    responses["405"] = _problem_answer([], blank="another method than POST.")
    return dict(sorted(responses.items()))


_SIGNED_BODY: list[dict[str, list[str]]] = [{"bodySignature": []}]


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the ingestion server (default bounds)."""
    import orderdb

    kb = MAX_BODY_BYTES // 1024
    body_rules = (
        f"The body is a JSON object in UTF-8 of at most {MAX_BODY_BYTES} bytes ({kb} kB; "
        "Content-Length or chunked), sent in full within the read timeout "
        f"({DEFAULT_READ_TIMEOUT:g} s unless the server runs with another --read-timeout). "
        "Checks run in this order and the first that fails answers: integration (404), size "
        "(413), time (408), signature (401), rate (429), JSON (400), fields (422), the database "
        "(404, 409, 422, 503)."
    )
    integration_header = {
        "name": "X-OrderDB-Integration",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": _NAME, "default": DEFAULT_WMS_INTEGRATION},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "orderdb ingestion (orderdb ingest serve)",
            "version": orderdb.__version__,
            "summary": "Signed HTTP ingestion of carrier scans and WMS callbacks, and a signed "
            "status query.",
            "description": "Carriers push tracking scans, warehouse management systems push "
            "pick/pack/ship callbacks; both are signed with the integration's secret "
            "(orderdb integrations add). Errors are RFC 9457 problem details "
            "(application/problem+json): each `type` is documented at its own URI "
            "(GET /problems/<slug>). Senders should retry 429, 503 and network errors with "
            "the same body (the same event_id answers duplicate once it got through); other "
            "4xx are not worth retrying. SF's route push and Kuaidi100's callback have routes "
            "of their own that take and answer the carriers' formats.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": {
            "/hooks/carriers/{carrier}": {
                "post": {
                    "operationId": "pushCarrierEvent",
                    "summary": "One carrier scan",
                    "description": body_rules,
                    "security": _SIGNED_BODY,
                    "parameters": [
                        {
                            "name": "carrier",
                            "in": "path",
                            "required": True,
                            "description": "The carrier code: the name of an enabled carrier "
                            "integration.",
                            "schema": {"type": "string", "pattern": _NAME},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/CarrierEvent"}
                            }
                        },
                    },
                    "responses": _hook_responses("CarrierEventAnswer"),
                }
            },
            "/hooks/carriers/{carrier}/batch": {
                "post": {
                    "operationId": "pushCarrierEvents",
                    "summary": "Scans of a carrier that pushes arrays (1 to 1000)",
                    "description": body_rules
                    + " A scan is checked as the single hook checks it; a scan that fails the "
                    "checks or that the database refuses is answered rejected in its place and "
                    "the others are recorded (200).",
                    "security": _SIGNED_BODY,
                    "parameters": [
                        {
                            "name": "carrier",
                            "in": "path",
                            "required": True,
                            "description": "The carrier code: the name of an enabled carrier "
                            "integration.",
                            "schema": {"type": "string", "pattern": _NAME},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/CarrierEventBatch"}
                            }
                        },
                    },
                    "responses": _hook_responses("CarrierEventBatchAnswer"),
                }
            },
            "/hooks/wms": {
                "post": {
                    "operationId": "pushWmsEvent",
                    "summary": "One WMS callback",
                    "description": body_rules,
                    "security": _SIGNED_BODY,
                    "parameters": [
                        {
                            **integration_header,
                            "description": "The WMS integration that sends (default "
                            f"{DEFAULT_WMS_INTEGRATION}); its secret signs the body.",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/WmsEvent"}
                            }
                        },
                    },
                    "responses": _hook_responses("WmsEventAnswer"),
                }
            },
            f"{SF_PUSH_PATH}/{{token}}": {
                "post": {
                    "operationId": "pushSfRoutes",
                    "summary": "SF's route push, in SF's format",
                    "description": "SF's RoutePushService (request method json), answered in "
                    "SF's format. SF signs nothing: the only protection is the token in the path "
                    f"(the secret of the carrier integration {SF_PUSH.integration}, compared in "
                    "constant time before the body is read). Register "
                    f"https://<your host>{SF_PUSH_PATH}/<secret> with SF and use TLS: the URL "
                    "is the credential. Order of checks: integration (404), token (401), content "
                    "type (415), size (413), time (408), rate (429), JSON (400), format and text "
                    "(422). The scans are recorded with one call of "
                    "orderdb.record_tracking_events as carrier SF; one the database refuses is "
                    "logged and the others kept.",
                    "security": [],
                    "parameters": [
                        {
                            "name": "token",
                            "in": "path",
                            "required": True,
                            "description": "The secret of the carrier integration "
                            f"{SF_PUSH.integration} (16 to 255 characters).",
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            SF_PUSH.media_type: {
                                "schema": {"$ref": "#/components/schemas/SfRoutePush"}
                            }
                        },
                    },
                    "responses": _push_responses(
                        "SfPushAnswer",
                        {"return_code": "0000", "return_msg": "成功"},
                        {
                            "return_code": SF_PUSH_FAILURE_CODE,
                            "return_msg": f"missing or wrong token: POST {SF_PUSH_PATH}/<the "
                            f"secret of integration {SF_PUSH.integration}>",
                        },
                    ),
                }
            },
            KUAIDI100_CALLBACK_PATH: {
                "post": {
                    "operationId": "pushKuaidi100Callback",
                    "summary": "Kuaidi100's subscription callback, in Kuaidi100's format",
                    "description": "The form Kuaidi100 posts to a subscription's callbackurl, "
                    "signed with the subscription's salt: the secret of the carrier integration "
                    f"{KUAIDI100_CALLBACK.integration}. Answered in Kuaidi100's format. Order of "
                    "checks: integration (404), content type (415), size (413), time (408), "
                    "form (400), sign (401), rate (429), param JSON (400), format and text "
                    "(422). The scans of lastResult are recorded with one call of "
                    "orderdb.record_tracking_events as carrier KUAIDI100.",
                    "security": [],
                    "requestBody": {
                        "required": True,
                        "content": {
                            KUAIDI100_CALLBACK.media_type: {
                                "schema": {"$ref": "#/components/schemas/Kuaidi100Callback"}
                            }
                        },
                    },
                    "responses": _push_responses(
                        "Kuaidi100Answer",
                        {"result": True, "returnCode": "200", "message": "成功"},
                        {
                            "result": False,
                            "returnCode": KUAIDI100_FAILURE_CODE,
                            "message": "missing or wrong sign: MD5(param + salt) with the "
                            f"secret of integration {KUAIDI100_CALLBACK.integration} as the salt",
                        },
                    ),
                }
            },
            "/status/{tracking_number}": {
                "get": {
                    "operationId": "trackingStatus",
                    "summary": "Shipment and order status of a tracking number",
                    "description": "Signed by any enabled integration (a carrier or a WMS); a "
                    "signed request can be replayed while its timestamp is fresh: use TLS. "
                    "Takes no tokens from the integration's rate.",
                    "security": [{"statusSignature": []}],
                    "parameters": [
                        {
                            "name": "tracking_number",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        },
                        {
                            "name": "carrier",
                            "in": "query",
                            "required": False,
                            "description": "Only this carrier's parcel.",
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        },
                        {
                            **integration_header,
                            "description": "The integration whose secret signs the query "
                            f"(default {DEFAULT_WMS_INTEGRATION}).",
                        },
                        {
                            "name": "X-OrderDB-Timestamp",
                            "in": "header",
                            "required": True,
                            "description": "The current Unix time in seconds, within "
                            f"{STATUS_CLOCK_SKEW} seconds of the server's clock.",
                            "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The status.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/TrackingStatus"}
                                }
                            },
                        },
                        "401": _problem_answer(["bad-signature"]),
                        "404": _problem_answer(
                            ["not-found"], blank="a tracking number holding a slash."
                        ),
                        "422": _problem_answer(["invalid-field"]),
                        "500": _problem_answer(["internal-error"]),
                        "503": _problem_answer(["server-busy", "database-unavailable"]),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "The server and its database connection",
                    "description": "Unsigned; for load balancers.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Serving.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Health"}
                                }
                            },
                        },
                        "503": _problem_answer(["database-unavailable"]),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/problems/{slug}": {
                "get": {
                    "operationId": "problemType",
                    "summary": "The documentation of a problem type",
                    "description": "Where a problem's `type` /problems/<slug> resolves to.",
                    "security": [],
                    "parameters": [
                        {
                            "name": "slug",
                            "in": "path",
                            "required": True,
                            "schema": {
                                "type": "string",
                                "enum": sorted(t.slug for t in types_for("ingest")),
                            },
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The problem type: title, status, meaning.",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        },
                        "404": _problem_answer([], blank="no problem type of that name."),
                    },
                }
            },
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bodySignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-OrderDB-Signature",
                    "description": "sha256=<hex HMAC-SHA256 of the raw request body, keyed with "
                    "the integration's secret> (the bare 64 hex digits are accepted too). The "
                    "integration is the carrier code of the path, or X-OrderDB-Integration "
                    f"(default {DEFAULT_WMS_INTEGRATION}) for the WMS. Sign exactly the bytes "
                    "sent.",
                },
                "statusSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-OrderDB-Signature",
                    "description": 'sha256=<hex HMAC-SHA256 of "<X-OrderDB-Timestamp>.<path '
                    'and query exactly as sent>", keyed with the secret of the integration '
                    "named by X-OrderDB-Integration>, e.g. of "
                    '"1764058500./status/SF1234567890?carrier=SF".',
                },
            },
        },
    }


@functools.cache
def render() -> bytes:
    """The document as served and as kept in docs/ingest-openapi.json (indented, UTF-8)."""
    text = json.dumps(document(), indent=2, ensure_ascii=False) + "\n"
    return text.encode()


def main(argv: Sequence[str] | None = None) -> int:
    """Writes the document to the file named (or to standard output)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        with open(args[0], "wb") as f:
            f.write(render())
    else:
        sys.stdout.buffer.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
