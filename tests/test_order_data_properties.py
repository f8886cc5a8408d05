"""Property-based tests (hypothesis) of order data: ship_to in create_order and the changes of
amend_order. Every bad input raises InvalidInput (22023) naming the key and changes nothing;
every good amendment is visible in get_order and in the order's history."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderdb import Client, errors

WAREHOUSE = 7716050
SKU = "ODP-PROP"
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


@st.composite
def phones(draw: st.DrawFn) -> tuple[str, str]:
    """A phone as a customer may type it, and its stored (normalised) form."""
    kind = draw(st.sampled_from(["mobile", "landline", "e164"]))
    if kind == "mobile":
        number = "1" + draw(st.sampled_from("3456789")) + draw(st.from_regex(r"\A[0-9]{9}\Z"))
        prefix = draw(st.sampled_from(["", "+86", "+86 ", "0086", "0086-"]))
        sep = draw(st.sampled_from(["", " ", "-"]))
        typed = prefix + number[:3] + sep + number[3:7] + sep + number[7:]
        return typed, "+86" + number
    if kind == "landline":
        area = draw(st.sampled_from(["10", "21", "20", "755", "571", "898"]))
        local = draw(st.from_regex(r"\A[2-8][0-9]{6,7}\Z"))
        ext = draw(st.one_of(st.none(), st.from_regex(r"\A[0-9]{1,6}\Z")))
        typed = f"0{area}-{local}" + ("" if ext is None else f" ext {ext}")
        return typed, f"0{area}-{local}" + ("" if ext is None else f"-{ext}")
    cc = draw(st.sampled_from(["1", "44", "49", "81", "852"]))
    rest = draw(st.from_regex(r"\A[0-9]{7,10}\Z"))
    return f"+{cc} {rest}", f"+{cc}{rest}"


texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=60,
)


@st.composite
def ship_tos(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid ship_to and what get_order must show of it (the fields checked)."""
    typed_phone, stored_phone = draw(phones())
    country = draw(st.sampled_from(["CN", "cn", "US", "GB", "DE"]))
    line1 = draw(texts)
    value: dict[str, Any] = {"line1": " " + line1 + " ", "phone": typed_phone, "country": country}
    for key in ("name", "province", "city", "district", "line2"):
        if draw(st.booleans()):
            value[key] = draw(texts)
    if draw(st.booleans()):
        value["postcode"] = (
            draw(st.from_regex(r"\A[0-9]{6}\Z"))
            if country.upper() == "CN"
            else draw(st.from_regex(r"\A[A-Z0-9]{2,8}\Z"))
        )
    if draw(st.booleans()):
        value["lat"] = draw(st.floats(min_value=-90, max_value=90, allow_nan=False))
        value["lon"] = draw(st.floats(min_value=-180, max_value=180, allow_nan=False))
    expected = {
        "line1": unicodedata.normalize("NFC", line1),
        "phone": stored_phone,
        "country": country.upper(),
    }
    return value, expected


# one defect each, and the key the message must name
BAD_SHIP_TO: list[tuple[dict[str, Any], str]] = [
    ({}, "ship_to.line1"),
    ({"line1": ""}, "ship_to.line1"),
    ({"line1": None}, "ship_to.line1"),
    ({"line1": 7}, "ship_to.line1"),
    ({"phone": "12345"}, "ship_to.phone"),
    ({"phone": "138-1234-567a"}, "ship_to.phone"),
    ({"phone": "+0123456789"}, "ship_to.phone"),
    ({"phone": "1" * 41}, "ship_to.phone"),
    ({"country": "XX"}, "ship_to.country"),
    ({"country": "CHN"}, "ship_to.country"),
    ({"postcode": "1234567", "country": "CN"}, "ship_to.postcode"),
    ({"lat": 91.0, "lon": 0.0}, "ship_to.lat"),
    ({"lat": 0.0, "lon": -181.0}, "ship_to.lon"),
    ({"lat": 10.0}, "ship_to.lon"),
    ({"name": "x" * 101}, "ship_to.name"),
    ({"city": "a\nb"}, "ship_to.city"),
    ({"street": "typo"}, "ship_to.street"),
]


@st.composite
def bad_ship_tos(draw: st.DrawFn) -> tuple[Any, str]:
    good, _ = draw(ship_tos())
    defect, key = draw(st.sampled_from(BAD_SHIP_TO))
    if not defect:
        good.pop("line1")
        return good, key
    merged = {k: v for k, v in good.items() if k not in ("lat", "lon")} | defect
    if defect.get("line1", "") is None:
        merged.pop("line1")
    return merged, key


