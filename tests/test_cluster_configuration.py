"""Configuration through the cluster proxy (docs/scaling.md "Reference data"): the cluster-wide
owner functions (set_integration, set_carrier_polling, create_webhook_subscription) write every
shard, a webhook subscription with the same id and secret everywhere; the per-warehouse ones
(set_warehouse_location, add_courier, set_courier_available, set_warehouse_wms,
set_stock_buckets, rebalance_stock_buckets) write the warehouse's shard only; a shard that fails
mid-way leaves drift that `cluster status` names and that running the call again repairs; bad
input is refused with one database's SQLSTATE and writes nothing on any shard;
`orderdb cluster sync-reference` repairs a shard whose reference tables drifted; the CLI
commands built on these functions work with the proxy's DSN."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from orderdb.cli import main
from tests.cluster_fixtures import SHARDS, Cluster, cluster  # noqa: F401  (fixture)

SECRET = "integration-secret-0123456789"
WEBHOOK_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)


def proxy(cl: Cluster) -> psycopg.Connection[Any]:
    return psycopg.connect(cl.proxy_dsn, autocommit=True)


def on_every_shard(cl: Cluster, query: str, params: tuple[Any, ...] = ()) -> list[list[Any]]:
    """The rows of ``query`` on each shard, in shard order."""
    out = []
    for dsn in cl.shard_dsns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            out.append([tuple(r) for r in conn.execute(query, params).fetchall()])
    return out


def drift(cl: Cluster) -> dict[int, list[str]]:
    result = run("cluster", "status", "--dsn", cl.proxy_dsn, "--json")
    assert result.exit_code == 0, result.output
    return {s["shard"]: s["reference_drift"] for s in json.loads(result.stdout)["shards"]}


def no_drift() -> dict[int, list[str]]:
    return {n: [] for n in range(SHARDS)}


def pin(cl: Cluster, warehouse_id: int, shard: int, sku: str = "SKU-CFG") -> None:
    done = run("cluster", "map-warehouse", "--dsn", cl.proxy_dsn, str(warehouse_id), str(shard))
    assert done.exit_code == 0, done.output
    with proxy(cl) as conn:
        conn.execute("SELECT * FROM orderdb.receive_stock(%s, %s, 40)", (warehouse_id, sku))


@contextmanager
def refusing(cl: Cluster, shard: int, table: str) -> Iterator[None]:
    """Shard ``shard`` refuses every insert or update of ``table`` (a trigger), as a shard that
    fails in the middle of a cluster-wide write."""
    with psycopg.connect(cl.shard_dsns[shard], autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION orderdb.test_refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$BEGIN RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = 'shard refuses';"
            " END$$"
        )
        conn.execute(
            f"CREATE TRIGGER test_refuse BEFORE INSERT OR UPDATE ON orderdb.{table}"
            " FOR EACH ROW EXECUTE FUNCTION orderdb.test_refuse()"
        )
    try:
        yield
    finally:
        with psycopg.connect(cl.shard_dsns[shard], autocommit=True) as conn:
            conn.execute(f"DROP TRIGGER test_refuse ON orderdb.{table}")
            conn.execute("DROP FUNCTION orderdb.test_refuse()")


@contextmanager
def shard_down(cl: Cluster, shard: int) -> Iterator[None]:
    """Shard ``shard`` accepts no connection and its sessions (the proxy's among them) end."""
    name = conninfo_to_dict(cl.shard_dsns[shard])["dbname"]
    with psycopg.connect(cl.admin_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        try:
            yield
        finally:
            admin.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name))
            )


# -- owner functions on the proxy ---------------------------------------------------------------

OWNER_FUNCTIONS = (
    "set_integration",
    "set_carrier_polling",
    "create_webhook_subscription",
    "set_warehouse_location",
    "add_courier",
    "set_courier_available",
    "set_warehouse_wms",
    "set_stock_buckets",
    "rebalance_stock_buckets",
)


