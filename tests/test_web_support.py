"""What the web tests share: a small shop in the database, the web server, headless Chromium.

Chromium and its driver are Debian's (``apt-get install chromium chromium-driver``, listed in
.ci/system-deps): selenium is pointed at /usr/bin/chromium and /usr/bin/chromedriver, so Selenium
Manager never runs and nothing is downloaded. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.driver_finder import DriverFinder

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
PHONE = (390, 844)
DESKTOP = (1366, 900)

# Selenium Manager would look for (and download) a browser and driver: it must never run
os.environ.setdefault("SE_OFFLINE", "true")
os.environ.setdefault("SE_AVOID_STATS", "true")


def chromium_options(user_data_dir: str) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    options.add_argument("--lang=en-GB")
    return options


@contextlib.contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """Headless Debian Chromium through Debian's chromedriver, with a fresh profile."""
    profile = tempfile.mkdtemp(prefix="orderdb-chromium-")
    driver = webdriver.Chrome(
        service=Service(executable_path=CHROMEDRIVER), options=chromium_options(profile)
    )
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def set_viewport(driver: webdriver.Chrome, width: int, height: int, mobile: bool) -> None:
    """Emulate a screen of this CSS size (a phone: mobile, touch, scale 2)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": width,
            "height": height,
            "deviceScaleFactor": 2 if mobile else 1,
            "mobile": mobile,
        },
    )


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """A full-page PNG in artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    width = driver.execute_script("return window.innerWidth")
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {
                "x": 0,
                "y": 0,
                "width": width,
                "height": math.ceil(size["height"]),
                "scale": 1,
            },
        },
    )
    path = SCREENSHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


# -- the shop ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shop:
    """Orders the web tests look at."""

    tracked_no: str  # customer 7: shipped with SF, two carrier events
    tracked_id: int
    tracking_number: str
    foreign_no: str  # customer 8's order
    unpaid_warning_no: str  # pending past its payment deadline (a warning breach)
    unpaid_critical_no: str  # pending long past it (a critical breach)
    other_warehouse_no: str  # warehouse 2


