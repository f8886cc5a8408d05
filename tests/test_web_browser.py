"""The web pages in a real browser: headless Debian Chromium driven by selenium.

The tracking page shows the right events in order and takes a new carrier event without a reload;
another customer's order looks exactly like an unknown one; the board shows lanes, SLA colours,
KPI tiles, breaches and low stock and filters; every page has labelled inputs, a language, alt
texts, readable contrast, and no horizontal scrolling at phone width (390 px); axe-core finds no
violation on any page; the board's auto-refresh pauses (WCAG 2.2.2) and keeps focus and scroll,
its filters submit on their button only, focus rings contrast >= 3:1, reduced motion stops
animations. Screenshots of each page are written to artifacts/screenshots/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from axe_selenium_python import Axe
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from orderdb.web import WebServer
from tests.test_web_support import (
    COURIER_CUSTOMER,
    COURIER_PHONE,
    DESKTOP,
    PHONE,
    RECIPIENT_PHONE,
    CourierOrder,
    Shop,
    chromium,
    record_carrier_event,
    screenshot,
    seed_courier_order,
    seed_shop,
    set_viewport,
    timeline,
)

UNKNOWN = "ORD2099010199999999"


@pytest.fixture(scope="module")
def shop(db_dsn: str) -> Shop:
    return seed_shop(db_dsn)


@pytest.fixture(scope="module")
def web(db_dsn: str, shop: Shop) -> Iterator[str]:
    with WebServer(db_dsn, port=0, poll_interval=0.25, board_ttl=0.0) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


@pytest.fixture
def desktop(browser: webdriver.Chrome) -> webdriver.Chrome:
    set_viewport(browser, *DESKTOP, mobile=False)
    return browser


def _texts(driver: webdriver.Chrome, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def test_the_tracking_page_shows_the_timeline_in_order(
    desktop: webdriver.Chrome, web: str, shop: Shop, conn: psycopg.Connection[Any]
) -> None:
    desktop.get(f"{web}/track/{shop.tracked_no}?customer=7")
    assert desktop.title == f"Order {shop.tracked_no} · orderdb"
    status = desktop.find_element(By.CSS_SELECTOR, "[data-testid=status]").text
    assert status == timeline(conn, shop.tracked_no, 7)["status_text"] == "On its way"
    location = desktop.find_element(By.CSS_SELECTOR, "[data-testid=current-location]").text
    assert location == "Guangzhou sorting centre"
    shipments = _texts(desktop, "[data-testid=shipments] li")
    assert len(shipments) == 1
    assert shipments[0].startswith(f"SF {shop.tracking_number}")
    assert desktop.find_element(By.CSS_SELECTOR, "[data-testid=estimated-delivery]").text

    # newest first: the reverse of the SQL timeline (oldest first), every event once
    shown = _texts(desktop, "[data-testid=timeline] li .what")
    assert shown == [
        "Arrived at the sorting centre",
        "Picked up by the courier",
        f"Handed to the carrier (SF {shop.tracking_number})",
        "Parcel packed",
        "Items picked",
        "Sent to the warehouse",
        "Order confirmed",
        "Order placed",
    ]
    doc = timeline(conn, shop.tracked_no, 7)
    assert shown == [e["description"] for e in reversed(doc["timeline"])]
    places = _texts(desktop, "[data-testid=timeline] li:nth-child(-n+2) .where")
    assert places == ["Guangzhou sorting centre", "Shenzhen Bao'an hub"]
    times = [
        e.get_attribute("datetime")
        for e in desktop.find_elements(By.CSS_SELECTOR, "[data-testid=timeline] time")
    ]
    assert all(times) and len(times) == len(shown)
    screenshot(desktop, "track-desktop")


def test_the_lookup_form_leads_to_the_tracking_page(
    desktop: webdriver.Chrome, web: str, shop: Shop
) -> None:
    desktop.get(web + "/")
    desktop.find_element(By.ID, "order_no").send_keys(shop.tracked_no)
    desktop.find_element(By.ID, "customer").send_keys("7")
    desktop.find_element(By.CSS_SELECTOR, "form.lookup button").click()
    WebDriverWait(desktop, 10).until(ec.title_is(f"Order {shop.tracked_no} · orderdb"))
    assert desktop.current_url == f"{web}/track/{shop.tracked_no}?customer=7"


def test_a_new_carrier_event_appears_without_a_reload(
    desktop: webdriver.Chrome, web: str, shop: Shop, conn: psycopg.Connection[Any]
) -> None:
    desktop.get(f"{web}/track/{shop.tracked_no}?customer=7")
    WebDriverWait(desktop, 10).until(
        lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("data-live") == "connected"
    )
    desktop.execute_script("window.__sameDocument = 'yes';")
    record_carrier_event(
        conn, shop.tracking_number, "44", "Guangzhou Tianhe", "Out for delivery with the courier", 5
    )
    WebDriverWait(desktop, 10).until(
        ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, "[data-testid=timeline] li:first-child .what"),
            "Out for delivery with the courier",
        )
    )
    assert desktop.execute_script("return window.__sameDocument") == "yes"  # no reload
    location = desktop.find_element(By.CSS_SELECTOR, "[data-testid=current-location]").text
    assert location == "Guangzhou Tianhe"
    assert "Out for delivery" in desktop.find_element(By.ID, "live-status").text
    shown = _texts(desktop, "[data-testid=timeline] li .what")
    assert shown[:2] == ["Out for delivery with the courier", "Arrived at the sorting centre"]
    screenshot(desktop, "track-live-update")


def test_another_customers_order_looks_like_an_unknown_one(
    desktop: webdriver.Chrome, web: str, shop: Shop
) -> None:
    desktop.get(f"{web}/track/{shop.foreign_no}?customer=7")
    foreign = desktop.page_source
    foreign_title = desktop.title
    desktop.get(f"{web}/track/{UNKNOWN}?customer=7")
    assert desktop.page_source == foreign
    assert desktop.title == foreign_title == "Order not found · orderdb"
    assert desktop.find_element(By.TAG_NAME, "h1").text == "Order not found"
    assert shop.foreign_no not in foreign
    screenshot(desktop, "not-found")


def test_the_board_shows_lanes_sla_kpis_breaches_and_low_stock(
    desktop: webdriver.Chrome, web: str, shop: Shop
) -> None:
    desktop.get(f"{web}/ops")
    lanes = {
        e.get_attribute("data-status"): e
        for e in desktop.find_elements(By.CSS_SELECTOR, "[data-testid=lanes] .lane")
    }
    assert {"pending", "delivering"} <= set(lanes)
    states = {
        e.get_attribute("data-order-no"): e.get_attribute("data-sla")
        for e in lanes["pending"].find_elements(By.CSS_SELECTOR, ".card")
    }
    assert states[shop.unpaid_critical_no] == "red"
    assert states[shop.unpaid_warning_no] == "yellow"
    assert states[shop.foreign_no] == "green"
    card = lanes["delivering"].find_element(By.CSS_SELECTOR, ".card")
    assert card.get_attribute("data-order-no") == shop.tracked_no
    segments = card.find_elements(By.CSS_SELECTOR, ".gantt .seg")
    assert len(segments) == 7  # pending .. delivering
    bar = card.find_element(By.CSS_SELECTOR, ".gantt").get_attribute("aria-label") or ""
    assert bar.startswith("Stages: Pending") and "Delivering" in bar
    tiles = desktop.find_elements(By.CSS_SELECTOR, "[data-testid=kpis] .tile")
    assert len(tiles) >= 5
    assert all(t.get_attribute("data-level") in {"ok", "warning", "critical"} for t in tiles)
    breaches = " ".join(_texts(desktop, "[data-testid=breaches] tbody tr"))
    assert shop.unpaid_critical_no in breaches and shop.unpaid_warning_no in breaches
    assert _texts(desktop, "[data-testid=low-stock] tbody td.mono") == ["LOW-SKU"]
    screenshot(desktop, "ops-desktop")

    # filters: choosing a warehouse and pressing the button reloads the board for it
    Select(desktop.find_element(By.ID, "warehouse")).select_by_value("2")
    desktop.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    WebDriverWait(desktop, 10).until(ec.url_contains("warehouse=2"))
    cards = [
        e.get_attribute("data-order-no") for e in desktop.find_elements(By.CSS_SELECTOR, ".card")
    ]
    assert cards == [shop.other_warehouse_no]
    assert Select(desktop.find_element(By.ID, "warehouse")).first_selected_option.text == (
        "Warehouse 2"
    )
    desktop.get(f"{web}/ops?carrier=SF")
    cards = [
        e.get_attribute("data-order-no") for e in desktop.find_elements(By.CSS_SELECTOR, ".card")
    ]
    assert cards == [shop.tracked_no]


# -- accessibility and phone width ----------------------------------------------------------

PAGES = {
    "index": "/",
    "track": "/track/{tracked}?customer=7",
    "not-found": "/track/" + UNKNOWN + "?customer=7",
    "ops": "/ops",
}

# contrast ratio (WCAG 2) of each visible text element against the first opaque background up
# its ancestors; the worst few are returned
CONTRAST_JS = """
function lum(c) {
  const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
  const p = m[1].split(',').map(s => parseFloat(s));
  if (p.length > 3 && p[3] < 1) return null;
  const ch = p.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92
                                       : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2];
}
function bg(el) {
  for (let e = el; e; e = e.parentElement) {
    const l = lum(getComputedStyle(e).backgroundColor); if (l !== null) return l;
  }
  return 1;
}
const out = [];
for (const el of document.querySelectorAll('body *')) {
  const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
  const r = el.getBoundingClientRect();
  if (!own || r.width === 0 || r.height === 0) continue;
  const fg = lum(getComputedStyle(el).color); if (fg === null) continue;
  const b = bg(el);
  const ratio = (Math.max(fg, b) + 0.05) / (Math.min(fg, b) + 0.05);
  out.push([ratio, el.tagName + '.' + el.className + ': ' + el.textContent.trim().slice(0, 30)]);
}
out.sort((a, b) => a[0] - b[0]);
return out.slice(0, 5);
"""

UNLABELLED_JS = """
return Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(el => el.type !== 'hidden')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.outerHTML);
"""


@pytest.mark.parametrize("page", sorted(PAGES))
def test_pages_are_accessible_and_fit_a_phone(
    browser: webdriver.Chrome, web: str, shop: Shop, page: str
) -> None:
    url = web + PAGES[page].format(tracked=shop.tracked_no)
    for name, (width, height), mobile in (
        ("desktop", DESKTOP, False),
        ("phone", PHONE, True),
    ):
        set_viewport(browser, width, height, mobile)
        browser.get(url)
        html = browser.find_element(By.TAG_NAME, "html")
        assert html.get_attribute("lang") == "en"
        assert browser.title
        assert browser.find_elements(By.TAG_NAME, "h1"), "every page has a heading"
        assert browser.execute_script(UNLABELLED_JS) == []
        for img in browser.find_elements(By.TAG_NAME, "img"):
            assert img.get_attribute("alt") is not None, img.get_attribute("outerHTML")
        for button in browser.find_elements(By.TAG_NAME, "button"):
            assert button.text.strip() or button.get_attribute("aria-label")
        viewport = browser.find_element(By.CSS_SELECTOR, "meta[name=viewport]")
        assert "width=device-width" in (viewport.get_attribute("content") or "")
        worst = browser.execute_script(CONTRAST_JS)
        assert worst and worst[0][0] >= 4.5, worst
        inner, scroll = browser.execute_script(
            "return [window.innerWidth, document.scrollingElement.scrollWidth]"
        )
        if mobile:
            assert inner == PHONE[0]
        assert scroll <= inner, f"{page} scrolls sideways at {width} px: {scroll} > {inner}"
        if name == "phone" or page in ("index",):
            screenshot(browser, f"{page}-{name}")


# -- Chinese -----------------------------------------------------------------------------------


def test_the_tracking_page_in_chinese_shows_the_recipient_and_the_courier_masked(
    browser: webdriver.Chrome, web: str, db_dsn: str
) -> None:
    """zh-CN chosen by the browser's Accept-Language: Chinese texts from the SQL document and the
    page's own table, times in Asia/Shanghai, the recipient and the courier with masked phones;
    no full phone in the page, nor in what the live stream sent."""
    order = seed_courier_order(db_dsn)
    set_viewport(browser, *PHONE, mobile=True)
    browser.execute_cdp_cmd(
        "Network.setUserAgentOverride",
        {"userAgent": browser.execute_script("return navigator.userAgent"),
         "acceptLanguage": "zh-CN,zh;q=0.9,en;q=0.5"},
    )  # fmt: skip
    try:
        browser.get(f"{web}/track/{order.order_no}?customer={COURIER_CUSTOMER}")
        WebDriverWait(browser, 10).until(
            lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("data-live") == "connected"
        )
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
        assert browser.title == f"订单 {order.order_no} · orderdb"
        assert browser.find_element(By.CSS_SELECTOR, "[data-testid=status]").text == "运输中"
        recipient = browser.find_element(By.CSS_SELECTOR, "[data-testid=recipient]").text
        assert "收件人" in recipient and "王小明" in recipient and "深圳市" in recipient
        phone = browser.find_element(By.CSS_SELECTOR, "[data-testid=recipient-phone]").text
        assert phone == "138****5678"
        courier = browser.find_element(By.CSS_SELECTOR, "[data-testid=courier]").text
        assert "配送员" in courier and "李师傅" in courier
        courier_phone = browser.find_element(By.CSS_SELECTOR, "[data-testid=courier-phone]")
        assert courier_phone.text == "139****4321"
        shown = _texts(browser, "[data-testid=timeline] li .what")
        assert shown[0] == "派送中" and shown[-1] == "已下单"
        # times in Beijing time (UTC+8), stated on the page
        assert browser.find_element(By.CSS_SELECTOR, "[data-testid=time-zone]").text == (
            "Asia/Shanghai"
        )
        first = browser.find_element(By.CSS_SELECTOR, "[data-testid=timeline] li time")
        assert "年" in first.text and "月" in first.text
        assert "物流详情" in browser.page_source
        screenshot(browser, "track-zh-CN-phone")
        page = browser.page_source
        streamed = browser.execute_script(
            "return document.getElementById('tracking-root').innerHTML"
        )
        for full in (RECIPIENT_PHONE, COURIER_PHONE):
            assert full not in page and full not in streamed

        # ?lang= wins over Accept-Language
        browser.get(f"{web}/track/{order.order_no}?customer={COURIER_CUSTOMER}&lang=en")
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
        courier = browser.find_element(By.CSS_SELECTOR, "[data-testid=courier]").text
        assert "Your courier" in courier and "139****4321" in courier
    finally:
        browser.execute_cdp_cmd(
            "Network.setUserAgentOverride",
            {"userAgent": browser.execute_script("return navigator.userAgent"),
             "acceptLanguage": "en-GB,en;q=0.9"},
        )  # fmt: skip


# -- axe-core, the board's refresh, focus rings, reduced motion --------------------------------


#: results of a rule that an axe-core version older than the one given gets wrong (a fault of the
#: checker, not of the page): ``dlitem`` in axe-core < 3.2 flags a <dt>/<dd> pair grouped in a <div>
#: inside its <dl>, which HTML allows (axe-core issue 1265, fixed in 3.2.0).
#: axe-selenium-python 2.1.6, its newest release for Python 3.11, ships axe-core 3.1.1; with a
#: newer axe-core the rule runs and must pass like every other.
AXE_CHECKER_BUGS = {"dlitem": (3, 2)}


def axe_violations(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """axe-core's violations on the current page: every rule axe runs by default (WCAG 2 A/AA and
    best practices), none disabled (but :data:`AXE_CHECKER_BUGS` on the axe versions they name).
    The axe.min.js injected is the one axe-selenium-python ships (read from the installed package:
    nothing is downloaded)."""
    axe = Axe(driver)
    axe.inject()
    version = tuple(int(p) for p in str(driver.execute_script("return axe.version")).split(".")[:2])
    results = axe.run()
    violations: list[dict[str, Any]] = [
        v
        for v in results["violations"]
        if not (v["id"] in AXE_CHECKER_BUGS and version < AXE_CHECKER_BUGS[v["id"]])
    ]
    return violations


AXE_PAGES = {
    **PAGES,
    "track-zh-CN": "/track/{tracked}?customer=7&lang=zh-CN",
    # with the recipient and the courier (masked phones)
    "track-courier": "/track/{courier}?customer=" + str(COURIER_CUSTOMER),
    "track-courier-zh-CN": "/track/{courier}?customer=" + str(COURIER_CUSTOMER) + "&lang=zh-CN",
}


@pytest.fixture(scope="module")
def courier_order(db_dsn: str, shop: Shop) -> CourierOrder:
    return seed_courier_order(db_dsn)


@pytest.mark.parametrize("page", sorted(AXE_PAGES))
def test_axe_finds_no_violation(
    browser: webdriver.Chrome, web: str, shop: Shop, courier_order: CourierOrder, page: str
) -> None:
    url = web + AXE_PAGES[page].format(tracked=shop.tracked_no, courier=courier_order.order_no)
    for (width, height), mobile in ((DESKTOP, False), (PHONE, True)):
        set_viewport(browser, width, height, mobile)
        browser.get(url)
        violations = axe_violations(browser)
        assert violations == [], Axe(browser).report(violations)
        if page == "ops":  # the board with its refresh paused (the toggle pressed)
            browser.find_element(By.ID, "refresh-toggle").click()
            violations = axe_violations(browser)
            assert violations == [], Axe(browser).report(violations)


def test_the_logo_is_not_read_twice(desktop: webdriver.Chrome, web: str) -> None:
    """The logo sits beside the text "orderdb" in the same link: it is decorative (alt=""), so
    the link's accessible name is "orderdb" once, not "orderdb orderdb"."""
    desktop.get(web + "/")
    doc = desktop.execute_cdp_cmd("DOM.getDocument", {})
    link = desktop.execute_cdp_cmd(
        "DOM.querySelector", {"nodeId": doc["root"]["nodeId"], "selector": "header a.brand"}
    )
    tree = desktop.execute_cdp_cmd(
        "Accessibility.getPartialAXTree", {"nodeId": link["nodeId"], "fetchRelatives": False}
    )
    names = [n["name"]["value"] for n in tree["nodes"] if n.get("role", {}).get("value") == "link"]
    assert names == ["orderdb"]
    assert desktop.find_element(By.CSS_SELECTOR, "header a.brand img").get_attribute("alt") == ""