@st.composite
def good_changes(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(
        st.sets(
            st.sampled_from(["priority", "promised_delivery_at", "attributes", "ship_to"]),
            min_size=1,
        )
    )
    changes: dict[str, Any] = {}
    if "ship_to" in keys:
        changes["ship_to"] = draw(ship_tos())[0]
    if "priority" in keys:
        changes["priority"] = draw(st.sampled_from(["normal", "express"]))
    if "promised_delivery_at" in keys:
        day = draw(st.integers(min_value=1, max_value=28))
        changes["promised_delivery_at"] = f"2031-02-{day:02d}T10:00:00+08:00"
    if "attributes" in keys:
        changes["attributes"] = draw(
            st.dictionaries(
                st.sampled_from(["gift", "floor", "cold", "note"]),
                st.one_of(st.none(), st.integers(0, 9), st.booleans(), texts),
                max_size=3,
            )
        )
    return changes


BAD_CHANGES: list[tuple[dict[str, Any], str]] = [
    ({"currency": "USD"}, "currency"),
    ({"shipping_fee": 1}, "shipping_fee"),
    ({"customer_id": 2}, "customer_id"),
    ({"priority": "urgent"}, "priority"),
    ({"priority": None}, "priority"),
    ({"promised_ship_at": "tomorrow"}, "promised_ship_at"),
    ({"promised_delivery_at": "2100-01-01T00:00:00Z"}, "promised_delivery_at"),
    ({"attributes": ["x"]}, "attributes"),
    ({"ship_to": None}, "ship_to"),
    ({"ship_to": {"line1": "a", "phone": "42"}}, "ship_to.phone"),
    ({}, "changes"),
]


@pytest.fixture(scope="module")
def client(db_dsn: str) -> Iterator[Client]:
    with Client.connect(db_dsn, min_size=1, max_size=2) as c:
        c.receive_stock(WAREHOUSE, SKU, 1_000_000)
        yield c


def _plain(value: Any) -> Any:
    """get_order's numbers are Decimals (exact), order_history's context floats: compare alike."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _customer() -> int:
    return 99_000_000 + uuid.uuid4().int % 900_000


def _order_count(db_dsn: str, customer: int) -> int:
    with psycopg.connect(db_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM orderdb.orders WHERE customer_id = %s", (customer,)
        ).fetchone()
    assert row is not None
    return int(row[0])


@SETTINGS
@given(case=ship_tos())
def test_good_ship_to_is_stored_normalised(
    client: Client, case: tuple[dict[str, Any], Any]
) -> None:
    value, expected = case
    created = client.create_order(
        _customer(), WAREHOUSE, [{"sku": SKU, "quantity": 1}], options={"ship_to": value}
    )
    stored = client.get_order(created.order_id).options["ship_to"]
    assert {k: stored.get(k) for k in expected} == expected
    timeline = client.order_timeline(created.order_id)
    assert timeline.recipient is not None
    assert expected["phone"] not in str(timeline.document)


@SETTINGS
@given(case=bad_ship_tos())
def test_bad_ship_to_is_refused_and_writes_nothing(
    client: Client, db_dsn: str, case: tuple[Any, str]
) -> None:
    value, key = case
    customer = _customer()
    with pytest.raises(errors.InvalidInput) as raised:
        client.create_order(
            customer, WAREHOUSE, [{"sku": SKU, "quantity": 1}], options={"ship_to": value}
        )
    assert key in str(raised.value)
    assert _order_count(db_dsn, customer) == 0


@SETTINGS
@given(changes=good_changes())
def test_good_amendment_is_in_get_order_and_history(
    client: Client, changes: dict[str, Any]
) -> None:
    created = client.create_order(
        _customer(),
        WAREHOUSE,
        [{"sku": SKU, "quantity": 1}],
        options={"ship_to": {"line1": "old"}, "attributes": {"gift": True}},
    )
    before = client.get_order(created.order_id)
    done = client.amend_order(created.order_id, changes, expected_version=1, actor="prop")
    assert (done.status, done.version) == ("pending", 2)
    after = client.get_order(created.order_id)
    history = client.order_history(created.order_id)
    entry = next(h for h in history if h.version == 2)
    assert entry.source == "amendment" and entry.actor == "prop"
    assert set(entry.context["changes"]) == set(changes)
    for key, change in entry.context["changes"].items():
        assert change["old"] == _plain(before.options.get(key))
        assert change["new"] == _plain(after.options.get(key))
    if "priority" in changes:
        assert after.priority == changes["priority"]
    if "promised_delivery_at" in changes:
        assert after.options["promised_delivery_at"] == changes["promised_delivery_at"]
    if "attributes" in changes:
        merged = {"gift": True} | changes["attributes"]
        assert after.options["attributes"] == {k: v for k, v in merged.items() if v is not None}
    if "ship_to" in changes:
        typed = changes["ship_to"]["line1"].strip()
        assert after.options["ship_to"]["line1"] == unicodedata.normalize("NFC", typed)


@SETTINGS
@given(case=st.sampled_from(BAD_CHANGES))
def test_bad_amendment_is_refused_and_changes_nothing(
    client: Client, case: tuple[dict[str, Any], str]
) -> None:
    changes, key = case
    created = client.create_order(
        _customer(), WAREHOUSE, [{"sku": SKU, "quantity": 1}], options={"ship_to": {"line1": "x"}}
    )
    before = client.get_order(created.order_id)
    with pytest.raises(errors.InvalidInput) as raised:
        client.amend_order(created.order_id, changes, expected_version=1)
    assert key in str(raised.value)
    assert client.get_order(created.order_id).document == before.document
    assert [h.version for h in client.order_history(created.order_id)] == [1]
