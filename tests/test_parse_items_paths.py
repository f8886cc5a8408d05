"""orderdb._parse_items has a fast path (valid input, one pass) and the full query (which words the
error). Property: for any input, the function answers exactly as its full query alone — the same
outputs, or the same SQLSTATE and message. The full query alone is the function's own definition
with the fast-path block cut out (between the "-- Fast path" and "-- Full query" comments)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

RUN = """
CREATE FUNCTION pg_temp.run(p_fn text, p_items jsonb, p_name text, p_required boolean,
                            p_max integer)
RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE format('SELECT row(p.*)::text FROM %s($1, $2, $3, $4) p', p_fn)
       INTO r USING p_items, p_name, p_required, p_max;
    RETURN 'OK ' || coalesce(r, '<null>');
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERR ' || SQLSTATE || ' ' || SQLERRM;
END $f$;
"""


@pytest.fixture(scope="module")
def conn(db_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_dsn, autocommit=True) as c:
        definition = c.execute(
            "SELECT pg_get_functiondef('orderdb._parse_items(jsonb, text, boolean, integer)'"
            "::regprocedure)"
        ).fetchone()[0]
        start = definition.index("    -- Fast path")
        end = definition.index("    -- Full query")
        full_only = definition[:start] + definition[end:]
        full_only = full_only.replace(
            "FUNCTION orderdb._parse_items(", "FUNCTION pg_temp.parse_full(", 1
        )
        assert "pg_temp.parse_full(" in full_only
        c.execute(full_only)
        c.execute(RUN)
        yield c


def both(
    conn: psycopg.Connection[Any],
    items: str | None,
    name: str = "items",
    required: bool = True,
    max_lines: int = 500,
) -> tuple[str, str]:
    query = "SELECT pg_temp.run(%s, %s::jsonb, %s, %s, %s)"
    args = (items, name, required, max_lines)
    fast = conn.execute(query, ("orderdb._parse_items", *args)).fetchone()[0]
    full = conn.execute(query, ("pg_temp.parse_full", *args)).fetchone()[0]
    return fast, full


# JSON texts of the edge values of each field (valid and not)
SKUS_JSON = [
    json.dumps(s)
    for s in [
        *("A", "a", "A ", "é", "K-1", "", "x" * 255, "y" * 256),
        # control characters, blank skus, and the decomposed spelling of a composed one (NFC)
        *("A\t", "\u0085A", "\u007f", " ", "\u3000\u00a0", "\u200b", "e\u0301", "K-1\u0301"),
        *("x" * 254 + "e\u0301", "x" * 255 + "\u0301"),
    ]
] + [
    "7",
    "null",
    "true",
    '["A"]',
    "{}",
]
QUANTITIES_JSON = [
    "1",
    "1.0",
    "2.00",
    "1.5",
    "0.5",
    "1.0000000001",
    "0",
    "-1",
    "-0",
    '"2"',
    "null",
    "true",
    "[1]",
    "{}",
    "2147483647",
    "2147483647.0",
    "2147483648",
    "1e3",
    "1E0",
    "1e400",
    "1e-30",
    "99999999999999999999",
]
PRICES_JSON = [
    "19.90",
    '"19.90"',
    '"19.900"',
    "0",
    '"0"',
    "-0",
    "-0.01",
    '"abc"',
    "true",
    "null",
    "1e12",
    "1e13",
    "1000000000000.01",
    '"1000000000000"',
    '"1000000000000.1"',
    '"10000000000000"',
    '"1e5"',
    '"-1"',
    '" 1"',
    '"1 "',
    '"01.50"',
    '""',
    '"1."',
    '".5"',
    "1e-20",
    '"0.00000000000000000001"',
    '"0.000000000000000000001"',
    "[]",
    "{}",
]
NOT_OBJECTS = ["1", '"s"', "null", "[]", '[{"sku": "A", "quantity": 1}]', "true"]
sku_json = st.one_of(
    st.sampled_from(SKUS_JSON),
    st.from_regex(r"\A[A-Ca-c0-9]{1,3}\Z").map(json.dumps),
)
quantity_json = st.one_of(
    st.integers(min_value=1, max_value=9).map(str), st.sampled_from(QUANTITIES_JSON)
)
price_json = st.one_of(
    st.decimals(min_value=0, max_value=10**12, places=2).map(str),
    st.decimals(min_value=0, max_value=10**6, places=4).map(lambda d: json.dumps(str(d))),
    st.sampled_from(PRICES_JSON),
)


GOOD_QUANTITY = st.one_of(
    st.integers(min_value=1, max_value=9).map(str), st.sampled_from(["1.0", "12", "2147483647"])
)
GOOD_PRICE = st.sampled_from(
    [
        None,
        "null",
        "19.90",
        '"19.90"',
        '"19.900"',
        "0",
        "5.00",
        "1e12",
        '"007.5"',
        '"1000000000000"',
    ]
)


@st.composite
def items_json(draw: st.DrawFn) -> str | None:
    """A valid order, then at most two faults: a field replaced by an edge value or dropped, a
    line replaced by a non-object, a sku repeated."""
    if draw(st.integers(0, 15)) == 0:
        return draw(st.sampled_from([None, "[]", "{}", '"x"', "null", "1"]))
    skus = draw(
        st.lists(
            st.from_regex(r"\A[A-Ca-c0-9 é\u0301\u3000\t]{1,4}\Z"),
            min_size=1,
            max_size=8,
            unique=True,
        )
    )
    lines: list[Any] = []
    for sku in skus:
        fields = {"sku": json.dumps(sku), "quantity": draw(GOOD_QUANTITY)}
        price = draw(GOOD_PRICE)
        if price is not None:
            fields["unit_price"] = price
        if draw(st.integers(0, 10)) == 0:
            fields["note"] = '"n"'
        lines.append(fields)
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]))):
        i = draw(st.integers(0, len(lines) - 1))
        if not isinstance(lines[i], dict):
            continue
        fault = draw(st.sampled_from(["sku", "quantity", "unit_price", "drop", "line", "dup"]))
        if fault == "sku":
            lines[i]["sku"] = draw(sku_json)
        elif fault == "quantity":
            lines[i]["quantity"] = draw(quantity_json)
        elif fault == "unit_price":
            lines[i]["unit_price"] = draw(price_json)
        elif fault == "drop":
            lines[i].pop(draw(st.sampled_from(["sku", "quantity", "unit_price"])), None)
        elif fault == "line":
            lines[i] = draw(st.sampled_from(NOT_OBJECTS))
        else:
            j = draw(st.integers(0, len(lines) - 1))
            if isinstance(lines[j], dict) and "sku" in lines[j]:
                lines[i]["sku"] = lines[j]["sku"]
    texts = []
    for fields in lines:
        if isinstance(fields, dict):
            pairs = draw(st.permutations(list(fields.items())))
            texts.append("{" + ", ".join(f'"{k}": {v}' for k, v in pairs) + "}")
        else:
            texts.append(fields)
    return "[" + ", ".join(texts) + "]"


@SETTINGS
@given(
    items=items_json(),
    name=st.sampled_from(["items", "lines", "payload.lines"]),
    required=st.booleans(),
    max_lines=st.sampled_from([500, 500, 500, 500, 3, 1]),
)
def test_fast_path_answers_as_the_full_query(
    conn: psycopg.Connection[Any], items: str | None, name: str, required: bool, max_lines: int
) -> None:
    fast, full = both(conn, items, name, required, max_lines)
    assert fast == full, items


@SETTINGS
@given(
    skus=st.lists(
        # a sku of spaces only is blank (refused)
        st.from_regex(r"\A[A-Ca-c0-9 ]{1,4}\Z").filter(lambda s: s.strip(" ")),
        min_size=1,
        max_size=8,
        unique=True,
    ),
    data=st.data(),
)
def test_valid_orders_take_the_same_shape(
    conn: psycopg.Connection[Any], skus: list[str], data: st.DataObject
) -> None:
    """Valid input (distinct skus, good quantities and prices): the same outputs both ways."""
    lines = []
    for sku in skus:
        q = data.draw(st.sampled_from(["1", "1.0", "3", "2147483647", "12"]))
        p = data.draw(
            st.sampled_from(
                [
                    "",
                    ', "unit_price": null',
                    ', "unit_price": 19.90',
                    ', "unit_price": "19.900"',
                    ', "unit_price": 0',
                    ', "unit_price": 1e12',
                    ', "unit_price": "007.5"',
                ]
            )
        )
        lines.append(f'{{"sku": {json.dumps(sku)}, "quantity": {q}{p}}}')
    fast, full = both(conn, "[" + ", ".join(lines) + "]")
    assert fast.startswith("OK ")
    assert fast == full


def test_each_edge_value_in_a_valid_order(conn: psycopg.Connection[Any]) -> None:
    """Every edge value of every field (and a dropped field, a non-object line, a repeated sku) in
    each line of an otherwise valid 3-line order, quantity required or not."""
    base = [
        {"sku": '"K-1"', "quantity": "2", "unit_price": '"19.90"'},
        {"sku": '"K-2"', "quantity": "1"},
        {"sku": '"K-3"', "quantity": "1.0", "unit_price": "5.00"},
    ]
    variants: list[list[Any]] = []
    for i in range(3):
        for field, values in (
            ("sku", SKUS_JSON),
            ("quantity", QUANTITIES_JSON),
            ("unit_price", PRICES_JSON),
        ):
            for value in [*values, None]:
                lines: list[Any] = [dict(line) for line in base]
                if value is None:
                    lines[i].pop(field, None)
                else:
                    lines[i][field] = value
                variants.append(lines)
        for value in NOT_OBJECTS:
            lines = [dict(line) for line in base]
            lines[i] = value
            variants.append(lines)
        lines = [dict(line) for line in base]
        lines[i]["sku"] = base[(i + 1) % 3]["sku"]
        variants.append(lines)
    mismatches = []
    for lines in variants:
        text = (
            "["
            + ", ".join(
                "{" + ", ".join(f'"{k}": {v}' for k, v in line.items()) + "}"
                if isinstance(line, dict)
                else line
                for line in lines
            )
            + "]"
        )
        for required in (True, False):
            fast, full = both(conn, text, "items", required)
            if fast != full:
                mismatches.append((text, required, fast, full))
    assert not mismatches, mismatches[:5]


@pytest.mark.parametrize("count", [499, 500, 501])
@pytest.mark.parametrize("duplicate", [False, True])
def test_line_count_bounds(conn: psycopg.Connection[Any], count: int, duplicate: bool) -> None:
    lines = [
        {
            "sku": f"L-{min(i, count - 2) if duplicate else i}",
            "quantity": 1 + i % 3,
            "unit_price": f"{i}.50",
        }
        for i in range(count)
    ]
    for required in (True, False):
        fast, full = both(conn, json.dumps(lines), "lines", required)
        assert fast == full
        assert fast.startswith("OK ") == (count <= 500 and not duplicate)


@pytest.mark.parametrize("note_depth", [29, 30, 31, 1000])
@pytest.mark.parametrize("kind", ["array", "object"])
def test_nesting_depth_bound(conn: psycopg.Connection[Any], note_depth: int, kind: str) -> None:
    """A line's extra key nested so that the items array is 31, 32, 33 or 1,002 levels deep: both
    paths accept up to 32 levels and refuse deeper with the same message."""
    opener, closer = ("[", "]") if kind == "array" else ('{"n": ', "}")
    note = opener * note_depth + "1" + closer * note_depth
    text = f'[{{"sku": "D-1", "quantity": 1, "note": {note}}}, {{"sku": "D-2", "quantity": 2}}]'
    for required in (True, False):
        fast, full = both(conn, text, "items", required)
        assert fast == full
        if note_depth + 2 <= 32:
            assert fast.startswith("OK "), fast
        else:
            assert fast == "ERR 22023 items must nest at most 32 levels deep", fast
