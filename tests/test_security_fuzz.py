"""Hostile input: hypothesis drives every API function with random and malicious arguments.

Each function is called as the role that is meant to call it (orderdb_app, orderdb_ingest) with
arguments drawn per parameter type from a mix of plausible values (existing orders, skus,
statuses, carriers: so that calls get deep into the code) and hostile ones: NULLs, boundary
numbers (0, -1, 2^31-1, 2^31, 2^63-1, ...), huge, empty and unicode-weird strings (RTL overrides,
emoji, combining marks, zero-width and quote characters, SQL and format() metacharacters), random
and oversized JSON, infinite and out-of-range timestamps.

Every failure must be a documented SQLSTATE: class 22 (bad input) or OD001..OD006. Never
XX000 (internal error), P0001 (bare RAISE), 23xxx (a constraint caught what validation missed),
42xxx, or anything else. A failed call must change nothing: the content hash of every orderdb
table is the same before and after it.

The functions are found in the catalog at test time (argument names and types from pg_proc), so
functions added later are fuzzed with their real signatures.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

Conn = psycopg.Connection[Any]

# name -> the role that calls it. All of docs/contract.md (reallocate_order is optional there).
FUNCTIONS: dict[str, str] = {
    "receive_stock": "orderdb_app",
    "stock_level": "orderdb_app",
    "create_order": "orderdb_app",
    "transition_order": "orderdb_app",
    "get_order": "orderdb_app",
    "order_history": "orderdb_app",
    "allowed_transitions": "orderdb_app",
    "read_events": "orderdb_app",
    "ack_events": "orderdb_app",
    "order_timeline": "orderdb_app",
    "wms_callback": "orderdb_ingest",
    "record_tracking_event": "orderdb_ingest",
}
OPTIONAL = {"reallocate_order": "orderdb_app"}
# ORDERDB_FUZZ_EXAMPLES raises the budget for a longer hunt (default: bounded for CI)
MAX_EXAMPLES = int(os.environ.get("ORDERDB_FUZZ_EXAMPLES", "150"))
OTHER_MAX_EXAMPLES = max(MAX_EXAMPLES // 2, 30)

ALLOWED_CODES = {"OD001", "OD002", "OD003", "OD004", "OD005", "OD006"}

WAREHOUSES = (1, 2)
SKUS = ("FZ-1", "FZ-2", "FZ-3")
STATUSES = (
    "pending",
    "confirmed",
    "dispatched",
    "picked",
    "packed",
    "shipped",
    "delivering",
    "delivered",
    "completed",
    "cancelled",
    "on_hold",
    "delivery_failed",
    "return_requested",
    "returning",
    "returned",
)
WORDS = (
    "PICKED",
    "PACKED",
    "SHIPPED",
    "EXCEPTION",
    "GENERIC",
    "SF",
    "YTO",
    "ZTO",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "failed_attempt",
    "exception",
    "OUT_OF_STOCK",
    "ADDRESS_INCOMPLETE",
    "fuzz-consumer",
    "FZTRACK0001",
)

INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1
BOUNDARY_INTS = (0, -1, 1, 2, INT4_MAX, INT4_MAX + 1, -(2**31), INT8_MAX, -(2**63), 2**63, 10**30)

WEIRD_STRINGS = (
    "",
    " ",
    "\t\n",
    "x" * 255,
    "x" * 256,
    "x" * 1000,
    "x" * 1001,
    "é" * 255,
    "é" * 256,
    "\u202eevil\u202c",  # right-to-left override
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",  # Hebrew, Arabic
    "😀" * 300,
    "👩‍👩‍👧‍👦🏳️‍🌈",  # ZWJ sequences
    "e\u0301" * 300,  # combining acute accents
    "Z\u0351\u0352\u0353\u0354\u0355\u0356\u0357\u0358",  # stacked combining marks
    "\u200b\u200c\u200d\ufeff",  # zero-width characters, BOM
    "\uffff\U0010ffff",  # noncharacters
    "'; DROP TABLE orderdb.orders; --",
    '%s %I %L %% $1 $$ \\ \\\\ "',
    "null",
    "NaN",
    "-Infinity",
    "ORD2026010100000001",
)

TIMESTAMPS = (
    "infinity",
    "-infinity",
    "epoch",
    "now",
    "294276-12-31 23:59:59+00",
    "4713-01-01 00:00:00+00 BC",
    "2000-02-30 00:00:00+00",
    "not a time",
    "1970-01-01 00:00:00+00",
    "2999-01-01 00:00:00+00",
)


@dataclass(frozen=True)
class Arg:
    name: str
    type: str


@dataclass(frozen=True)
class Function:
    name: str
    signature: str
    args: tuple[Arg, ...]
    required: int  # arguments without a default


@dataclass
class Seed:
    order_ids: list[int]
    tracking_numbers: list[str]
    event_ids: list[int]


# --------------------------------------------------------------------------------- strategies

# any character PostgreSQL text can hold: no NUL, no lone surrogate (not encodable as UTF-8)
TEXT_ALPHABET = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(BOUNDARY_INTS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from((1.5, -0.0, 1e308, 5e-324, 1e-7, 19.90)),
    st.text(max_size=20),
    st.sampled_from(WEIRD_STRINGS + SKUS + WORDS + TIMESTAMPS),
)
random_json = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.one_of(st.text(max_size=10), st.sampled_from(("sku", "quantity", "lines"))),
            children,
            max_size=5,
        ),
    ),
    max_leaves=20,
)
quantities = st.one_of(
    st.integers(min_value=-3, max_value=5),
    st.sampled_from(BOUNDARY_INTS),
    st.sampled_from((1.5, 2.0, "2", "x", None, True, [], {})),
)
prices = st.one_of(
    st.none(),
    st.sampled_from((0, 19.9, -1, 1e12, 1e13, "19.90", "1e3", "", "abc", "-0", True, [1], {})),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
)
item_lines = st.fixed_dictionaries(
    {"sku": st.one_of(st.sampled_from(SKUS), st.sampled_from(WEIRD_STRINGS), json_scalars)},
    optional={"quantity": quantities, "unit_price": prices, "extra": random_json},
)
items = st.one_of(
    st.lists(item_lines, min_size=0, max_size=4),
    st.lists(st.one_of(item_lines, random_json), max_size=3),
    st.just([{"sku": f"FZ-BULK-{i}", "quantity": 1} for i in range(501)]),  # 501 lines
    st.just([{"sku": "FZ-1", "quantity": 1}, {"sku": "FZ-1", "quantity": 1}]),  # sku twice
)
payload_objects = st.fixed_dictionaries(
    {},
    optional={
        "occurred_at": st.one_of(st.sampled_from(TIMESTAMPS), json_scalars),
        "carrier": st.one_of(st.sampled_from(WORDS), st.sampled_from(WEIRD_STRINGS), json_scalars),
        "tracking_number": st.one_of(
            st.sampled_from(("FZTRACK0001", "FZTRACK0002")),
            st.sampled_from(WEIRD_STRINGS),
            json_scalars,
        ),
        "lines": st.one_of(items, random_json),
        "exception_type": st.one_of(st.sampled_from(WORDS), json_scalars),
        "reason": st.one_of(st.sampled_from(WEIRD_STRINGS), json_scalars),
        "ip": st.sampled_from(("127.0.0.1", "::1", "not-an-ip")),
    },
)
huge_json = st.sampled_from(
    (
        {"blob": "x" * 70_000},
        [{"sku": "FZ-1", "quantity": 1, "pad": "y" * 70_000}],
        {"deep": json.loads("[" * 200 + "]" * 200)},
        {"nul": "a\u0000b"},  # jsonb refuses \u0000 (22P05)
    )
)


def _json_text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _json_strategy(name: str) -> st.SearchStrategy[Any]:
    if name in ("p_items", "p_lines"):
        shaped = items
    elif name in ("p_payload", "p_options", "p_context"):
        shaped = payload_objects
    else:
        shaped = random_json
    return st.one_of(
        st.none(),
        shaped.map(_json_text),
        shaped.map(_json_text),
        random_json.map(_json_text),
        huge_json.map(_json_text),
        st.sampled_from(("{", "[1,", "not json", "", "1e400", '"\\ud800"')),
    )


def _int_strategy(pool: list[int]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.sampled_from(pool) if pool else st.just(1),
        st.sampled_from(BOUNDARY_INTS),
        st.integers(min_value=-(2**64), max_value=2**64),
        st.sampled_from(("1", "x", "1.5", "")),  # wrong type: the cast refuses it (class 22)
    )


def _text_strategy(pool: tuple[str, ...] | list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.sampled_from(tuple(pool)),
        st.sampled_from(tuple(pool)),
        st.sampled_from(WEIRD_STRINGS),
        st.text(TEXT_ALPHABET, max_size=300),
        st.just("z" * 100_000),
    )


def _strategy(arg: Arg, seed: Seed) -> st.SearchStrategy[Any]:
    name, typ = arg.name, arg.type
    if typ in ("integer", "bigint", "smallint"):
        if name in ("p_order_id",):
            return _int_strategy(seed.order_ids)
        if name in ("p_warehouse_id", "p_to_warehouse_id"):
            return _int_strategy(list(WAREHOUSES))
        if name in ("p_expected_version",):
            return _int_strategy([1, 2, 3, 4, 5])
        if name in ("p_event_id",):
            return _int_strategy(seed.event_ids)
        if name in ("p_customer_id",):
            return _int_strategy([7, 8])
        return _int_strategy([1, 10, 100])
    if typ == "text":
        if name == "p_sku":
            return _text_strategy(SKUS)
        if name == "p_to_status":
            return _text_strategy(STATUSES)
        if name == "p_tracking_number":
            return _text_strategy(seed.tracking_numbers or ["FZTRACK0001"])
        if name == "p_consumer":
            return _text_strategy(("fuzz-consumer", "fuzz-other"))
        return _text_strategy(WORDS)
    if typ in ("jsonb", "json"):
        return _json_strategy(name)
    if typ == "timestamp with time zone":
        return st.one_of(st.none(), st.sampled_from(TIMESTAMPS), st.datetimes().map(str))
    if typ == "text[]":
        return st.one_of(
            st.none(), st.lists(st.one_of(st.none(), st.text(TEXT_ALPHABET, max_size=5)))
        )
    if typ == "bigint[]":
        ids = st.one_of(
            st.none(), st.sampled_from(seed.event_ids or [1]), st.integers(-(2**63), 2**63 - 1)
        )
        return st.one_of(st.none(), st.lists(ids, max_size=5))
    if typ == "boolean":
        return st.one_of(st.none(), st.booleans())
    if typ in ("double precision", "real", "numeric"):
        return st.one_of(
            st.none(),
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from((0, -1, 1e308, -1e308, 5e-324, 90, 180, 91, -181)),
            st.sampled_from(("NaN", "Infinity", "-Infinity", "x")),
        )
    if typ == "interval":
        return st.one_of(st.none(), st.sampled_from(("1 day", "-1 day", "infinity", "x")))
    raise AssertionError(f"no strategy for {arg}: add one to tests/test_security_fuzz.py")


def _plausible(arg: Arg, seed: Seed) -> st.SearchStrategy[Any]:
    """Values a well-behaved caller would send, so that a call gets deep into the function."""
    name, typ = arg.name, arg.type
    if typ in ("integer", "bigint", "smallint"):
        pools = {
            "p_order_id": seed.order_ids,
            "p_warehouse_id": list(WAREHOUSES),
            "p_to_warehouse_id": list(WAREHOUSES),
            "p_expected_version": [1, 2, 3, 4, 5, 6],
            "p_event_id": seed.event_ids,
            "p_customer_id": [7, 8],
            "p_quantity": [1, 2, 5],
            "p_limit": [1, 10, 100],
        }
        return st.sampled_from(pools.get(name) or [1, 2, 10])
    if typ == "text":
        text_pools: dict[str, tuple[str, ...]] = {
            "p_sku": SKUS,
            "p_to_status": STATUSES,
            "p_event_type": ("PICKED", "PACKED", "SHIPPED", "EXCEPTION"),
            "p_carrier": ("GENERIC", "SF", "YTO", "ZTO"),
            "p_carrier_status": ("in_transit", "out_for_delivery", "delivered", "exception"),
            "p_tracking_number": tuple(seed.tracking_numbers),
            "p_consumer": ("fuzz-consumer", "fuzz-other"),
        }
        pool = text_pools.get(name)
        if pool is not None:
            return st.sampled_from(pool)
        return st.one_of(st.none(), st.text(TEXT_ALPHABET, max_size=30), st.sampled_from(WORDS))
    if typ in ("jsonb", "json"):
        if name in ("p_items", "p_lines"):
            line = st.fixed_dictionaries(
                {"sku": st.sampled_from(SKUS), "quantity": st.integers(1, 3)},
                optional={"unit_price": st.sampled_from((0, 1.5, "19.90"))},
            )
            return st.lists(line, min_size=1, max_size=3, unique_by=lambda x: x["sku"]).map(
                _json_text
            )
        if name == "p_payload":
            return st.one_of(
                st.just({}),
                st.builds(
                    lambda c, t: {"carrier": c, "tracking_number": t},
                    st.sampled_from(("SF", "YTO", "GENERIC")),
                    st.sampled_from(seed.tracking_numbers),
                ),
                st.just({"exception_type": "OUT_OF_STOCK"}),
                st.just({"occurred_at": "2026-01-01T00:00:00Z"}),
            ).map(_json_text)
        return st.one_of(st.just("{}"), st.just('{"ip": "127.0.0.1"}'))
    if typ == "timestamp with time zone":
        return st.sampled_from(("now", "2026-01-01 00:00:00+00", "2025-06-30 12:00:00+02"))
    return _strategy(arg, seed)


# --------------------------------------------------------------------------------- database


def _functions(conn: Conn, *, exclude: list[str] | None = None) -> dict[str, Function]:
    """The API functions (``exclude`` None), else every other public function of orderdb."""
    rows = conn.execute(
        """
        SELECT p.proname, p.oid::regprocedure::text, p.pronargs, p.pronargdefaults,
               coalesce(p.proargnames, '{}'), coalesce(p.proargmodes::text[], '{}'),
               ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[])
                       WITH ORDINALITY AS a(t, i) ORDER BY a.i)
          FROM pg_proc p
         WHERE p.pronamespace = 'orderdb'::regnamespace AND p.prokind = 'f'
           AND CASE WHEN %(exclude)s::text[] IS NULL THEN p.proname = ANY(%(names)s)
                    ELSE p.proname !~ '^_' AND p.proname <> ALL(%(exclude)s::text[]) END
         ORDER BY p.proname
        """,
        {"names": list(FUNCTIONS) + list(OPTIONAL), "exclude": exclude},
    ).fetchall()
    found: dict[str, Function] = {}
    for name, signature, nargs, ndefaults, argnames, modes, types in rows:
        in_names = [
            n
            for n, m in zip(argnames, modes or ["i"] * len(argnames), strict=False)
            if m in ("i", "b")
        ]
        if not modes:
            in_names = list(argnames[:nargs])
        in_names = (in_names + [f"arg{i}" for i in range(nargs)])[:nargs]
        assert name not in found, f"orderdb.{name} is overloaded; fuzz each overload"
        found[name] = Function(
            name,
            signature,
            tuple(Arg(n, t) for n, t in zip(in_names, types, strict=True)),
            nargs - ndefaults,
        )
    return found


def _snapshot_query(conn: Conn) -> sql.Composed:
    tables = [
        str(r[0])
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'orderdb' ORDER BY 1"
        ).fetchall()
    ]
    parts = [
        sql.SQL(
            "SELECT {name} AS t, (SELECT md5(coalesce(string_agg(x::text, E'\\n' "
            "ORDER BY x::text), '')) FROM {table} x) AS h"
        ).format(name=sql.Literal(t), table=sql.Identifier("orderdb", t))
        for t in tables
    ]
    union = sql.SQL(" UNION ALL ").join(parts)
    return sql.SQL("SELECT string_agg(t || ':' || h, ',' ORDER BY t) FROM ({}) s").format(union)


def _snapshot(conn: Conn, query: sql.Composed) -> str:
    row = conn.execute(query).fetchone()
    assert row is not None
    return str(row[0])


def _seed(conn: Conn) -> Seed:
    for wh in WAREHOUSES:
        for sku in SKUS:
            conn.execute("SELECT orderdb.receive_stock(%s, %s, 1000)", (wh, sku))
    order_ids: list[int] = []
    has_wms = conn.execute("SELECT to_regproc('orderdb.wms_callback') IS NOT NULL").fetchone()
    # pending, confirmed, dispatched, picked, packed, (shipped with a tracking number), cancelled
    path = ["confirmed", "dispatched", "picked", "packed"]
    for steps in range(len(path) + 2):
        row = conn.execute(
            "SELECT order_id FROM orderdb.create_order(7, 1, %s::jsonb)",
            (_json_text([{"sku": "FZ-1", "quantity": 1}, {"sku": "FZ-2", "quantity": 2}]),),
        ).fetchone()
        assert row is not None
        order_id = int(row[0])
        order_ids.append(order_id)
        for version, status in enumerate(path[: min(steps, len(path))], start=1):
            conn.execute(
                "SELECT * FROM orderdb.transition_order(%s, %s, %s)", (order_id, status, version)
            )
        if steps == len(path) + 1 and has_wms is not None and has_wms[0]:
            conn.execute(
                "SELECT * FROM orderdb.wms_callback('fz-ship-1', %s, 'SHIPPED', %s::jsonb)",
                (order_id, _json_text({"carrier": "SF", "tracking_number": "FZTRACK0001"})),
            )
    conn.execute("SELECT * FROM orderdb.transition_order(%s, 'cancelled', 1)", (order_ids[0],))
    events = conn.execute("SELECT event_id FROM orderdb.read_events('fuzz-consumer', 5)").fetchall()
    event_ids = [int(r[0]) for r in events]
    return Seed(order_ids, ["FZTRACK0001", "FZTRACK0002"], [*event_ids, 10**6])


@dataclass
class FuzzDb:
    dsn: str
    owner: Conn
    functions: dict[str, Function]
    seed: Seed
    snapshot_query: sql.Composed


@pytest.fixture(scope="module")
def fuzz_db(db_dsn: str) -> Iterator[FuzzDb]:
    with psycopg.connect(db_dsn, autocommit=True) as owner:
        seed = _seed(owner)
        yield FuzzDb(db_dsn, owner, _functions(owner), seed, _snapshot_query(owner))


def _call_sql(func: Function, nargs: int) -> sql.Composed:
    params = [
        sql.SQL("%s::") + sql.SQL(arg.type)  # the type comes from pg_proc, not from caller data
        for arg in func.args[:nargs]
    ]
    return sql.SQL("SELECT * FROM {}({})").format(
        sql.Identifier("orderdb", func.name), sql.SQL(", ").join(params)
    )


# --------------------------------------------------------------------------------- the tests


def test_every_contract_function_is_fuzzed(fuzz_db: FuzzDb) -> None:
    missing = sorted(set(FUNCTIONS) - set(fuzz_db.functions))
    assert missing == [], f"contract functions missing from the database: {missing}"


def _fuzz(db: FuzzDb, func: Function, role: str | None, max_examples: int) -> dict[str, int]:
    """Call ``func`` as ``role`` (None: the owner) with drawn arguments; check every failure."""
    outcomes: dict[str, int] = {}
    with psycopg.connect(db.dsn, autocommit=True) as caller:
        if role is not None:
            caller.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        caller.execute("SET statement_timeout = '20s'")
        state = {"hash": _snapshot(db.owner, db.snapshot_query)}

        @settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            suppress_health_check=[
                HealthCheck.function_scoped_fixture,
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.large_base_example,
            ],
        )
        @given(data=st.data())
        def run(data: st.DataObject) -> None:
            nargs = data.draw(st.integers(min_value=func.required, max_value=len(func.args)))
            # all plausible (reaches deep), one hostile argument among plausible ones, or all
            # hostile
            mode = data.draw(st.sampled_from(("plausible", "one", "one", "all")), label="mode")
            target = data.draw(st.integers(0, max(nargs - 1, 0)), label="hostile_arg")
            values = [
                data.draw(
                    _strategy(arg, db.seed)
                    if mode == "all" or (mode == "one" and i == target)
                    else _plausible(arg, db.seed),
                    label=arg.name,
                )
                for i, arg in enumerate(func.args[:nargs])
            ]
            query = _call_sql(func, nargs)
            try:
                caller.execute(query, values).fetchall()
            except psycopg.Error as exc:
                code = exc.sqlstate or "?"
                outcomes[code] = outcomes.get(code, 0) + 1
                assert code[:2] == "22" or code in ALLOWED_CODES, (
                    f"{func.signature} raised undocumented SQLSTATE {code}: {exc}\n"
                    f"arguments: {[repr(v)[:200] for v in values]}"
                )
                after = _snapshot(db.owner, db.snapshot_query)
                assert after == state["hash"], (
                    f"{func.signature} failed with {code} but changed the database"
                )
            else:
                outcomes["ok"] = outcomes.get("ok", 0) + 1
                state["hash"] = _snapshot(db.owner, db.snapshot_query)

        run()
    calls = sum(outcomes.values())
    # a function without arguments has one distinct call
    assert calls >= (min(50, max_examples) if func.args else 1), outcomes
    print(f"{func.signature}: {outcomes}")
    return outcomes


@pytest.mark.parametrize("name", sorted(FUNCTIONS) + sorted(OPTIONAL))
def test_hostile_input_fails_cleanly_and_changes_nothing(fuzz_db: FuzzDb, name: str) -> None:
    func = fuzz_db.functions.get(name)
    if func is None:
        # only the optional functions may be absent (test_every_contract_function_is_fuzzed)
        assert name in OPTIONAL
        return
    _fuzz(fuzz_db, func, FUNCTIONS.get(name) or OPTIONAL[name], MAX_EXAMPLES)


def test_every_other_public_function_fails_cleanly(fuzz_db: FuzzDb) -> None:
    """The public functions beyond docs/contract.md (added by the capabilities), as the owner."""
    others = _functions(fuzz_db.owner, exclude=[*FUNCTIONS, *OPTIONAL])
    assert others, "expected public functions beyond docs/contract.md (purge_events, ...)"
    for func in others.values():
        _fuzz(fuzz_db, func, None, OTHER_MAX_EXAMPLES)


def test_invariants_hold_after_the_fuzzing(fuzz_db: FuzzDb) -> None:
    drift = fuzz_db.owner.execute("SELECT * FROM orderdb_ops.inventory_drift").fetchall()
    assert drift == []
    bad = fuzz_db.owner.execute(
        "SELECT count(*) FROM orderdb.inventory WHERE reserved > on_hand OR on_hand < 0"
    ).fetchone()
    assert bad == (0,)
