-- order_funnel lists every status in lifecycle order with the number of orders in it (exact on a
-- small table), and the estimate path agrees with the count on a fully sampled table.
BEGIN;
SELECT plan(5);

SELECT orderdb.receive_stock(611, 'OF-A', 50);
CREATE TEMP TABLE o AS
SELECT (orderdb.create_order(1, 611, '[{"sku": "OF-A", "quantity": 1}]')).order_id
  FROM generate_series(1, 4);
SELECT orderdb.transition_order(order_id, 'confirmed', 1) FROM (SELECT order_id FROM o ORDER BY order_id LIMIT 2) x;
SELECT orderdb.transition_order((SELECT max(order_id) FROM o), 'cancelled', 1);

SELECT is((SELECT count(*)::integer FROM orderdb_ops.order_funnel), 15, 'every status is listed');
SELECT results_eq(
    $$ SELECT status, orders FROM orderdb_ops.order_funnel WHERE status IN ('pending', 'confirmed', 'cancelled', 'shipped') $$,
    $$ VALUES ('pending'::text, 1::bigint), ('confirmed', 2), ('shipped', 0), ('cancelled', 1) $$,
    'orders per status, lifecycle order');
SELECT is((SELECT bool_or(estimated) FROM orderdb_ops.order_funnel), false, 'small table: exact counts');

ANALYZE orderdb.orders;
SELECT results_eq(
    $$ SELECT status, orders, estimated FROM orderdb._order_status_counts(0) WHERE status IN ('pending', 'confirmed', 'cancelled') ORDER BY status $$,
    $$ VALUES ('cancelled'::text, 1::bigint, true), ('confirmed', 2, true), ('pending', 1, true) $$,
    'the statistics estimate equals the count on a fully sampled table');
SELECT has_column('orderdb_ops', 'order_funnel', 'orders', 'contract column orders');

SELECT * FROM finish();
ROLLBACK;
