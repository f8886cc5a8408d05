"""SF Express (顺丰速运) through SF's open platform (丰桥, open.sf-express.com): carrier ``SF``.

What it speaks (docs/carriers.md has the sources and what could not be verified):

* every call is an HTTP POST of a form (``application/x-www-form-urlencoded``, UTF-8) to
  ``/std/service`` with ``partnerID``, ``requestID``, ``serviceCode``, ``timestamp`` (ms),
  ``msgData`` (the JSON of the call) and ``msgDigest``:
  ``Base64(MD5(URLEncoder.encode(msgData + timestamp + checkWord, "UTF-8")))``, Java's
  ``URLEncoder`` (space as ``+``, ``*`` kept, ``~`` encoded: :func:`java_urlencode`);
* the answer is JSON ``{"apiResultCode", "apiErrorMsg", "apiResponseID", "apiResultData"}``;
  ``A1000`` means the platform passed the call on, ``apiResultData`` (a JSON string) says
  whether the business call succeeded: ``{"success", "errorCode", "errorMsg", "msgData"}``;
* ``EXP_RECE_CREATE_ORDER`` books a parcel (:meth:`SFExpress.create_waybill`; an ``orderId``
  SF already has, error 8016, is looked up with ``EXP_RECE_SEARCH_ORDER_RESP`` so a retried
  booking returns the same waybill), ``EXP_RECE_UPDATE_ORDER`` with ``dealType`` 2 cancels it
  (:meth:`SFExpress.cancel`, :meth:`SFExpress.cancel_order`), ``EXP_RECE_SEARCH_ROUTES`` lists
  its route scans (:meth:`SFExpress.query_tracking`); :func:`parse_route_push` reads SF's route
  push (``{"Body": {"WaybillRoute": [...]}}``, answered with :data:`ROUTE_PUSH_ANSWER`).

Errors: no answer, a timeout, HTTP 5xx or 429, ``A1005`` (rate limit), ``A1009`` (SF's service
behind the platform unreachable), ``A1099`` (system exception) and a business error whose
message says the system is busy (系统繁忙) raise :class:`CarrierUnavailable` (try again later);
every other refusal (``A1001`` missing parameter, ``A1003`` IP not allowed, ``A1004`` no
permission, ``A1006`` bad signature: a wrong ``check_word``, business codes such as 8119 unknown
monthly card or 8017 order and waybill do not match) raises :class:`CarrierRejected` with SF's
code.

Configuration (the ``SF`` section of the ``poll-carriers --config`` file; SF's names in
brackets)::

    partner_id       (partnerID)  required: the customer code (顾客编码)
    check_word       (checkWord)  required: the check word (校验码) that signs every call
    monthly_card     (monthlyCard) the monthly account (月结卡号) bookings are charged to
    env              "sandbox" (https://sfapi-sbox.sf-express.com/std/service) or
                     "production" (https://bspgw.sf-express.com/std/service); required unless url
    url              the service URL itself (a proxy, SF's Hong Kong gateway, a test fake)
    timeout          seconds per call, default 10
    language         default "zh-CN"
    express_type_id  SF product (expressTypeId), default 1 (顺丰标快)
    pay_method       payMethod, default 1 (the sender pays)
    check_phone_no   last 4 digits of a phone on the waybills (checkPhoneNo): SF asks for them to
                     show routes of waybills not booked under this partner ID
    timezone         zone of SF's times (acceptTime carries none), default "Asia/Shanghai"
    sender           the default sender address {"name", "phone", "line1", "city",
                     "postal_code", "country", "line2"} when a WaybillRequest has none

Needs httpx (``pip install 'orderdb[ops]'``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orderdb.integrations.carriers import (
    Address,
    CarrierRejected,
    CarrierUnavailable,
    NotConfigured,
    TrackingEvent,
    Waybill,
    WaybillRequest,
)

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("the SF carrier plugin needs httpx: pip install 'orderdb[ops]'") from exc

CODE = "SF"
URLS = {
    "sandbox": "https://sfapi-sbox.sf-express.com/std/service",
    "production": "https://bspgw.sf-express.com/std/service",
}
CREATE_ORDER = "EXP_RECE_CREATE_ORDER"
SEARCH_ORDER = "EXP_RECE_SEARCH_ORDER_RESP"
UPDATE_ORDER = "EXP_RECE_UPDATE_ORDER"
SEARCH_ROUTES = "EXP_RECE_SEARCH_ROUTES"
#: what SF expects back from a route push it delivered
ROUTE_PUSH_ANSWER = {"return_code": "0000", "return_msg": "成功"}

PLATFORM_OK = "A1000"
#: platform codes worth a retry: rate limit, SF's service unreachable, system exception
PLATFORM_TRANSIENT = frozenset({"A1005", "A1009", "A1099"})
DUPLICATE_ORDER = "8016"
ALREADY_CANCELLED = "8037"
#: the order is confirmed (handed over to SF): too late to cancel
ALREADY_CONFIRMED = "8252"
BUSY_WORDS = ("系统繁忙", "繁忙", "busy")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_ROUTE_QUERY = 10  # SF error 8003 beyond ten numbers per query

_CONFIG_KEYS = frozenset(
    {
        "partner_id",
        "check_word",
        "monthly_card",
        "env",
        "url",
        "timeout",
        "language",
        "express_type_id",
        "pay_method",
        "check_phone_no",
        "timezone",
        "sender",
    }
)
_SF_NAMES = {"partnerID": "partner_id", "checkWord": "check_word", "monthlyCard": "monthly_card"}


def java_urlencode(text: str) -> str:
    """``java.net.URLEncoder.encode(text, "UTF-8")``: letters, digits and ``.-*_`` stay, a
    space becomes ``+``, every other byte of the UTF-8 text ``%XX`` (upper-case hex)."""
    return urllib.parse.quote_plus(text, safe="*").replace("~", "%7E")


def msg_digest(msg_data: str, timestamp: str, check_word: str) -> str:
    """SF's ``msgDigest``: Base64 of the MD5 of the URL-encoded ``msgData + timestamp +
    checkWord``."""
    encoded = java_urlencode(msg_data + timestamp + check_word).encode("utf-8")
    return base64.b64encode(hashlib.md5(encoded, usedforsecurity=False).digest()).decode("ascii")


def parse_time(text: str, zone: ZoneInfo) -> datetime:
    """An SF time (``2026-11-25 08:02:00``, the carrier's local time) as an aware datetime."""
    try:
        return datetime.strptime(text.strip(), TIME_FORMAT).replace(tzinfo=zone)
    except ValueError as exc:
        raise CarrierRejected(f"SF sent a time that is not {TIME_FORMAT!r}: {text!r}") from exc


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _route_event(
    tracking_number: str, route: Mapping[str, Any], zone: ZoneInfo, **extra: Any
) -> TrackingEvent:
    op_code = _text(route.get("opCode") or route.get("opcode"))
    accept_time = _text(route.get("acceptTime") or route.get("accept_time"))
    if op_code is None or accept_time is None:
        raise CarrierRejected(
            f"SF route of {tracking_number} without opCode or acceptTime: {route}"
        )
    return TrackingEvent(
        tracking_number=tracking_number,
        event_time=parse_time(accept_time, zone),
        status=op_code,
        location=_text(route.get("acceptAddress") or route.get("accept_address")),
        description=_text(route.get("remark")),
        payload={k: v for k, v in route.items() if v is not None},
        **extra,
    )


def parse_route_push(
    body: bytes | str | Mapping[str, Any], *, timezone: str = "Asia/Shanghai"
) -> list[TrackingEvent]:
    """The scans of one SF route push (``{"Body": {"WaybillRoute": [{"id", "mailno", "orderid",
    "acceptTime", "acceptAddress", "remark", "opCode", ...}]}}``), SF's route ``id`` as the event
    id. Raises ValueError naming what is missing or malformed. Answer SF with
    :data:`ROUTE_PUSH_ANSWER` once the events are recorded."""
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise ValueError(f"SF route push is not JSON: {exc}") from None
    else:
        data = body
    if not isinstance(data, Mapping):
        raise ValueError("SF route push: expected a JSON object")
    envelope = data.get("Body", data.get("body"))
    if not isinstance(envelope, Mapping):
        raise ValueError("SF route push: Body is missing")
    routes = envelope.get("WaybillRoute")
    if isinstance(routes, Mapping):
        routes = [routes]
    if not isinstance(routes, list) or not routes:
        raise ValueError("SF route push: Body.WaybillRoute holds no route")
    zone = _zone(timezone)
    events = []
    for i, route in enumerate(routes):
        if not isinstance(route, Mapping):
            raise ValueError(f"SF route push: WaybillRoute[{i}] is not an object")
        number = _text(route.get("mailno") or route.get("mailNo"))
        if number is None:
            raise ValueError(f"SF route push: WaybillRoute[{i}].mailno is missing")
        try:
            events.append(_route_event(number, route, zone, event_id=_text(route.get("id"))))
        except CarrierRejected as exc:
            raise ValueError(f"SF route push: WaybillRoute[{i}]: {exc}") from None
    return events


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone: unknown time zone {name!r}") from None


def _address(value: Any, field: str) -> Address:
    if isinstance(value, Address):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{field}: expected an address object")
    fields: dict[str, Any] = {k: (str(v) if v is not None else None) for k, v in value.items()}
    try:
        return Address(**fields)
    except TypeError as exc:
        raise ValueError(f"{field}: {exc}") from None


class SFExpress:
    """The SF plugin (see the module docstring)."""

    code = CODE

    def __init__(
        self, config: Mapping[str, Any], *, transport: httpx.BaseTransport | None = None
    ) -> None:
        cfg = dict(config)
        for sf_name, ours in _SF_NAMES.items():
            if sf_name in cfg:
                raise ValueError(f"SF config: write {sf_name} as {ours}")
        unknown = sorted(set(cfg) - _CONFIG_KEYS)
        if unknown:
            raise ValueError(
                f"SF config: unknown key(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(_CONFIG_KEYS))}"
            )
        for name in ("partner_id", "check_word"):
            if not _text(cfg.get(name)):
                raise ValueError(f"SF config: {name} is required")
        self.partner_id = str(cfg["partner_id"]).strip()
        self.check_word = str(cfg["check_word"]).strip()
        self.monthly_card = _text(cfg.get("monthly_card"))
        env = cfg.get("env")
        url = _text(cfg.get("url"))
        if url is None:
            if env not in URLS:
                raise ValueError('SF config: env must be "sandbox" or "production" (or give url)')
            url = URLS[str(env)]
        elif env is not None and env not in URLS:
            raise ValueError('SF config: env must be "sandbox" or "production"')
        self.url = url
        self.timeout = float(cfg.get("timeout", 10.0))
        if not 0 < self.timeout <= 300:
            raise ValueError("SF config: timeout must be between 0 and 300 seconds")
        self.language = str(cfg.get("language", "zh-CN"))
        self.express_type_id = int(cfg.get("express_type_id", 1))
        self.pay_method = int(cfg.get("pay_method", 1))
        self.check_phone_no = _text(cfg.get("check_phone_no"))
        self.zone = _zone(str(cfg.get("timezone", "Asia/Shanghai")))
        self.sender = (
            _address(cfg["sender"], "SF config: sender") if cfg.get("sender") is not None else None
        )
        self._http = httpx.Client(timeout=self.timeout, transport=transport)
        self._lock = threading.Lock()
        #: SF cancels by its customer order id: the ids of the waybills booked here
        self._order_ids: dict[str, str] = {}

    def close(self) -> None:
        self._http.close()

    # -- the wire ------------------------------------------------------------------------------

    def call(self, service_code: str, msg_data: Mapping[str, Any]) -> Any:
        """One signed call; returns the ``msgData`` of a successful answer. Raises
        CarrierUnavailable or CarrierRejected (see the module docstring)."""
        body = json.dumps(msg_data, ensure_ascii=False, separators=(",", ":"))
        timestamp = str(int(time.time() * 1000))
        form = {
            "partnerID": self.partner_id,
            "requestID": uuid.uuid4().hex,
            "serviceCode": service_code,
            "timestamp": timestamp,
            "msgDigest": msg_digest(body, timestamp, self.check_word),
            "msgData": body,
        }
        try:
            response = self._http.post(self.url, data=form)
        except httpx.TimeoutException as exc:
            raise CarrierUnavailable(
                f"SF {service_code}: no answer within {self.timeout:g} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise CarrierUnavailable(f"SF {service_code}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status >= 500 or status == 429:
            raise CarrierUnavailable(f"SF {service_code}: HTTP {status}")
        if status != 200:
            raise CarrierRejected(f"SF {service_code}: HTTP {status}", code=str(status))
        try:
            answer = response.json()
        except ValueError:
            raise CarrierUnavailable(f"SF {service_code}: the answer is not JSON") from None
        if not isinstance(answer, Mapping):
            raise CarrierUnavailable(f"SF {service_code}: the answer is not a JSON object")
        api_code = str(answer.get("apiResultCode") or "")
        if api_code != PLATFORM_OK:
            message = f"SF {service_code}: {api_code} {answer.get('apiErrorMsg') or ''}".strip()
            if api_code in PLATFORM_TRANSIENT:
                raise CarrierUnavailable(message)
            raise CarrierRejected(message, code=api_code or None)
        result = answer.get("apiResultData")
        if isinstance(result, str):
            try:
                result = json.loads(result)
            except ValueError:
                raise CarrierUnavailable(f"SF {service_code}: apiResultData is not JSON") from None
        if not isinstance(result, Mapping):
            raise CarrierUnavailable(f"SF {service_code}: apiResultData is missing")
        if result.get("success") not in (True, "true"):
            code = _text(result.get("errorCode"))
            error = _text(result.get("errorMsg")) or ""
            message = f"SF {service_code}: {code} {error}".strip()
            if any(word in error.lower() for word in BUSY_WORDS):
                raise CarrierUnavailable(message)
            raise CarrierRejected(message, code=code)
        return result.get("msgData")

    # -- the plugin interface ------------------------------------------------------------------

    def _contact(self, kind: int, address: Address, field: str) -> dict[str, Any]:
        for name in ("name", "phone", "line1", "city"):
            if not _text(getattr(address, name)):
                raise ValueError(f"{field}.{name} is required by SF")
        line = " ".join(p for p in (address.line1, address.line2) if p)
        contact = {
            "contactType": kind,
            "contact": address.name,
            "mobile": address.phone,
            "country": address.country,
            "city": address.city,
            "address": line,
        }
        if address.postal_code:
            contact["postCode"] = address.postal_code
        return contact

    def create_waybill(self, request: WaybillRequest) -> Waybill:
        """Books the parcel (``EXP_RECE_CREATE_ORDER``). SF's ``orderId`` is the request's
        ``reference`` (default ``orderdb-<order_id>``): SF refuses an orderId twice (8016), so a
        repeated booking of the same order returns the waybill SF already gave it."""
        sender = request.sender or self.sender
        if sender is None:
            raise ValueError("sender is required (in the request or the SF config)")
        if request.weight_grams <= 0:
            raise ValueError("weight_grams must be positive")
        order_id = request.reference or f"orderdb-{request.order_id}"
        options = dict(request.options)
        msg: dict[str, Any] = {
            "language": self.language,
            "orderId": order_id,
            "expressTypeId": int(options.pop("express_type_id", self.express_type_id)),
            "payMethod": int(options.pop("pay_method", self.pay_method)),
            "parcelQty": 1,
            "totalWeight": round(request.weight_grams / 1000, 3),
            "cargoDetails": [{"name": str(options.pop("cargo_name", "商品")), "count": 1}],
            "contactInfoList": [
                self._contact(1, sender, "sender"),
                self._contact(2, request.recipient, "recipient"),
            ],
        }
        if self.monthly_card:
            msg["monthlyCard"] = self.monthly_card
        msg.update(options)  # any other SF field, as SF spells it
        try:
            data = self.call(CREATE_ORDER, msg)
        except CarrierRejected as exc:
            if exc.code != DUPLICATE_ORDER:
                raise
            data = self.call(
                SEARCH_ORDER, {"language": self.language, "orderId": order_id, "searchType": 1}
            )
        number = self._master_waybill(data, order_id)
        with self._lock:
            self._order_ids[number] = order_id
        return Waybill(
            carrier=CODE,
            tracking_number=number,
            label_url=None,
            raw={"orderId": order_id, **(dict(data) if isinstance(data, Mapping) else {})},
        )

    @staticmethod
    def _master_waybill(data: Any, order_id: str) -> str:
        waybills = data.get("waybillNoInfoList") if isinstance(data, Mapping) else None
        for item in waybills or []:
            if isinstance(item, Mapping) and str(item.get("waybillType", 1)) == "1":
                number = _text(item.get("waybillNo"))
                if number:
                    return number
        raise CarrierRejected(f"SF gave order {order_id} no waybill number: {data}")

    def cancel(self, tracking_number: str) -> bool:
        """Cancels a waybill booked by this plugin instance (SF cancels by the customer order
        id, which it does not give for a waybill number). For a waybill booked elsewhere use
        :meth:`cancel_order` with its orderId."""
        with self._lock:
            order_id = self._order_ids.get(tracking_number)
        if order_id is None:
            raise CarrierRejected(
                f"SF cancels by order id; waybill {tracking_number} was not booked by this "
                "process: call cancel_order(order_id, tracking_number)"
            )
        return self.cancel_order(order_id, tracking_number)

    def cancel_waybill(self, waybill: Waybill) -> bool:
        """Cancels a waybill as its booking answered it (``waybill.raw["orderId"]``, which
        ``create_waybill`` puts there): works whichever plugin instance or process booked it
        (``orderdb wms-dispatch`` uses it for cancel_waybill commands). Without the orderId:
        :meth:`cancel`."""
        order_id = waybill.raw.get("orderId") if isinstance(waybill.raw, Mapping) else None
        if isinstance(order_id, str) and order_id:
            return self.cancel_order(order_id, waybill.tracking_number)
        return self.cancel(waybill.tracking_number)

    def cancel_order(self, order_id: str, tracking_number: str | None = None) -> bool:
        """``EXP_RECE_UPDATE_ORDER`` with ``dealType`` 2: True when SF cancelled the order (or
        had already), False when it is too late (the order is confirmed, 8252)."""
        msg: dict[str, Any] = {"language": self.language, "orderId": order_id, "dealType": 2}
        if tracking_number:
            msg["waybillNoInfoList"] = [{"waybillType": 1, "waybillNo": tracking_number}]
        try:
            data = self.call(UPDATE_ORDER, msg)
        except CarrierRejected as exc:
            if exc.code == ALREADY_CANCELLED:
                return True
            if exc.code == ALREADY_CONFIRMED:
                return False
            raise
        res_status = str(data.get("resStatus", "2")) if isinstance(data, Mapping) else "2"
        if res_status == "1":
            raise CarrierRejected(
                f"SF: order {order_id} and waybill {tracking_number} do not match", code="8017"
            )
        return True

    def query_tracking(self, tracking_number: str) -> Sequence[TrackingEvent]:
        """Every route scan of one waybill (``EXP_RECE_SEARCH_ROUTES`` by waybill number)."""
        return self.query_routes([tracking_number]).get(tracking_number, [])

    def query_routes(self, tracking_numbers: Sequence[str]) -> dict[str, list[TrackingEvent]]:
        """The route scans of up to ten waybills in one call, by waybill number."""
        if not 1 <= len(tracking_numbers) <= MAX_ROUTE_QUERY:
            raise ValueError(f"tracking_numbers: 1 to {MAX_ROUTE_QUERY} per SF route query")
        msg: dict[str, Any] = {
            "language": self.language,
            "trackingType": 1,
            "trackingNumber": list(tracking_numbers),
            "methodType": 1,
        }
        if self.check_phone_no:
            msg["checkPhoneNo"] = self.check_phone_no
        data = self.call(SEARCH_ROUTES, msg)
        found: dict[str, list[TrackingEvent]] = {}
        responses = data.get("routeResps") if isinstance(data, Mapping) else None
        for item in responses or []:
            if not isinstance(item, Mapping):
                continue
            number = _text(item.get("mailNo"))
            if number is None:
                continue
            events = found.setdefault(number, [])
            for route in item.get("routes") or []:
                if isinstance(route, Mapping):
                    events.append(_route_event(number, route, self.zone))
        return found

    def parse_route_push(self, body: bytes | str | Mapping[str, Any]) -> list[TrackingEvent]:
        """:func:`parse_route_push` in this plugin's time zone."""
        return parse_route_push(body, timezone=self.zone.key)


def factory(config: Mapping[str, Any]) -> SFExpress | NotConfigured:
    """The entry point (``SF = "orderdb.integrations.carriers.sf:factory"``): the plugin
    for a config section, :class:`NotConfigured` without one (an empty section). A section
    with mistakes raises ValueError naming the key."""
    if not config:
        return NotConfigured(CODE, "partner_id, check_word, env")
    return SFExpress(config)


__all__ = [
    "CODE",
    "ROUTE_PUSH_ANSWER",
    "URLS",
    "NotConfigured",
    "SFExpress",
    "factory",
    "java_urlencode",
    "msg_digest",
    "parse_route_push",
    "parse_time",
]
