"""Kuaidi100 (快递100), the tracking aggregator for SF, YTO, ZTO, JD and most Chinese carriers:
carrier code ``KUAIDI100``.

What it speaks (docs/carriers.md has the sources and what could not be verified):

* real-time query: ``POST https://poll.kuaidi100.com/poll/query.do``, a form with ``customer``,
  ``param`` (JSON ``{"com", "num", "resultv2", ...}``) and ``sign`` =
  ``upper(hex(MD5(param + key + customer)))`` over the exact ``param`` text sent
  (:meth:`Kuaidi100.query_tracking`). The answer lists the scans in ``data`` (``time``,
  ``context``, ``areaName``, ``status``, ``statusCode``); a refusal is
  ``{"result": false, "returnCode", "message"}``;
* subscription: ``POST https://poll.kuaidi100.com/poll``, a form with ``schema=json`` and
  ``param`` (JSON ``{"company", "number", "key", "parameters": {"callbackurl", "salt",
  "resultv2", "phone"}}``), no sign (:meth:`Kuaidi100.subscribe`);
* its callback: a form POST to the callback URL with ``param`` (JSON ``{"status", "message",
  "lastResult": {"nu", "com", "state", "data": [...]}}``) and, when a salt was given, ``sign`` =
  ``upper(hex(MD5(param + salt)))`` (:func:`parse_callback`); Kuaidi100 expects
  :data:`CALLBACK_ANSWER` back;
* which company a number belongs to: the ``company`` of the config, else Kuaidi100's number
  recognition ``autonumber/auto?num=&key=`` (the first ``comCode`` it lists).

Each scan's status is Kuaidi100's detailed status code (``statusCode``, asked for with
``resultv2=1``: 0 in transit, 1 collected, 101..103, 1001..1003, 2 problem, 201..210, 3 signed,
301..304, 4 returned and signed, 401, 5 out for delivery, 501, 6 returning, 7 transferred, 8 and
10..13 customs, 14 refused), mapped by ``orderdb.carrier_status_map`` under carrier
``KUAIDI100`` (migrations/0004_fulfilment.sql and 0016_carrier_kuaidi100.sql). A scan without a
``statusCode`` takes the code of its status name (在途 -> 0, ...).

Errors: no answer, a timeout, HTTP 5xx or 429, return codes 501 (server error) and 502 (server
busy) of the query, 500 of the subscription raise :class:`CarrierUnavailable`; 400 (incomplete
data or account not authorised), 408 (wrong phone digits), 503 (bad signature: a wrong key or
customer), 601 (key expired / no balance), 600, 700, 701 and 702 of the subscription raise
:class:`CarrierRejected`. Query code 500 (查询无结果: no scan yet) is no error: no events.

Configuration (the ``KUAIDI100`` section of the ``poll-carriers --config`` file)::

    customer        required: the customer id (公司编号) that signs queries
    key             required: the authorisation key (授权key)
    salt            the secret that signs callbacks (required to check them)
    callback_url    where Kuaidi100 posts a subscription's updates (required to subscribe)
    company         Kuaidi100 company code of every number (shunfeng, yuantong, zhongtong, jd,
                    ...); without it each number's company is looked up (autonumber)
    phone           phone (or its last 4 digits) of the parcels: SF and ZTO numbers need it
    query_url, subscribe_url, autonumber_url   the service URLs (defaults: Kuaidi100's)
    timeout         seconds per call, default 10
    timezone        zone of Kuaidi100's times, default "Asia/Shanghai"

Kuaidi100 books no waybills: ``create_waybill`` and ``cancel`` raise CarrierRejected.
Needs httpx (``pip install 'orderdb[ops]'``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orderdb.integrations.carriers import (
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
    raise ImportError(
        "the KUAIDI100 carrier plugin needs httpx: pip install 'orderdb[ops]'"
    ) from exc

CODE = "KUAIDI100"
QUERY_URL = "https://poll.kuaidi100.com/poll/query.do"
SUBSCRIBE_URL = "https://poll.kuaidi100.com/poll"
AUTONUMBER_URL = "https://www.kuaidi100.com/autonumber/auto"
#: what Kuaidi100 expects back from a callback it delivered
CALLBACK_ANSWER = {"result": True, "returnCode": "200", "message": "成功"}

#: query return codes worth a retry: server error, server busy
QUERY_TRANSIENT = frozenset({"501", "502"})
QUERY_NO_RESULT = "500"
#: subscription: server error; 501 is a duplicate subscription (the number is watched already)
SUBSCRIBE_TRANSIENT = frozenset({"500"})
SUBSCRIBE_DUPLICATE = "501"
#: the state names Kuaidi100 gives without resultv2 (status) and their codes
STATE_NAMES = {
    "在途": "0",
    "揽收": "1",
    "疑难": "2",
    "签收": "3",
    "退签": "4",
    "派件": "5",
    "退回": "6",
    "转投": "7",
    "清关": "8",
    "待清关": "10",
    "清关中": "11",
    "已清关": "12",
    "清关异常": "13",
    "拒签": "14",
}
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")

_CONFIG_KEYS = frozenset(
    {
        "customer",
        "key",
        "salt",
        "callback_url",
        "company",
        "phone",
        "query_url",
        "subscribe_url",
        "autonumber_url",
        "timeout",
        "timezone",
    }
)


class CallbackRejected(ValueError):
    """A callback that is not signed with the salt, or not the documented shape."""


def query_sign(param: str, key: str, customer: str) -> str:
    """The ``sign`` of a real-time query: upper-case hex MD5 of ``param + key + customer``."""
    return _md5_upper(param + key + customer)


def callback_sign(param: str, salt: str) -> str:
    """The ``sign`` of a callback: upper-case hex MD5 of ``param + salt``."""
    return _md5_upper(param + salt)


def _md5_upper(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest().upper()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone: unknown time zone {name!r}") from None


def parse_time(text: str, zone: ZoneInfo) -> datetime:
    """A Kuaidi100 time (``2026-11-25 08:02:00``, local time) as an aware datetime."""
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=zone)
        except ValueError:
            continue
    raise CarrierRejected(f"Kuaidi100 sent a time that is not {TIME_FORMATS[0]!r}: {text!r}")


def parse_result(
    result: Mapping[str, Any], zone: ZoneInfo, tracking_number: str | None = None
) -> list[TrackingEvent]:
    """The scans of a query answer or a callback's ``lastResult`` (``nu``, ``com``, ``state``,
    ``data``), oldest first."""
    number = _text(result.get("nu")) or tracking_number
    if number is None:
        raise CarrierRejected("Kuaidi100 result without a tracking number (nu)")
    rows = result.get("data") or []
    if not isinstance(rows, list):
        raise CarrierRejected("Kuaidi100 result: data is not a list")
    state = _text(result.get("state"))
    company = _text(result.get("com"))
    events = []
    newest = None
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        when = _text(row.get("ftime")) or _text(row.get("time"))
        if when is None:
            raise CarrierRejected(f"Kuaidi100 scan of {number} without a time: {row}")
        at = parse_time(when, zone)
        code = _text(row.get("statusCode")) or STATE_NAMES.get(_text(row.get("status")) or "")
        events.append((at, code, row))
        if newest is None or at >= newest:
            newest = at
    answer = []
    for at, code, row in sorted(events, key=lambda e: e[0]):
        status = code
        if status is None:
            # no code and a name Kuaidi100 does not document: the newest scan takes the
            # parcel's state, the others keep their name (orderdb lists it as unknown)
            status = state if (at == newest and state) else (_text(row.get("status")) or "")
        payload = {k: v for k, v in row.items() if v is not None}
        if company:
            payload["com"] = company
        answer.append(
            TrackingEvent(
                tracking_number=number,
                event_time=at,
                status=status or "unknown",
                location=_text(row.get("areaName")) or _text(row.get("location")),
                description=_text(row.get("context")),
                payload=payload,
            )
        )
    return answer


def parse_callback(
    form: Mapping[str, Any], salt: str | None, *, timezone: str = "Asia/Shanghai"
) -> list[TrackingEvent]:
    """The scans of one Kuaidi100 callback (its form fields ``param`` and ``sign``). With a salt
    the sign must be ``upper(hex(MD5(param + salt)))`` (compared in constant time, either
    case). Raises :class:`CallbackRejected`. Answer Kuaidi100 with :data:`CALLBACK_ANSWER` once
    the events are recorded (else it retries)."""
    param = form.get("param")
    if isinstance(param, bytes):
        param = param.decode("utf-8")
    if not isinstance(param, str) or not param:
        raise CallbackRejected("Kuaidi100 callback: param is missing")
    if salt:
        sign = form.get("sign")
        if isinstance(sign, bytes):
            sign = sign.decode("ascii", "replace")
        if not isinstance(sign, str) or not sign:
            raise CallbackRejected("Kuaidi100 callback: sign is missing (a salt is configured)")
        if not hmac.compare_digest(sign.upper().encode(), callback_sign(param, salt).encode()):
            raise CallbackRejected("Kuaidi100 callback: sign is not MD5(param + salt)")
    try:
        data = json.loads(param)
    except ValueError:
        raise CallbackRejected("Kuaidi100 callback: param is not JSON") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("lastResult"), Mapping):
        raise CallbackRejected("Kuaidi100 callback: param.lastResult is missing")
    try:
        return parse_result(data["lastResult"], _zone(timezone))
    except CarrierRejected as exc:
        raise CallbackRejected(f"Kuaidi100 callback: {exc}") from None


class Kuaidi100:
    """The Kuaidi100 plugin (see the module docstring)."""

    code = CODE

    def __init__(
        self, config: Mapping[str, Any], *, transport: httpx.BaseTransport | None = None
    ) -> None:
        cfg = dict(config)
        unknown = sorted(set(cfg) - _CONFIG_KEYS)
        if unknown:
            raise ValueError(
                f"KUAIDI100 config: unknown key(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(_CONFIG_KEYS))}"
            )
        for name in ("customer", "key"):
            if not _text(cfg.get(name)):
                raise ValueError(f"KUAIDI100 config: {name} is required")
        self.customer = str(cfg["customer"]).strip()
        self.key = str(cfg["key"]).strip()
        self.salt = _text(cfg.get("salt"))
        self.callback_url = _text(cfg.get("callback_url"))
        self.company = _text(cfg.get("company"))
        if self.company is not None and self.company != self.company.lower():
            raise ValueError("KUAIDI100 config: company codes are lower case (e.g. zhongtong)")
        self.phone = _text(cfg.get("phone"))
        self.query_url = _text(cfg.get("query_url")) or QUERY_URL
        self.subscribe_url = _text(cfg.get("subscribe_url")) or SUBSCRIBE_URL
        self.autonumber_url = _text(cfg.get("autonumber_url")) or AUTONUMBER_URL
        self.timeout = float(cfg.get("timeout", 10.0))
        if not 0 < self.timeout <= 300:
            raise ValueError("KUAIDI100 config: timeout must be between 0 and 300 seconds")
        self.zone = _zone(str(cfg.get("timezone", "Asia/Shanghai")))
        self._http = httpx.Client(timeout=self.timeout, transport=transport)
        self._lock = threading.Lock()
        self._companies: dict[str, str] = {}

    def close(self) -> None:
        self._http.close()

    # -- the wire ------------------------------------------------------------------------------

    def _post(self, what: str, url: str, form: Mapping[str, str]) -> Any:
        try:
            response = self._http.post(url, data=dict(form))
        except httpx.TimeoutException as exc:
            raise CarrierUnavailable(
                f"Kuaidi100 {what}: no answer within {self.timeout:g} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise CarrierUnavailable(f"Kuaidi100 {what}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status >= 500 or status == 429:
            raise CarrierUnavailable(f"Kuaidi100 {what}: HTTP {status}")
        if status != 200:
            raise CarrierRejected(f"Kuaidi100 {what}: HTTP {status}", code=str(status))
        try:
            return response.json()
        except ValueError:
            raise CarrierUnavailable(f"Kuaidi100 {what}: the answer is not JSON") from None

    def company_for(self, tracking_number: str) -> str:
        """The Kuaidi100 company code of a number: the configured one, else the first company
        Kuaidi100's number recognition names (remembered)."""
        if self.company:
            return self.company
        with self._lock:
            known = self._companies.get(tracking_number)
        if known:
            return known
        answer = self._post(
            "autonumber", self.autonumber_url, {"key": self.key, "num": tracking_number}
        )
        if isinstance(answer, Mapping):  # a refusal ({"returnCode", "message"})
            raise CarrierRejected(
                f"Kuaidi100 autonumber: {answer.get('returnCode')} {answer.get('message')}",
                code=_text(answer.get("returnCode")),
            )
        for item in answer or []:
            company = _text(item.get("comCode")) if isinstance(item, Mapping) else None
            if company:
                with self._lock:
                    self._companies[tracking_number] = company
                return company
        raise CarrierRejected(
            f"Kuaidi100 does not recognise the company of {tracking_number}: set company in the "
            "KUAIDI100 config"
        )

    # -- the plugin interface ------------------------------------------------------------------

    def query_tracking(self, tracking_number: str) -> Sequence[TrackingEvent]:
        """Every scan Kuaidi100 has for a number (real-time query)."""
        param: dict[str, Any] = {
            "com": self.company_for(tracking_number),
            "num": tracking_number,
            "resultv2": "1",
            "show": "0",
            "order": "desc",
        }
        if self.phone:
            param["phone"] = self.phone
        text = json.dumps(param, ensure_ascii=False, separators=(",", ":"))
        answer = self._post(
            "query",
            self.query_url,
            {
                "customer": self.customer,
                "param": text,
                "sign": query_sign(text, self.key, self.customer),
            },
        )
        if not isinstance(answer, Mapping):
            raise CarrierUnavailable("Kuaidi100 query: the answer is not a JSON object")
        if "data" in answer and str(answer.get("status", "200")) == "200":
            return parse_result(answer, self.zone, tracking_number)
        code = _text(answer.get("returnCode")) or ""
        message = f"Kuaidi100 query {tracking_number}: {code} {answer.get('message') or ''}"
        if code == QUERY_NO_RESULT:
            return []
        if code in QUERY_TRANSIENT:
            raise CarrierUnavailable(message.strip())
        raise CarrierRejected(message.strip(), code=code or None)

    def subscribe(
        self, tracking_number: str, *, company: str | None = None, phone: str | None = None
    ) -> bool:
        """Asks Kuaidi100 to watch a number and post its updates to ``callback_url`` (signed
        with ``salt`` when configured). True when subscribed now, False when Kuaidi100 watches it
        already (501)."""
        if not self.callback_url:
            raise ValueError("KUAIDI100 config: callback_url is required to subscribe")
        parameters: dict[str, Any] = {"callbackurl": self.callback_url, "resultv2": "1"}
        if self.salt:
            parameters["salt"] = self.salt
        if phone or self.phone:
            parameters["phone"] = phone or self.phone
        param = {
            "company": company or self.company_for(tracking_number),
            "number": tracking_number,
            "key": self.key,
            "parameters": parameters,
        }
        text = json.dumps(param, ensure_ascii=False, separators=(",", ":"))
        answer = self._post("subscribe", self.subscribe_url, {"schema": "json", "param": text})
        if not isinstance(answer, Mapping):
            raise CarrierUnavailable("Kuaidi100 subscribe: the answer is not a JSON object")
        code = _text(answer.get("returnCode")) or ""
        if answer.get("result") in (True, "true") and code in ("200", ""):
            return True
        if code == SUBSCRIBE_DUPLICATE:
            return False
        message = f"Kuaidi100 subscribe {tracking_number}: {code} {answer.get('message') or ''}"
        if code in SUBSCRIBE_TRANSIENT:
            raise CarrierUnavailable(message.strip())
        raise CarrierRejected(message.strip(), code=code or None)

    def parse_callback(self, form: Mapping[str, Any]) -> list[TrackingEvent]:
        """:func:`parse_callback` with this plugin's salt and time zone. Without a configured
        salt a callback cannot be authenticated: refused."""
        if not self.salt:
            raise CallbackRejected("KUAIDI100 config: salt is required to accept callbacks")
        return parse_callback(form, self.salt, timezone=self.zone.key)

    def create_waybill(self, request: WaybillRequest) -> Waybill:
        raise CarrierRejected("Kuaidi100 tracks parcels; book the waybill with the carrier itself")

    def cancel(self, tracking_number: str) -> bool:
        raise CarrierRejected("Kuaidi100 tracks parcels; cancel the waybill with the carrier")


def factory(config: Mapping[str, Any]) -> Kuaidi100 | NotConfigured:
    """The entry point (``KUAIDI100 = "orderdb.integrations.carriers.kuaidi100:factory"``):
    the plugin for a config section, :class:`NotConfigured` without one (an empty section). A
    section with mistakes raises ValueError naming the key."""
    if not config:
        return NotConfigured(CODE, "customer, key")
    return Kuaidi100(config)


__all__ = [
    "CALLBACK_ANSWER",
    "CODE",
    "STATE_NAMES",
    "CallbackRejected",
    "Kuaidi100",
    "NotConfigured",
    "callback_sign",
    "factory",
    "parse_callback",
    "parse_result",
    "query_sign",
]