@pytest.fixture(scope="module")
def fast_board(db_dsn: str, shop: Shop) -> Iterator[str]:
    """A server whose board page refreshes itself every 0.5 s (reading the database each time)."""
    with WebServer(db_dsn, port=0, poll_interval=0.25, board_ttl=0.0, board_refresh=0.5) as srv:
        yield srv.url


def _refreshes(driver: webdriver.Chrome) -> int:
    root = driver.find_element(By.ID, "board-root")
    return int(root.get_attribute("data-refreshes") or 0)


def _wait_refreshes(driver: webdriver.Chrome, count: int) -> None:
    WebDriverWait(driver, 10).until(lambda d: _refreshes(d) >= count)


def test_the_board_refresh_can_be_paused_and_resumed(
    desktop: webdriver.Chrome, fast_board: str, conn: psycopg.Connection[Any]
) -> None:
    """WCAG 2.2.2 Pause, Stop, Hide: while paused the board's data region stays as it is although
    the data changed; pressing the button again brings the new data."""
    desktop.get(f"{fast_board}/ops")
    toggle = desktop.find_element(By.ID, "refresh-toggle")
    assert toggle.is_displayed()
    assert toggle.text == "Pause auto-refresh"
    assert toggle.get_attribute("aria-pressed") == "false"
    _wait_refreshes(desktop, 1)

    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "true"
    assert "paused" in desktop.find_element(By.ID, "refresh-state").text
    root = desktop.find_element(By.ID, "board-root")
    shown, count = root.get_attribute("innerHTML"), _refreshes(desktop)

    row = conn.execute(
        "SELECT order_no FROM orderdb.create_order(12, 1, %s::jsonb, NULL, 'web-test')",
        (json.dumps([{"sku": "WEB-SKU", "quantity": 1, "unit_price": "9.90"}]),),
    ).fetchone()
    assert row is not None
    new_no = str(row[0])
    assert new_no in httpx.get(f"{fast_board}/ops?fragment=1").text  # the server has it ...
    time.sleep(2.0)  # ... four refresh periods
    assert root.get_attribute("innerHTML") == shown  # ... the paused page does not
    assert _refreshes(desktop) == count
    assert not desktop.find_elements(By.CSS_SELECTOR, f'[data-order-no="{new_no}"]')

    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "false"
    WebDriverWait(desktop, 10).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f'[data-order-no="{new_no}"]')
    )