def test_configuration_functions_are_on_the_proxy_for_the_owner_only(cluster: Cluster) -> None:  # noqa: F811
    signature = (
        "SELECT p.proname || '(' || pg_get_function_arguments(p.oid) || ') '"
        " || pg_get_function_result(p.oid),"
        " has_function_privilege('orderdb_app', p.oid, 'EXECUTE')"
        " OR has_function_privilege('orderdb_ingest', p.oid, 'EXECUTE')"
        " OR has_function_privilege('orderdb_ops', p.oid, 'EXECUTE')"
        " FROM pg_proc p WHERE p.pronamespace = 'orderdb'::regnamespace"
        " AND p.proname = ANY(%s) ORDER BY 1"
    )
    names = list(OWNER_FUNCTIONS)
    with psycopg.connect(cluster.shard_dsns[0], autocommit=True) as conn:
        on_shard = conn.execute(signature, (names,)).fetchall()
    with proxy(cluster) as conn:
        on_proxy = conn.execute(signature, (names,)).fetchall()
    assert len(on_shard) == len(OWNER_FUNCTIONS)
    assert on_proxy == on_shard
    assert not any(granted for _, granted in on_proxy)


# -- cluster-wide configuration -----------------------------------------------------------------


def test_set_integration_and_carrier_polling_write_every_shard(cluster: Cluster) -> None:  # noqa: F811
    with proxy(cluster) as conn:
        rows = conn.execute(
            "SELECT * FROM orderdb.set_integration('cfg-carrier', 'carrier', %s, 7, 9)", (SECRET,)
        ).fetchall()
        polling = conn.execute(
            "SELECT * FROM orderdb.set_carrier_polling('CFGCARRIER', interval '90 seconds')"
        ).fetchall()
    # one database's one row, not one per shard
    assert [tuple(r) for r in rows] == [("cfg-carrier", "carrier", 7, 9, True)]
    assert [(r[0], r[1].total_seconds()) for r in polling] == [("CFGCARRIER", 90.0)]
    assert (
        on_every_shard(
            cluster,
            "SELECT name, kind, secret, rate, burst, enabled FROM orderdb.integrations"
            " WHERE name = 'cfg-carrier'",
        )
        == [[("cfg-carrier", "carrier", SECRET, 7, 9, True)]] * SHARDS
    )
    assert (
        on_every_shard(
            cluster,
            "SELECT extract(epoch FROM poll_interval)::int FROM orderdb.carrier_polling"
            " WHERE carrier = 'CFGCARRIER'",
        )
        == [[(90,)]] * SHARDS
    )
    assert drift(cluster) == no_drift()