def _create(
    conn: psycopg.Connection[Any], customer: int, warehouse: int, options: str = "{}"
) -> tuple[int, str]:
    row = conn.execute(
        "SELECT order_id, order_no FROM orderdb.create_order(%s, %s, %s::jsonb, NULL, 'web-test',"
        " %s::jsonb)",
        (
            customer,
            warehouse,
            json.dumps([{"sku": "WEB-SKU", "quantity": 1, "unit_price": "9.90"}]),
            options,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def _version(conn: psycopg.Connection[Any], order_id: int) -> int:
    row = conn.execute("SELECT (orderdb.get_order(%s)->>'version')::int", (order_id,)).fetchone()
    assert row is not None
    return int(row[0])


def seed_shop(dsn: str) -> Shop:
    """A small shop through the SQL API: stock in two warehouses (one sku low), a shipped order
    with carrier events, another customer's order, two overdue unpaid orders."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT * FROM orderdb.receive_stock(1, 'WEB-SKU', 100, 'web-test')")
        conn.execute("SELECT * FROM orderdb.receive_stock(2, 'WEB-SKU', 50, 'web-test')")
        conn.execute("SELECT * FROM orderdb.receive_stock(2, 'LOW-SKU', 3, 'web-test')")

        tracked_id, tracked_no = _create(conn, 7, 1)
        for status in ("confirmed", "dispatched"):
            conn.execute(
                "SELECT * FROM orderdb.transition_order(%s, %s, %s, 'web-test')",
                (tracked_id, status, _version(conn, tracked_id)),
            )
        tracking_number = f"SF{tracked_id:010d}"
        for event_type, payload in (
            ("PICKED", {}),
            ("PACKED", {}),
            ("SHIPPED", {"carrier": "SF", "tracking_number": tracking_number}),
        ):
            conn.execute(
                "SELECT * FROM orderdb.wms_callback(%s, %s, %s, %s::jsonb)",
                (f"web-{tracked_id}-{event_type}", tracked_id, event_type, json.dumps(payload)),
            )
        record_carrier_event(
            conn,
            tracking_number,
            "50",
            "Shenzhen Bao'an hub",
            "Picked up by the courier",
            minutes=1,
        )
        record_carrier_event(
            conn,
            tracking_number,
            "31",
            "Guangzhou sorting centre",
            "Arrived at the sorting centre",
            minutes=2,
        )

        _foreign_id, foreign_no = _create(conn, 8, 1)
        now = datetime.now(UTC)
        _w, unpaid_warning_no = _create(
            conn, 9, 1, json.dumps({"payment_due_by": (now - timedelta(hours=2)).isoformat()})
        )
        _c, unpaid_critical_no = _create(
            conn, 10, 1, json.dumps({"payment_due_by": (now - timedelta(days=3)).isoformat()})
        )
        _o, other_warehouse_no = _create(conn, 11, 2)
        conn.execute("ANALYZE")
    return Shop(
        tracked_no=tracked_no,
        tracked_id=tracked_id,
        tracking_number=tracking_number,
        foreign_no=foreign_no,
        unpaid_warning_no=unpaid_warning_no,
        unpaid_critical_no=unpaid_critical_no,
        other_warehouse_no=other_warehouse_no,
    )


def record_carrier_event(
    conn: psycopg.Connection[Any],
    tracking_number: str,
    code: str,
    location: str,
    description: str,
    minutes: int,
) -> None:
    """An SF carrier event ``minutes`` after now (event times are the carrier's clock)."""
    conn.execute(
        "SELECT * FROM orderdb.record_tracking_event('SF', %s,"
        " now() + make_interval(mins => %s), %s, %s, %s)",
        (tracking_number, minutes, code, location, description),
    )


#: the recipient's and the courier's full phones: no customer page or stream may show them
RECIPIENT_PHONE = "13812345678"
COURIER_PHONE = "13987654321"
COURIER_CUSTOMER = 17


@dataclass(frozen=True)
class CourierOrder:
    """An order of customer 17 in warehouse 3 with a Chinese address, out for delivery with a
    courier named by the carrier (carrier GENERIC: the board's SF filter does not see it)."""

    order_id: int
    order_no: str
    tracking_number: str


def seed_courier_order(dsn: str) -> CourierOrder:
    """Place, ship and send out for delivery an order whose carrier event names the courier."""
    ship_to = {
        "name": "王小明",
        "phone": RECIPIENT_PHONE,
        "country": "CN",
        "province": "广东省",
        "city": "深圳市",
        "district": "南山区",
        "line1": "科技园南区科苑路15号",
        "postcode": "518057",
    }
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT * FROM orderdb.receive_stock(3, 'WEB-SKU', 100, 'web-test')")
        order_id, order_no = _create(conn, COURIER_CUSTOMER, 3, json.dumps({"ship_to": ship_to}))
        conn.execute(
            "SELECT * FROM orderdb.transition_order(%s, 'confirmed', %s, 'web-test')",
            (order_id, _version(conn, order_id)),
        )
        tracking_number = f"GN{order_id:010d}"
        for event_type, payload in (
            ("PACKED", {}),
            ("SHIPPED", {"carrier": "GENERIC", "tracking_number": tracking_number}),
        ):
            conn.execute(
                "SELECT * FROM orderdb.wms_callback(%s, %s, %s, %s::jsonb)",
                (f"web-{order_id}-{event_type}", order_id, event_type, json.dumps(payload)),
            )
        courier = {"courier": {"name": "李师傅", "phone": COURIER_PHONE}}
        conn.execute(
            "SELECT * FROM orderdb.record_tracking_event('GENERIC', %s, now(),"
            " 'out_for_delivery', '深圳市南山区', NULL, NULL, %s::jsonb)",
            (tracking_number, json.dumps(courier)),
        )
    return CourierOrder(order_id, order_no, tracking_number)


def timeline(conn: psycopg.Connection[Any], order_no: str, customer: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT orderdb.order_timeline_by_no(%s, %s)", (order_no, customer)
    ).fetchone()
    assert row is not None
    doc: dict[str, Any] = row[0]
    return doc


def test_chromium_and_its_driver_come_from_debian_and_selenium_manager_never_runs() -> None:
    """The driver path is given, so DriverFinder skips Selenium Manager (no download)."""
    assert Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK), (
        "install Debian's chromium: apt-get install -y chromium chromium-driver (.ci/system-deps)"
    )
    assert Path(CHROMEDRIVER).is_file()
    with tempfile.TemporaryDirectory() as profile:
        options = chromium_options(profile)
        finder = DriverFinder(Service(executable_path=CHROMEDRIVER), options)
        assert finder.get_driver_path() == CHROMEDRIVER
        assert options.binary_location == CHROMIUM