def test_a_refresh_keeps_focus_and_scroll(desktop: webdriver.Chrome, fast_board: str) -> None:
    """The data region is replaced in place: the focused element (a lane's list, focusable to
    scroll it by keyboard) keeps the focus, the page and the lane keep their scroll positions."""
    set_viewport(desktop, 1366, 500, mobile=False)
    desktop.get(f"{fast_board}/ops")
    # a short lane, so that it scrolls (a style outside the region: it survives the refresh)
    desktop.execute_script(
        "const s = document.createElement('style');"
        "s.textContent = '#lane-orders-pending { max-height: 3rem; overflow-y: auto; }';"
        "document.head.appendChild(s);"
    )
    lane = desktop.find_element(By.ID, "lane-orders-pending")
    desktop.execute_script("arguments[0].focus(); arguments[0].scrollTop = 20;", lane)
    desktop.execute_script("window.scrollTo(0, 150);")
    before = desktop.execute_script(
        "return [window.scrollY, document.getElementById('lane-orders-pending').scrollTop]"
    )
    assert before[0] == 150 and before[1] > 0, "the page and the lane must be able to scroll"
    count = _refreshes(desktop)
    _wait_refreshes(desktop, count + 2)
    after = desktop.execute_script(
        "const a = document.activeElement;"
        "return [a.id, window.scrollY, document.getElementById('lane-orders-pending').scrollTop,"
        " a === document.getElementById('lane-orders-pending')]"
    )
    assert after == ["lane-orders-pending", before[0], before[1], True]


