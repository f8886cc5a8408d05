-- order_funnel lists every status in lifecycle order with the number of orders in it (exact on a
-- small table, else a planner estimate), and the estimate path agrees with the count on a fully
-- sampled table. The counts are compared before and after this file's own orders, so rows already
-- in the database (a demo, production) do not matter: ANALYZE samples every row (statistics
-- target 10000: up to 3,000,000 orders; rolled back with the rest), so that the estimate a large
-- table gets is exact too.
BEGIN;
SELECT plan(5);

ALTER TABLE orderdb.orders ALTER COLUMN status SET STATISTICS 10000;
ANALYZE orderdb.orders;
CREATE TEMP TABLE funnel_before ON COMMIT DROP AS
SELECT status, orders FROM orderdb_ops.order_funnel;

SELECT FROM orderdb.receive_stock(1611611, 'OF-A', 50);
CREATE TEMP TABLE o ON COMMIT DROP AS
SELECT (orderdb.create_order(1, 1611611, '[{"sku": "OF-A", "quantity": 1}]')).order_id
  FROM generate_series(1, 4);
SELECT FROM (SELECT order_id FROM o ORDER BY order_id LIMIT 2) x,
            LATERAL orderdb.transition_order(x.order_id, 'confirmed', 1);
SELECT FROM orderdb.transition_order((SELECT max(order_id) FROM o), 'cancelled', 1);
ANALYZE orderdb.orders;

SELECT is((SELECT count(*)::integer FROM orderdb_ops.order_funnel), 15, 'every status is listed');
SELECT results_eq(
    $$ SELECT f.status, f.orders - b.orders
         FROM orderdb_ops.order_funnel f JOIN funnel_before b USING (status)
        WHERE f.status IN ('pending', 'confirmed', 'cancelled', 'shipped')
        ORDER BY f.position $$,
    $$ VALUES ('pending'::text, 1::bigint), ('confirmed', 2), ('shipped', 0), ('cancelled', 1) $$,
    'orders per status, lifecycle order: 1 more pending, 2 confirmed, 1 cancelled');
SELECT is((SELECT bool_or(estimated) FROM orderdb_ops.order_funnel),
          (SELECT reltuples >= 100000 FROM pg_catalog.pg_class
            WHERE oid = 'orderdb.orders'::regclass),
          'exact counts below 100,000 orders, an estimate from then on');

SELECT results_eq(
    $$ SELECT status, orders, estimated FROM orderdb._order_status_counts(0) WHERE status IN ('pending', 'confirmed', 'cancelled') ORDER BY status $$,
    $$ SELECT status::text, count(*), true FROM orderdb.orders WHERE status IN ('pending', 'confirmed', 'cancelled') GROUP BY status ORDER BY status $$,
    'the statistics estimate equals the count on a fully sampled table');
SELECT has_column('orderdb_ops', 'order_funnel', 'orders', 'contract column orders');

SELECT * FROM finish();
ROLLBACK;
