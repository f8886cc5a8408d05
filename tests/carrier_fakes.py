# ruff: noqa: RUF001 - the carriers' own messages, with their full-width punctuation
"""Local fakes of SF Express's open platform and of Kuaidi100, speaking their documented
protocols over real HTTP (docs/carriers.md names the sources): they check each request's
signature with their own implementation of the signing rule (not the plugins' code), answer in
the documented shapes and refuse with the documented error codes. Tests script them: parcels,
route scans, injected failures (HTTP 500, platform codes, slow answers).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx

# -- a tiny HTTP server ----------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json;charset=UTF-8"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        answer = self.server.fake.handle(self.command, path, query, body)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = _serve
    do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: _Fake) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Fake:
    """A fake carrier API on 127.0.0.1 (``with fake.running(): ...``, ``fake.base_url``)."""

    def __init__(self) -> None:
        self._server: _Server | None = None
        self.lock = threading.Lock()
        self.failures: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.slow_seconds = 3.0

    @contextmanager
    def running(self) -> Iterator[_Fake]:
        self._server = _Server(self)
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(5)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the fake is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(self, *kinds: str) -> None:
        """The next requests fail, one kind each (see each fake's ``_failure``)."""
        with self.lock:
            self.failures.extend(kinds)

    def _take_failure(self) -> str | None:
        with self.lock:
            return self.failures.pop(0) if self.failures else None

    def handle(self, method: str, path: str, query: str, body: bytes) -> Answer:
        raise NotImplementedError


def _json(data: Any, status: int = 200) -> Answer:
    return Answer(status, json.dumps(data, ensure_ascii=False).encode("utf-8"))


def _form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8"), True).items()}


# -- SF Express --------------------------------------------------------------------------------

_JAVA_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-*_")


def java_url_encoder(text: str) -> str:
    """``java.net.URLEncoder.encode(text, "UTF-8")``, byte by byte (the fake's own copy)."""
    out = []
    for byte in text.encode("utf-8"):
        if byte in _JAVA_SAFE:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def sf_digest(msg_data: str, timestamp: str, check_word: str) -> str:
    """SF's documented msgDigest: Base64(MD5(URLEncoder.encode(msgData+timestamp+checkWord)))."""
    encoded = java_url_encoder(msg_data + timestamp + check_word).encode("utf-8")
    return base64.b64encode(hashlib.md5(encoded).digest()).decode()  # noqa: S324 - SF's rule


@dataclass
class SFOrder:
    order_id: str
    waybill: str
    request: dict[str, Any]
    cancelled: bool = False


class FakeSF(_Fake):
    """SF's unified access platform (``POST /std/service``)."""

    PLATFORM_ERRORS: ClassVar[dict[str, str]] = {
        "A1001": "必传参数不可为空",
        "A1004": "无对应服务权限",
        "A1005": "流量受控",
        "A1006": "数字签名无效",
        "A1009": "目标服务异常或不可达",
        "A1099": "系统异常",
    }

    def __init__(
        self,
        partner_id: str = "ODBTEST01",
        check_word: str = "fjcg5PGKaNpPSHFAZ4QsCOkV71R3zVci",
        monthly_card: str = "7551234567",
    ) -> None:
        super().__init__()
        self.partner_id = partner_id
        self.check_word = check_word
        self.monthly_cards = {monthly_card}
        self.orders: dict[str, SFOrder] = {}
        self.routes: dict[str, list[dict[str, Any]]] = {}
        self._numbers = itertools.count(4400000000001)
        self._route_ids = itertools.count(1580000000001)

    @property
    def url(self) -> str:
        return self.base_url + "/std/service"

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The plugin's config section pointing at this fake."""
        return {
            "partner_id": self.partner_id,
            "check_word": self.check_word,
            "monthly_card": next(iter(self.monthly_cards)),
            "url": self.url,
            "timeout": 2,
            **overrides,
        }

    def add_route(
        self, waybill: str, op_code: str, accept_time: str, address: str, remark: str
    ) -> dict[str, Any]:
        route = {
            "id": str(next(self._route_ids)),
            "acceptTime": accept_time,
            "acceptAddress": address,
            "remark": remark,
            "opCode": op_code,
        }
        with self.lock:
            self.routes.setdefault(waybill, []).append(route)
        return route

    def route_push_body(self, waybill: str) -> bytes:
        """A route push as SF posts it (``{"Body": {"WaybillRoute": [...]}}``)."""
        with self.lock:
            routes = list(self.routes.get(waybill, []))
            order = next((o for o in self.orders.values() if o.waybill == waybill), None)
        items = [
            {
                "mailno": waybill,
                "orderid": order.order_id if order else "",
                "reasonName": "",
                "reasonCode": "",
                **route,
            }
            for route in routes
        ]
        return json.dumps({"Body": {"WaybillRoute": items}}, ensure_ascii=False).encode()

    # -- the protocol -------------------------------------------------------------------------

    def _platform(self, code: str, data: Any = None) -> Answer:
        return _json(
            {
                "apiResultCode": code,
                "apiErrorMsg": "" if code == "A1000" else self.PLATFORM_ERRORS.get(code, code),
                "apiResponseID": uuid.uuid4().hex.upper(),
                "apiResultData": data,
            }
        )

    def _ok(self, msg_data: Any) -> Answer:
        result = {"success": True, "errorCode": "S0000", "errorMsg": None, "msgData": msg_data}
        return self._platform("A1000", json.dumps(result, ensure_ascii=False))

    def _business_error(self, code: str, message: str) -> Answer:
        result = {"success": False, "errorCode": code, "errorMsg": message, "msgData": None}
        return self._platform("A1000", json.dumps(result, ensure_ascii=False))

    def handle(self, method: str, path: str, query: str, body: bytes) -> Answer:
        failure = self._take_failure()
        if failure == "slow":
            time.sleep(self.slow_seconds)
        elif failure == "http500":
            return Answer(500, b"<html><body>500 Internal Server Error</body></html>", "text/html")
        elif failure == "http503":
            return Answer(503, b"<html><body>503 Service Unavailable</body></html>", "text/html")
        elif failure == "not-json":
            return Answer(200, b"<html>gateway</html>", "text/html")
        elif failure and failure.startswith("A1"):
            return self._platform(failure)
        elif failure and failure.startswith("busy:"):
            return self._business_error(failure.split(":", 1)[1], "系统繁忙，请稍后再试")
        if method != "POST" or path != "/std/service":
            return Answer(404, b"not found", "text/plain")
        form = _form(body)
        with self.lock:
            self.requests.append(form)
        required = ("partnerID", "requestID", "serviceCode", "timestamp", "msgData", "msgDigest")
        if any(not form.get(name) for name in required):
            return self._platform("A1001")
        if form["partnerID"] != self.partner_id:
            return self._platform("A1004")
        expected = sf_digest(form["msgData"], form["timestamp"], self.check_word)
        if form["msgDigest"] != expected:
            return self._platform("A1006")
        try:
            msg = json.loads(form["msgData"])
        except ValueError:
            return self._platform("A1001")
        service = form["serviceCode"]
        handler = {
            "EXP_RECE_CREATE_ORDER": self._create_order,
            "EXP_RECE_SEARCH_ORDER_RESP": self._search_order,
            "EXP_RECE_UPDATE_ORDER": self._update_order,
            "EXP_RECE_SEARCH_ROUTES": self._search_routes,
        }.get(service)
        if handler is None:
            return self._platform("A1004")
        with self.lock:
            return handler(msg)

    def _create_order(self, msg: dict[str, Any]) -> Answer:
        order_id = str(msg.get("orderId") or "")
        card = str(msg.get("monthlyCard") or "")
        if not (card.isdigit() and len(card) == 10):
            return self._business_error("6126", "月结卡号不合法")
        if card not in self.monthly_cards:
            return self._business_error("8119", "月结卡号不存在或已失效")
        contacts = {c.get("contactType"): c for c in msg.get("contactInfoList") or []}
        for kind, codes in ((1, ("1010", "1011", "1012")), (2, ("1014", "1015", "1016"))):
            contact = contacts.get(kind) or {}
            if not contact.get("address"):
                return self._business_error(codes[0], "地址不能为空")
            if not contact.get("contact"):
                return self._business_error(codes[1], "联系人不能为空")
            if not (contact.get("mobile") or contact.get("tel")):
                return self._business_error(codes[2], "电话不能为空")
        cargo = msg.get("cargoDetails") or [{}]
        if not cargo[0].get("name"):
            return self._business_error("1023", "拖寄物品名不能为空")
        if order_id in self.orders:
            return self._business_error("8016", "重复下单")
        waybill = f"SF{next(self._numbers)}"
        self.orders[order_id] = SFOrder(order_id, waybill, msg)
        return self._ok(
            {
                "orderId": order_id,
                "originCode": "755",
                "destCode": "010",
                "filterResult": 2,
                "remark": "",
                "waybillNoInfoList": [{"waybillType": 1, "waybillNo": waybill}],
            }
        )

    def _search_order(self, msg: dict[str, Any]) -> Answer:
        order = self.orders.get(str(msg.get("orderId") or ""))
        if order is None:
            return self._business_error("8018", "未获取到订单信息")
        return self._ok(
            {
                "orderId": order.order_id,
                "waybillNoInfoList": [{"waybillType": 1, "waybillNo": order.waybill}],
            }
        )

    def _update_order(self, msg: dict[str, Any]) -> Answer:
        order = self.orders.get(str(msg.get("orderId") or ""))
        if order is None:
            return self._business_error("6150", "找不到该订单")
        given = [w.get("waybillNo") for w in msg.get("waybillNoInfoList") or []]
        if given and order.waybill not in given:
            return self._business_error("8017", "订单号与运单号不匹配")
        if str(msg.get("dealType", 1)) != "2":
            return self._business_error("8252", "订单已确认")
        if order.cancelled:
            return self._business_error("8037", "订单已消单")
        if self.routes.get(order.waybill):
            return self._business_error("8252", "订单已确认")
        order.cancelled = True
        return self._ok(
            {
                "orderId": order.order_id,
                "waybillNoInfoList": [{"waybillType": 1, "waybillNo": order.waybill}],
                "resStatus": 2,
            }
        )

    def _search_routes(self, msg: dict[str, Any]) -> Answer:
        numbers = msg.get("trackingNumber")
        if isinstance(numbers, str):
            numbers = [n for n in numbers.split(",") if n]
        if not numbers:
            return self._business_error("8013", "未传入查询单号")
        if len(numbers) > 10:
            return self._business_error("8003", "查询单号超过最大限制")
        if str(msg.get("trackingType")) not in ("1", "2"):
            return self._business_error("8013", "未传入查询单号")
        answers = []
        for number in numbers:
            routes = [
                {k: v for k, v in route.items() if k != "id"}
                for route in self.routes.get(number, [])
            ]
            answers.append({"mailNo": number, "routes": routes})
        return self._ok({"routeResps": answers})


# -- Kuaidi100 ---------------------------------------------------------------------------------


def kuaidi100_md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()  # noqa: S324 - their rule


@dataclass
class K100Parcel:
    company: str
    state: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    phone: str | None = None


class FakeKuaidi100(_Fake):
    """Kuaidi100's real-time query (``/poll/query.do``), subscription (``/poll``) and number
    recognition (``/autonumber/auto``); :meth:`callback_form` / :meth:`push` make its callback."""

    PHONE_COMPANIES = frozenset({"shunfeng", "zhongtong"})
    COMPANIES = frozenset({"shunfeng", "zhongtong", "yuantong", "yunda", "shentong", "jd", "ems"})

    def __init__(
        self,
        customer: str = "3564B6CF145FA93724CE18C1FB149036",
        key: str = "odbTestKey01",
        salt: str = "a-salt-of-32-characters-for-test",
    ) -> None:
        super().__init__()
        self.customer = customer
        self.key = key
        self.salt = salt
        self.parcels: dict[str, K100Parcel] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "key": self.key,
            "salt": self.salt,
            "query_url": self.base_url + "/poll/query.do",
            "subscribe_url": self.base_url + "/poll",
            "autonumber_url": self.base_url + "/autonumber/auto",
            "timeout": 2,
            **overrides,
        }

    def add_scan(
        self,
        number: str,
        company: str,
        status_code: str,
        status_name: str,
        when: str,
        context: str,
        area: str | None = None,
        *,
        state: str | None = None,
    ) -> None:
        with self.lock:
            parcel = self.parcels.setdefault(number, K100Parcel(company, status_code))
            parcel.rows.append(
                {
                    "time": when,
                    "ftime": when,
                    "context": context,
                    "location": "",
                    "areaCode": None,
                    "areaName": area,
                    "status": status_name,
                    "statusCode": status_code,
                }
            )
            parcel.state = state or status_code

    def _result(self, number: str) -> dict[str, Any]:
        parcel = self.parcels[number]
        return {
            "message": "ok",
            "nu": number,
            "ischeck": "1" if parcel.state.startswith("3") else "0",
            "condition": "F00",
            "com": parcel.company,
            "status": "200",
            "state": parcel.state,
            "data": list(reversed(parcel.rows)),  # newest first, as order=desc
        }

    @staticmethod
    def _refuse(code: str, message: str) -> Answer:
        return _json({"result": False, "returnCode": code, "message": message})

    def handle(self, method: str, path: str, query: str, body: bytes) -> Answer:
        failure = self._take_failure()
        if failure == "slow":
            time.sleep(self.slow_seconds)
        elif failure == "http500":
            return Answer(500, b"<html>500</html>", "text/html")
        elif failure == "502":
            return self._refuse("502", "服务器繁忙")
        elif failure == "501":
            return self._refuse("501", "服务器错误")
        elif failure == "601":
            return self._refuse("601", "POLL:KEY已过期")
        form = _form(body) if body else {}
        form.update({k: v[0] for k, v in urllib.parse.parse_qs(query).items()})
        with self.lock:
            self.requests.append({"path": path, **form})
            if path == "/poll/query.do":
                return self._query(form)
            if path == "/poll":
                return self._subscribe(form)
            if path == "/autonumber/auto":
                return self._autonumber(form)
        return Answer(404, b"not found", "text/plain")

    def _query(self, form: dict[str, str]) -> Answer:
        param, sign, customer = form.get("param"), form.get("sign"), form.get("customer")
        if not param or not sign or not customer:
            return self._refuse("400", "提交的数据不完整，或者贵公司没授权")
        if customer != self.customer or sign != kuaidi100_md5(param + self.key + self.customer):
            return self._refuse("503", "验证签名失败")
        try:
            data = json.loads(param)
        except ValueError:
            return self._refuse("400", "提交的数据不完整，或者贵公司没授权")
        number, company = str(data.get("num") or ""), str(data.get("com") or "")
        if not number or not company:
            return self._refuse("400", "提交的数据不完整，或者贵公司没授权")
        parcel = self.parcels.get(number)
        if parcel is None or parcel.company != company:
            return self._refuse("500", "查询无结果，请隔段时间再查")
        if company in self.PHONE_COMPANIES and parcel.phone:
            phone = str(data.get("phone") or "")
            if not phone or not parcel.phone.endswith(phone[-4:]):
                return self._refuse("408", "快递公司参数异常：手机号码后四位不正确")
        return _json(self._result(number))

    def _subscribe(self, form: dict[str, str]) -> Answer:
        if form.get("schema") != "json" or not form.get("param"):
            return self._refuse("700", "订阅方的订阅数据存在错误")
        data = json.loads(form["param"])
        if data.get("key") != self.key:
            return self._refuse("600", "您不是合法的订阅者（即授权Key出错）")
        number, company = str(data.get("number") or ""), str(data.get("company") or "")
        parameters = data.get("parameters") or {}
        if not number or company not in self.COMPANIES or not parameters.get("callbackurl"):
            return self._refuse("700", "订阅方的订阅数据存在错误")
        if number in self.subscriptions:
            return self._refuse("501", "重复订阅")
        self.subscriptions[number] = {"company": company, **parameters}
        return _json({"result": True, "returnCode": "200", "message": "提交成功"})

    def _autonumber(self, form: dict[str, str]) -> Answer:
        if form.get("key") != self.key:
            return self._refuse("600", "您不是合法的订阅者（即授权Key出错）")
        parcel = self.parcels.get(form.get("num", ""))
        if parcel is None:
            return _json([])
        return _json([{"comCode": parcel.company, "name": parcel.company, "lengthPre": 15}])

    def callback_form(self, number: str, status: str = "polling") -> dict[str, str]:
        """The form Kuaidi100 posts to a subscription's callbackurl (signed with its salt)."""
        with self.lock:
            subscription = self.subscriptions.get(number, {})
            result = self._result(number)
        result.pop("status", None)
        result["status"] = "polling"
        param = json.dumps(
            {
                "status": status,
                "billstatus": "",
                "message": "",
                "autoCheck": "0",
                "comOld": "",
                "comNew": "",
                "lastResult": result,
            },
            ensure_ascii=False,
        )
        form = {"param": param}
        salt = subscription.get("salt", self.salt)
        if salt:
            form["sign"] = kuaidi100_md5(param + salt)
        return form

    def push(self, number: str) -> httpx.Response:
        """Posts the callback of a subscribed number to its callbackurl."""
        url = self.subscriptions[number]["callbackurl"]
        return httpx.post(url, data=self.callback_form(number), timeout=5)


# -- docs/carriers.md --------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "carriers.md"


def docs_config() -> dict[str, Any]:
    """The configuration example of docs/carriers.md (its first json block)."""
    block = DOCS.read_text().split("```json\n", 1)[1].split("\n```", 1)[0]
    return dict(json.loads(block))