def test_the_filters_submit_on_their_button_only(desktop: webdriver.Chrome, web: str) -> None:
    desktop.get(f"{web}/ops")
    desktop.execute_script("window.__sameDocument = 'yes';")
    Select(desktop.find_element(By.ID, "warehouse")).select_by_value("2")
    Select(desktop.find_element(By.ID, "carrier")).select_by_value("SF")
    time.sleep(1.0)
    assert desktop.current_url == f"{web}/ops"
    assert desktop.execute_script("return window.__sameDocument") == "yes"
    desktop.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    WebDriverWait(desktop, 10).until(ec.url_contains("warehouse=2"))
    assert "carrier=SF" in desktop.current_url


def _rgb(css: str) -> tuple[float, float, float, float]:
    inner = css[css.index("(") + 1 : css.index(")")]
    parts = [float(p) for p in inner.replace("/", ",").replace(" ", ",").split(",") if p]
    return (parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else 1.0)


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two opaque CSS rgb() colours."""

    def lum(css: str) -> float:
        ch = [v / 255 for v in _rgb(css)[:3]]
        lin = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in ch]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


# the focused element's outline, and the opaque colours drawn just beyond it (left, right, above,
# below: the topmost element at each point, and its first opaque background up its ancestors)
FOCUS_RING_JS = """
const el = document.activeElement;
if (!el || el === document.body) return null;
const cs = getComputedStyle(el);
const width = parseFloat(cs.outlineWidth) || 0, offset = parseFloat(cs.outlineOffset) || 0;
// just outside the ring (inside the element when the ring is drawn inside it)
const r = el.getBoundingClientRect(), d = offset + width + 1;
const pts = [[r.left - d, r.top + r.height / 2], [r.right + d, r.top + r.height / 2],
             [r.left + r.width / 2, r.top - d], [r.left + r.width / 2, r.bottom + d]];