def test_concurrent_writes_of_one_integration_leave_every_shard_alike(cluster: Cluster) -> None:  # noqa: F811
    # rounds of four writers released at once, each writing other values: every shard must end
    # with the values of the same writer (the writes are serial on the proxy)
    conns = [proxy(cluster) for _ in range(4)]
    try:
        for _ in range(8):
            barrier = threading.Barrier(len(conns))
            errors: list[BaseException] = []

            def writer(
                conn: psycopg.Connection[Any],
                rate: int,
                barrier: threading.Barrier = barrier,
                errors: list[BaseException] = errors,
            ) -> None:
                try:
                    barrier.wait(timeout=30)
                    conn.execute(
                        "SELECT * FROM orderdb.set_integration('cfg-race', 'wms', %s, %s)",
                        (SECRET, rate),
                    )
                except BaseException as exc:
                    errors.append(exc)

            threads = [
                threading.Thread(target=writer, args=(c, rate))
                for rate, c in enumerate(conns, start=1)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert errors == []
            rates = on_every_shard(
                cluster, "SELECT rate FROM orderdb.integrations WHERE name = 'cfg-race'"
            )
            assert len({tuple(r) for r in rates}) == 1, rates
    finally:
        for c in conns:
            c.close()
    assert drift(cluster) == no_drift()


def test_a_shard_failing_mid_way_leaves_drift_that_running_again_repairs(cluster: Cluster) -> None:  # noqa: F811
    with proxy(cluster) as conn:
        conn.execute("SELECT * FROM orderdb.set_integration('cfg-retry', 'wms', %s)", (SECRET,))
        with refusing(cluster, SHARDS - 1, "integrations"):
            with pytest.raises(psycopg.Error) as failed:
                conn.execute(
                    "SELECT * FROM orderdb.set_integration('cfg-retry', 'wms', %s, 3, 4)",
                    (SECRET,),
                )
            # shards before the last have the new values, the last the old ones
            assert on_every_shard(
                cluster, "SELECT rate, burst FROM orderdb.integrations WHERE name = 'cfg-retry'"
            ) == [[(3, 4)]] * (SHARDS - 1) + [[(50, 100)]]
            assert drift(cluster)[SHARDS - 1] == ["integrations"]
        assert failed.value.sqlstate == "55000"
        assert failed.value.diag.message_primary == "shard refuses"
        hint = failed.value.diag.message_hint or ""
        assert f"not on shard {SHARDS - 1}" in hint
        assert "run the same call again" in hint
        # the same call again converges
        conn.execute(
            "SELECT * FROM orderdb.set_integration('cfg-retry', 'wms', %s, 3, 4)", (SECRET,)
        )
    assert (
        on_every_shard(
            cluster, "SELECT rate, burst FROM orderdb.integrations WHERE name = 'cfg-retry'"
        )
        == [[(3, 4)]] * SHARDS
    )
    assert drift(cluster) == no_drift()


def test_a_shard_that_is_down_leaves_drift_that_the_same_call_repairs(cluster: Cluster) -> None:  # noqa: F811
    last = SHARDS - 1
    url = "https://hooks.example.com/down"
    with shard_down(cluster, last):
        with proxy(cluster) as conn:
            with pytest.raises(psycopg.Error) as failed:
                conn.execute(
                    "SELECT * FROM orderdb.set_integration('cfg-down', 'carrier', %s)", (SECRET,)
                )
            with pytest.raises(psycopg.Error) as refused:
                conn.execute("SELECT * FROM orderdb.create_webhook_subscription(%s)", (url,))
        assert f"not on shard {last}" in (failed.value.diag.message_hint or "")
        assert "was not created" in (refused.value.diag.message_hint or "")
        # status and sync-reference say a shard is unreachable (exit 75)
        status = run("cluster", "status", "--dsn", cluster.proxy_dsn, "--json")
        assert status.exit_code == 75, status.output
        synced = run("cluster", "sync-reference", "--dsn", cluster.proxy_dsn, "--json")
        assert synced.exit_code == 75, synced.output
        errors = {s["shard"]: s["error"] for s in json.loads(synced.stdout)["shards"]}
        assert list(errors) == [last] and errors[last].startswith("not reachable")
        # the source itself down
        source = run(
            "cluster",
            "sync-reference",
            "--dsn",
            cluster.proxy_dsn,
            "--from-shard",
            str(last),
            "--json",
        )
        assert source.exit_code == 75, source.output
        [only] = json.loads(source.stdout)["shards"]
        assert only["shard"] == last and only["error"].startswith("not reachable")
        for dsn in cluster.shard_dsns[:last]:
            with psycopg.connect(dsn, autocommit=True) as conn:
                assert conn.execute(
                    "SELECT count(*) FROM orderdb.integrations WHERE name = 'cfg-down'"
                ).fetchone() == (1,)
                assert conn.execute(
                    "SELECT count(*) FROM orderdb.webhook_subscriptions WHERE url = %s", (url,)
                ).fetchone() == (0,)
    assert drift(cluster)[last] == ["integrations"]
    with proxy(cluster) as conn:
        conn.execute("SELECT * FROM orderdb.set_integration('cfg-down', 'carrier', %s)", (SECRET,))
    assert drift(cluster) == no_drift()


def test_a_webhook_subscription_has_one_id_and_secret_on_every_shard(cluster: Cluster) -> None:  # noqa: F811
    with proxy(cluster) as conn:
        generated = conn.execute(
            "SELECT * FROM orderdb.create_webhook_subscription("
            "'https://hooks.example.com/a', ARRAY['order.created'], NULL, 5, 'all shards')"
        ).fetchall()
        given = conn.execute(
            "SELECT * FROM orderdb.create_webhook_subscription('https://hooks.example.com/b',"
            " p_secret => %s)",
            (WEBHOOK_SECRET,),
        ).fetchall()
    assert len(generated) == 1 and len(given) == 1
    (gen_id, gen_secret), (given_id, given_secret) = generated[0], given[0]
    assert gen_secret.startswith("whsec_") and given_secret == WEBHOOK_SECRET
    assert (gen_id - 1) % 64 == 0  # made by shard 0
    rows = on_every_shard(
        cluster,
        "SELECT subscription_id, url, event_types, secret, active, max_attempts, description"
        " FROM orderdb.webhook_subscriptions WHERE subscription_id = ANY(%s)"
        " ORDER BY subscription_id",
        ([gen_id, given_id],),
    )
    assert (
        rows
        == [
            [
                (
                    gen_id,
                    "https://hooks.example.com/a",
                    ["order.created"],
                    gen_secret,
                    True,
                    5,
                    "all shards",
                ),
                (given_id, "https://hooks.example.com/b", None, WEBHOOK_SECRET, True, 8, None),
            ]
        ]
        * SHARDS
    )
    assert drift(cluster) == no_drift()
    # the command line, through the proxy
    added = run(
        "webhooks",
        "add",
        "https://hooks.example.com/cli",
        "--dsn",
        cluster.proxy_dsn,
        env={"ORDERDB_WEBHOOKS_ADD_SECRET": WEBHOOK_SECRET},
    )
    assert added.exit_code == 0, added.output
    sub = json.loads(added.stdout)
    assert (
        on_every_shard(
            cluster,
            "SELECT secret FROM orderdb.webhook_subscriptions WHERE subscription_id = %s",
            (sub["subscription_id"],),
        )
        == [[(WEBHOOK_SECRET,)]] * SHARDS
    )


def test_a_webhook_subscription_a_shard_refuses_is_created_nowhere(cluster: Cluster) -> None:  # noqa: F811
    url = "https://hooks.example.com/refused"
    count = "SELECT count(*) FROM orderdb.webhook_subscriptions WHERE url = %s"
    with (
        proxy(cluster) as conn,
        refusing(cluster, SHARDS - 1, "webhook_subscriptions"),
        pytest.raises(psycopg.Error) as failed,
    ):
        conn.execute("SELECT * FROM orderdb.create_webhook_subscription(%s)", (url,))
    assert failed.value.sqlstate == "55000"
    assert "was not created: create it again" in (failed.value.diag.message_hint or "")
    assert on_every_shard(cluster, count, (url,)) == [[(0,)]] * SHARDS
    assert drift(cluster) == no_drift()
    with proxy(cluster) as conn:
        conn.execute("SELECT * FROM orderdb.create_webhook_subscription(%s)", (url,))
    assert on_every_shard(cluster, count, (url,)) == [[(1,)]] * SHARDS
    assert drift(cluster) == no_drift()


# -- per-warehouse configuration ----------------------------------------------------------------


def test_per_warehouse_configuration_lands_on_the_warehouse_shard(cluster: Cluster) -> None:  # noqa: F811
    warehouse, shard = 3101, 1
    pin(cluster, warehouse, shard)
    with proxy(cluster) as conn:
        conn.execute("SELECT orderdb.set_warehouse_location(%s, 22.54, 114.06)", (warehouse,))
        courier = conn.execute(
            "SELECT orderdb.add_courier(%s, 'Li', 22.55, 114.07, 5)", (warehouse,)
        ).fetchone()
        assert courier is not None and (courier[0] - 1) % 64 == shard
        conn.execute("SELECT orderdb.set_courier_available(%s, %s, false)", (warehouse, courier[0]))
        wms = conn.execute(
            "SELECT warehouse_id, connector, url, has_secret"
            " FROM orderdb.set_warehouse_wms(%s, 'sim', 'https://wms.example.com', 'pw')",
            (warehouse,),
        ).fetchall()
        split = conn.execute(
            "SELECT warehouse_id, sku, buckets, on_hand FROM orderdb.set_stock_buckets(%s,"
            " 'SKU-CFG', 4)",
            (warehouse,),
        ).fetchall()
        rebalanced = conn.execute(
            "SELECT buckets, on_hand, available FROM orderdb.rebalance_stock_buckets(%s,"
            " 'SKU-CFG')",
            (warehouse,),
        ).fetchall()
    assert [tuple(r) for r in wms] == [(warehouse, "sim", "https://wms.example.com", True)]
    assert [tuple(r) for r in split] == [(warehouse, "SKU-CFG", 4, 40)]
    assert [tuple(r) for r in rebalanced] == [(4, 40, 40)]
    expected: dict[str, tuple[Any, ...]] = {
        "SELECT lat, lon FROM orderdb.warehouse_locations WHERE warehouse_id = %s": (
            22.54,
            114.06,
        ),
        "SELECT name, available FROM orderdb.couriers WHERE warehouse_id = %s": ("Li", False),
        "SELECT connector, secret FROM orderdb.warehouse_wms WHERE warehouse_id = %s": (
            "sim",
            "pw",
        ),
        "SELECT count(*) FROM orderdb.stock_bucket_skus WHERE warehouse_id = %s": (1,),
    }
    for query, row in expected.items():
        found = on_every_shard(cluster, query, (warehouse,))
        want: list[list[Any]] = [[] for _ in range(SHARDS)]
        want[shard] = [row]
        if query.startswith("SELECT count(*)"):
            want = [[(0,)] for _ in range(SHARDS)]
            want[shard] = [row]
        assert found == want, query


def test_an_unmapped_warehouse_is_not_placed_by_configuration(cluster: Cluster) -> None:  # noqa: F811
    with proxy(cluster) as conn:
        for query in (
            "SELECT orderdb.set_warehouse_location(3199, 1, 1)",
            "SELECT orderdb.add_courier(3199, 'X', 1, 1, 1)",
            "SELECT * FROM orderdb.set_warehouse_wms(3199, 'sim')",
            "SELECT * FROM orderdb.set_stock_buckets(3199, 'SKU-CFG', 2)",
        ):
            with pytest.raises(psycopg.Error) as refused:
                conn.execute(query)
            assert refused.value.sqlstate == "OD004", query
        placed = conn.execute(
            "SELECT count(*) FROM orderdb_cluster.warehouses WHERE warehouse_id = 3199"
        ).fetchone()
    assert placed == (0,)


# -- bad input ----------------------------------------------------------------------------------

BAD_CALLS = [
    ("SELECT * FROM orderdb.set_integration('bad name!', 'carrier', %s)", (SECRET,)),
    ("SELECT * FROM orderdb.set_integration('cfg-bad', 'carrier', 'short')", ()),
    ("SELECT * FROM orderdb.set_carrier_polling('CFGBAD', interval '0')", ()),
    ("SELECT * FROM orderdb.create_webhook_subscription('ftp://x')", ()),
    ("SELECT * FROM orderdb.create_webhook_subscription('https://x', NULL, 'whsec_!!')", ()),
    ("SELECT * FROM orderdb.set_warehouse_wms(3102, 'Bad Connector')", ()),
    ("SELECT orderdb.set_warehouse_location(3102, 91, 0)", ()),
    ("SELECT orderdb.add_courier(3102, 'X', 1, 1, 1, true, 'not a phone')", ()),
    ("SELECT * FROM orderdb.set_stock_buckets(3102, 'SKU-CFG', 0)", ()),
    ("SELECT * FROM orderdb.rebalance_stock_buckets(3102, 'SKU-CFG')", ()),
]

#: what a bad call might write, counted on every shard
WRITTEN = (
    "SELECT (SELECT count(*) FROM orderdb.integrations),"
    " (SELECT count(*) FROM orderdb.carrier_polling),"
    " (SELECT count(*) FROM orderdb.webhook_subscriptions),"
    " (SELECT count(*) FROM orderdb.warehouse_wms),"
    " (SELECT count(*) FROM orderdb.warehouse_locations),"
    " (SELECT count(*) FROM orderdb.couriers),"
    " (SELECT count(*) FROM orderdb.stock_bucket_skus)"
)


@pytest.mark.parametrize(("query", "params"), BAD_CALLS)
def test_bad_input_is_refused_as_on_one_database_and_writes_nothing(
    cluster: Cluster,  # noqa: F811
    query: str,
    params: tuple[Any, ...],
) -> None:
    pin(cluster, 3102, 2)
    before = on_every_shard(cluster, WRITTEN)
    # one database: the warehouse's shard, in a transaction rolled back
    with psycopg.connect(cluster.shard_dsns[2]) as conn:
        with pytest.raises(psycopg.Error) as direct:
            conn.execute(query, params)
        conn.rollback()
    with proxy(cluster) as conn, pytest.raises(psycopg.Error) as proxied:
        conn.execute(query, params)
    assert proxied.value.sqlstate == direct.value.sqlstate
    assert proxied.value.sqlstate in ("22023", "OD004")
    assert proxied.value.diag.message_primary == direct.value.diag.message_primary
    assert proxied.value.diag.message_detail == direct.value.diag.message_detail
    assert on_every_shard(cluster, WRITTEN) == before


# -- sync-reference -----------------------------------------------------------------------------


def test_sync_reference_repairs_a_drifted_shard(cluster: Cluster) -> None:  # noqa: F811
    assert drift(cluster) == no_drift()
    with psycopg.connect(cluster.shard_dsns[2], autocommit=True) as conn:
        row = conn.execute(
            "SELECT carrier, normalized_status FROM orderdb.carrier_status_map LIMIT 1"
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO orderdb.carrier_status_map (carrier, carrier_status, normalized_status)"
            " VALUES (%s, 'SYNC-EXTRA', %s)",
            (row[0], row[1]),
        )
        conn.execute(
            "UPDATE orderdb.sla_rules SET threshold = interval '7 hours' WHERE rule = 'unpaid'"
        )
        conn.execute("DELETE FROM orderdb.kpi_thresholds WHERE metric = 'out_of_stock_rate'")
    with psycopg.connect(cluster.shard_dsns[1], autocommit=True) as conn:
        conn.execute(
            "UPDATE orderdb.customer_texts SET text = text || ' (edited)'"
            " WHERE (locale, kind, code) = (SELECT locale, kind, code FROM"
            " orderdb.customer_texts ORDER BY 1, 2, 3 LIMIT 1)"
        )
    assert drift(cluster) == {
        0: [],
        1: ["customer_texts"],
        2: ["carrier_status_map", "kpi_thresholds", "sla_rules"],
    }
    dry = run("cluster", "sync-reference", "--dsn", cluster.proxy_dsn, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    planned = {
        (s["shard"], t["table"]): (t["inserted"], t["updated"], t["deleted"])
        for s in json.loads(dry.stdout)["shards"]
        for t in s["tables"]
    }
    assert planned == {
        (1, "customer_texts"): (0, 1, 0),
        (2, "carrier_status_map"): (0, 0, 1),
        (2, "kpi_thresholds"): (1, 0, 0),
        (2, "sla_rules"): (0, 1, 0),
    }
    assert drift(cluster)[2] == ["carrier_status_map", "kpi_thresholds", "sla_rules"]
    done = run("cluster", "sync-reference", "--dsn", cluster.proxy_dsn)
    assert done.exit_code == 0, done.output
    assert "shard 2: committed" in done.stderr
    assert drift(cluster) == no_drift()
    assert (
        on_every_shard(
            cluster,
            "SELECT extract(epoch FROM threshold)::int FROM orderdb.sla_rules"
            " WHERE rule = 'unpaid'",
        )
        == [[(1800,)]] * SHARDS
    )
    again = run("cluster", "sync-reference", "--dsn", cluster.proxy_dsn, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["shards"] == []


def test_sync_reference_copies_a_webhook_subscription_with_its_id_and_secret(
    cluster: Cluster,  # noqa: F811
) -> None:
    # made on shard 0's DSN only (as before the proxy had create_webhook_subscription)
    with psycopg.connect(cluster.shard_dsns[0], autocommit=True) as conn:
        row = conn.execute(
            "SELECT * FROM orderdb.create_webhook_subscription('https://hooks.example.com/sync')"
        ).fetchone()
    assert row is not None
    sub_id, secret = row
    assert drift(cluster) == {0: [], 1: ["webhook_subscriptions"], 2: ["webhook_subscriptions"]}
    done = run("cluster", "sync-reference", "--dsn", cluster.proxy_dsn, "--json")
    assert done.exit_code == 0, done.output
    changes = {
        (s["shard"], t["table"]): (t["inserted"], t["updated"], t["deleted"])
        for s in json.loads(done.stdout)["shards"]
        for t in s["tables"]
    }
    assert changes == {
        (1, "webhook_subscriptions"): (1, 0, 0),
        (2, "webhook_subscriptions"): (1, 0, 0),
    }
    assert (
        on_every_shard(
            cluster,
            "SELECT subscription_id, secret FROM orderdb.webhook_subscriptions"
            " WHERE url = 'https://hooks.example.com/sync'",
        )
        == [[(sub_id, secret)]] * SHARDS
    )
    assert drift(cluster) == no_drift()
    # the copies do not disturb a shard's own ids: a subscription made through the proxy later
    with proxy(cluster) as conn:
        conn.execute("SELECT * FROM orderdb.create_webhook_subscription('https://h.example.com/n')")
    assert drift(cluster) == no_drift()


def test_sync_reference_refuses_what_it_cannot_do(cluster: Cluster) -> None:  # noqa: F811
    no_shard = run("cluster", "sync-reference", "--dsn", cluster.proxy_dsn, "--from-shard", "9")
    assert no_shard.exit_code == 2
    assert "no shard 9" in no_shard.stderr
    no_table = run("cluster", "sync-reference", "--dsn", cluster.proxy_dsn, "--table", "orders")
    assert no_table.exit_code == 2
    assert "not a reference table: orders" in no_table.stderr
    # a repair that a shard's own rows refuse is rolled back there (exit 1)
    with psycopg.connect(cluster.shard_dsns[0], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO orderdb.tracking_statuses (status, position, description)"
            " SELECT 'sync_only_here', max(position) + 100, 'only on shard 0'"
            " FROM orderdb.tracking_statuses"
        )
    try:
        with psycopg.connect(cluster.shard_dsns[1], autocommit=True) as conn:
            conn.execute(
                "ALTER TABLE orderdb.tracking_statuses ADD CONSTRAINT test_no_sync"
                " CHECK (status <> 'sync_only_here') NOT VALID"
            )
        failed = run("cluster", "sync-reference", "--dsn", cluster.proxy_dsn, "--json")
        assert failed.exit_code == 1, failed.output
        shards = {s["shard"]: s for s in json.loads(failed.stdout)["shards"]}
        assert "test_no_sync" in shards[1]["error"]
        assert shards[2]["error"] is None
        assert drift(cluster) == {0: [], 1: ["tracking_statuses"], 2: []}
    finally:
        with psycopg.connect(cluster.shard_dsns[1], autocommit=True) as conn:
            conn.execute("ALTER TABLE orderdb.tracking_statuses DROP CONSTRAINT test_no_sync")
        for dsn in cluster.shard_dsns:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    "DELETE FROM orderdb.tracking_statuses WHERE status = 'sync_only_here'"
                )
    assert drift(cluster) == no_drift()


# -- the command line through the proxy ---------------------------------------------------------


def test_configuration_commands_work_with_the_proxy_dsn(cluster: Cluster) -> None:  # noqa: F811
    dsn = cluster.proxy_dsn
    pin(cluster, 3103, 0)
    wms = run(
        "warehouses",
        "set-wms",
        "3103",
        "sim",
        "--url",
        "https://wms.example.com",
        "--json",
        "--dsn",
        dsn,
        env={"ORDERDB_WAREHOUSES_SET_WMS_SECRET": "wms-secret"},
    )
    assert wms.exit_code == 0, wms.output
    assert json.loads(wms.stdout)["has_secret"] is True
    listed = run("warehouses", "list", "--json", "--dsn", dsn)
    assert listed.exit_code == 0, listed.output
    assert [w["warehouse_id"] for w in json.loads(listed.stdout) if w["warehouse_id"] == 3103] == [
        3103
    ]
    assert "wms-secret" not in listed.stdout
    added = run(
        "integrations",
        "add",
        "cfg-cli",
        "--kind",
        "wms",
        "--dsn",
        dsn,
        env={"ORDERDB_INTEGRATIONS_ADD_SECRET": SECRET},
    )
    assert added.exit_code == 0, added.output
    assert (
        on_every_shard(cluster, "SELECT secret FROM orderdb.integrations WHERE name = 'cfg-cli'")
        == [[(SECRET,)]] * SHARDS
    )
    shown = run("integrations", "list", "--json", "--dsn", dsn)
    assert shown.exit_code == 0, shown.output
    assert "cfg-cli" in [i["name"] for i in json.loads(shown.stdout)]
    assert SECRET not in shown.stdout
    interval = run("integrations", "poll-interval", "CFGCLI", "120", "--dsn", dsn)
    assert interval.exit_code == 0, interval.output
    assert (
        on_every_shard(
            cluster,
            "SELECT extract(epoch FROM poll_interval)::int FROM orderdb.carrier_polling"
            " WHERE carrier = 'CFGCLI'",
        )
        == [[(120,)]] * SHARDS
    )
    removed = run("integrations", "remove", "cfg-cli", "--dsn", dsn)
    assert removed.exit_code == 0, removed.output
    assert (
        on_every_shard(cluster, "SELECT count(*) FROM orderdb.integrations WHERE name = 'cfg-cli'")
        == [[(0,)]] * SHARDS
    )
    gone = run("integrations", "remove", "cfg-cli", "--dsn", dsn)
    assert gone.exit_code == 3
    assert drift(cluster) == no_drift()
