-- fulfillment_kpis: every KPI with its target and level; levels follow kpi_thresholds (max:
-- above is bad, min: below is bad; warning, then critical). Every KPI window is shrunk to the
-- present moment (rolled back with the rest), so only this file's orders, created now, count, and
-- orders already in the database (a demo, production) do not.
BEGIN;
SELECT plan(5);

UPDATE orderdb.kpi_thresholds SET window_size = interval '1 microsecond'
 WHERE category = 'fulfillment';
SELECT results_eq(
    $$ SELECT metric, value, sample, level FROM orderdb_ops.fulfillment_kpis ORDER BY metric $$,
    $$ VALUES ('avg_fulfillment_hours'::text, NULL::numeric, 0::bigint, 'ok'::text),
              ('delayed_shipment_rate', NULL, 0, 'ok'), ('delivery_failure_rate', NULL, 0, 'ok'),
              ('on_time_delivery_rate', NULL, 0, 'ok'), ('out_of_stock_rate', NULL, 0, 'ok') $$,
    'no orders in the window: every KPI listed, nothing to judge');

UPDATE orderdb.kpi_thresholds SET warning = 0.02, critical = 0.05 WHERE metric = 'out_of_stock_rate';
SELECT FROM orderdb.receive_stock(1623623, 'FK-A', 50);
-- 1 order of 2 gets a warehouse OUT_OF_STOCK exception: 50 % > 5 % critical
SELECT order_id AS a FROM orderdb.create_order(1, 1623623, '[{"sku": "FK-A", "quantity": 1}]') \gset
SELECT order_id AS b FROM orderdb.create_order(1, 1623623, '[{"sku": "FK-A", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:a, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('fk-ex-1', :a, 'EXCEPTION', '{"exception_type": "OUT_OF_STOCK"}');
SELECT results_eq(
    $$ SELECT value, sample, level FROM orderdb_ops.fulfillment_kpis WHERE metric = 'out_of_stock_rate' $$,
    $$ VALUES (0.5000::numeric, 2::bigint, 'critical'::text) $$,
    'out_of_stock_rate counts orders with an OUT_OF_STOCK exception');

UPDATE orderdb.kpi_thresholds SET warning = 0.4, critical = 0.6 WHERE metric = 'out_of_stock_rate';
SELECT is((SELECT level FROM orderdb_ops.fulfillment_kpis WHERE metric = 'out_of_stock_rate'), 'warning',
          'between warning and critical: warning');
SELECT is(orderdb._ops_level(0.91, 'min', 0.95, 0.90), 'warning', 'min direction: below target is a warning');
SELECT is(orderdb._ops_level(0.89, 'min', 0.95, 0.90), 'critical', 'min direction: below critical');

SELECT * FROM finish();
ROLLBACK;
