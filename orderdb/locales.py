"""The languages customers read: which one a request gets, the wording of the tracking page and of
``orderdb track`` around the order, dates in the customer's time zone.

Every text of the tracking page (and of ``orderdb track``) comes from one of two places:

* the SQL document (``orderdb.order_timeline_by_no(..., p_locale)``): timeline descriptions,
  ``status_text`` and ``labels`` (the headings of the order's facts, from
  ``orderdb.customer_texts`` kind ``page``);
* :data:`CHROME` below: the few strings around the order (the page's navigation, lookup form,
  "not found" page and live-update notes; the terminal's column headings), one table per locale.

A language is offered when :data:`CHROME` has it; its texts in the database come from
``orderdb.customer_texts`` (docs/web.md "Languages": adding one is an INSERT there plus a table
here). A key missing from a locale's table falls back to English.

Choosing: ``?lang=`` wins (when offered), else the ``Accept-Language`` header by its q-values,
else English. ``zh``, ``zh-Hans`` or ``zh-SG`` choose ``zh-CN``; ``en-GB`` chooses ``en``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_LOCALE = "en"

#: the page's own strings per locale (the order's wording comes from the SQL document)
CHROME: dict[str, dict[str, str]] = {
    "en": {
        "language_name": "English",
        "language": "Language",
        "skip": "Skip to content",
        "nav": "Main",
        "nav_track": "Track an order",
        "nav_ops": "Operations board",
        "lookup_title": "Track an order",
        "order_no": "Order number",
        "customer_no": "Customer number",
        "track_button": "Track",
        "operators": "Operators: see the",
        "ops_link": "operations board",
        "not_found_title": "Order not found",
        "not_found_text": "We could not find an order with this number for this customer. "
        "Check the order number and the customer number in your confirmation email.",
        "look_up_another": "Look up another order",
        "not_known": "Not known yet",
        "not_shipped": "Not shipped yet.",
        "newest_first": "(newest first)",
        "live_note": "Updates appear here as they happen.",
        "updated": "Updated:",
        "as_json": "Data as JSON:",
        "col_time": "Time",
        "col_event": "Event",
        "col_location": "Location",
        "col_shipped": "Shipped",
        "col_delivered": "Delivered",
    },
    "zh-CN": {
        "language_name": "中文",
        "language": "语言",
        "skip": "跳到正文",
        "nav": "主导航",
        "nav_track": "查询订单",
        "nav_ops": "运营看板",
        "lookup_title": "查询订单",
        "order_no": "订单号",
        "customer_no": "客户编号",
        "track_button": "查询",
        "operators": "运营人员请查看",
        "ops_link": "运营看板",
        "not_found_title": "未找到订单",
        "not_found_text": "未找到该客户的此订单号。请核对确认邮件中的订单号和客户编号。",
        "look_up_another": "查询其他订单",
        "not_known": "暂无信息",
        "not_shipped": "尚未发货。",
        "newest_first": "（最新在前）",  # noqa: RUF001 (Chinese punctuation)
        "live_note": "物流更新将实时显示在此处。",
        "updated": "已更新：",  # noqa: RUF001 (Chinese punctuation)
        "as_json": "JSON 数据：",  # noqa: RUF001 (Chinese punctuation)
        "col_time": "时间",
        "col_event": "物流动态",
        "col_location": "地点",
        "col_shipped": "发货时间",
        "col_delivered": "签收时间",
    },
}

#: the time zone of each locale when the order names none (the SQL document's "time_zone" wins)
DEFAULT_TIME_ZONE = {"en": "UTC", "zh-CN": "Asia/Shanghai"}


def offered() -> list[str]:
    """The locales a page can be shown in (English first)."""
    return list(CHROME)


def match(tag: str) -> str | None:
    """The offered locale for a language tag: exact (any case), else the first one with the same
    primary language (``zh-Hans`` -> ``zh-CN``, ``en-GB`` -> ``en``); None if none."""
    tag = tag.strip().replace("_", "-")
    if not tag or tag == "*" or len(tag) > 35:
        return None
    lowered = tag.lower()
    for locale in CHROME:
        if locale.lower() == lowered:
            return locale
    primary = lowered.split("-", 1)[0]
    for locale in CHROME:
        if locale.lower().split("-", 1)[0] == primary:
            return locale
    return None


def _accepted(header: str) -> list[str]:
    """The tags of an ``Accept-Language`` header, best first (q-values; equal q: header order;
    q=0 means "not this one")."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:50]):
        tag, *params = (p.strip() for p in part.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if tag and 0.0 < weight <= 1.0:
            ranked.append((-weight, position, tag))
    return [tag for _w, _p, tag in sorted(ranked)]


def negotiate(lang: str | None, accept_language: str | None) -> str:
    """The page's locale: ``?lang=`` when offered, else the best offered language of the
    ``Accept-Language`` header, else :data:`DEFAULT_LOCALE`."""
    if lang:
        chosen = match(lang)
        if chosen is not None:
            return chosen
    for tag in _accepted(accept_language or ""):
        chosen = match(tag)
        if chosen is not None:
            return chosen
    return DEFAULT_LOCALE


def texts(locale: str, doc: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Every string of a page in ``locale``: the page's own (English for a missing key) and the
    document's ``labels`` (the SQL's wording of the order's facts)."""
    out = {**CHROME[DEFAULT_LOCALE], **CHROME.get(locale, {})}
    labels = (doc or {}).get("labels")
    if isinstance(labels, Mapping):
        out.update({str(k): str(v) for k, v in labels.items() if v is not None})
    return out


def parse_time(value: Any) -> datetime | None:
    """A timestamp from a JSON document (ISO 8601 text) or a row (datetime); naive is UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def zone(name: str | None, locale: str = DEFAULT_LOCALE) -> ZoneInfo:
    """The zone named by the document (``time_zone``), else the locale's default, else UTC."""
    for candidate in (name, DEFAULT_TIME_ZONE.get(locale), "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def fmt_local_time(value: Any, time_zone: str | None, locale: str = DEFAULT_LOCALE) -> str:
    """A time in the customer's zone and language: ``06 Dec 2026, 16:05`` (en),
    ``2026年12月7日 00:05`` (zh). The page states the zone once (``labels.time_zone``)."""
    parsed = parse_time(value)
    if parsed is None:
        return "" if value is None else str(value)
    local = parsed.astimezone(zone(time_zone, locale))
    if locale.lower().startswith("zh"):
        return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"
    return local.strftime("%d %b %Y, %H:%M")


__all__ = [
    "CHROME",
    "DEFAULT_LOCALE",
    "fmt_local_time",
    "match",
    "negotiate",
    "offered",
    "parse_time",
    "texts",
    "zone",
]