const around = [];
for (const [x, y] of pts) {
  if (x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) continue;
  let e = document.elementFromPoint(x, y);
  for (; e; e = e.parentElement) {
    const c = getComputedStyle(e).backgroundColor;
    if (!/rgba\\(.*,\\s*0\\)$/.test(c) && c !== 'transparent') { around.push(c); break; }
  }
  if (!e) around.push('rgb(255, 255, 255)');
}
return {what: el.outerHTML.slice(0, 90), style: cs.outlineStyle, width: width,
        color: cs.outlineColor, around: around};
"""


@pytest.mark.parametrize("page", ["index", "ops", "track"])
def test_focus_rings_contrast_at_least_3_to_1(
    desktop: webdriver.Chrome, web: str, shop: Shop, page: str
) -> None:
    """Tab through the page: every focused element has a solid outline of >= 2 px whose colour
    contrasts >= 3:1 with every colour next to it (WCAG 2.4.13 / 1.4.11)."""
    desktop.get(web + PAGES[page].format(tracked=shop.tracked_no))
    seen: list[str] = []
    for _ in range(40):
        ActionChains(desktop).send_keys(Keys.TAB).perform()
        ring = desktop.execute_script(FOCUS_RING_JS)
        if ring is None or ring["what"] in seen:
            break
        seen.append(ring["what"])
        assert ring["style"] == "solid" and ring["width"] >= 2, ring
        assert ring["around"], ring
        for colour in ring["around"]:
            assert contrast(ring["color"], colour) >= 3, ring
    assert len(seen) >= 4, seen  # the skip link, the brand, the navigation, the page's controls


def test_reduced_motion_stops_animations(desktop: webdriver.Chrome, web: str, shop: Shop) -> None:
    """With prefers-reduced-motion: reduce, the tracking page's highlight of an update does not
    animate, and nothing on the page has an animation or a transition."""
    url = f"{web}/track/{shop.tracked_no}?customer=7"
    flash = (
        "const t = document.getElementById('tracking'); t.classList.add('flash');"
        "return getComputedStyle(t).animationName;"
    )
    moving = (
        "return Array.from(document.querySelectorAll('*')).filter(e => {"
        " const s = getComputedStyle(e);"
        " return s.animationName !== 'none' || s.transitionDuration.split(',')"
        "   .some(v => parseFloat(v) > 0); }).map(e => e.tagName + '#' + e.id);"
    )
    desktop.get(url)
    assert desktop.execute_script(flash) == "flash"  # the highlight animates by default
    features = [{"name": "prefers-reduced-motion", "value": "reduce"}]
    desktop.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": features})
    try:
        desktop.get(url)
        assert desktop.execute_script(
            "return matchMedia('(prefers-reduced-motion: reduce)').matches"
        )
        assert desktop.execute_script(flash) == "none"
        assert desktop.execute_script(moving) == []
    finally:
        desktop.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
