-- fulfillment_kpis: every KPI with its target and level; levels follow kpi_thresholds (max:
-- above is bad, min: below is bad; warning, then critical).
BEGIN;
SELECT plan(5);

SELECT results_eq(
    $$ SELECT metric, threshold, level FROM orderdb_ops.fulfillment_kpis ORDER BY metric $$,
    $$ VALUES ('avg_fulfillment_hours'::text, 48::numeric, 'ok'::text),
              ('delayed_shipment_rate', 0.05, 'ok'), ('delivery_failure_rate', 0.03, 'ok'),
              ('on_time_delivery_rate', 0.95, 'ok'), ('out_of_stock_rate', 0.02, 'ok') $$,
    'no orders: every KPI listed, nothing to judge');

SELECT orderdb.receive_stock(623, 'FK-A', 50);
-- 1 order of 2 gets a warehouse OUT_OF_STOCK exception: 50 % > 5 % critical
SELECT order_id AS a FROM orderdb.create_order(1, 623, '[{"sku": "FK-A", "quantity": 1}]') \gset
SELECT order_id AS b FROM orderdb.create_order(1, 623, '[{"sku": "FK-A", "quantity": 1}]') \gset
SELECT orderdb.transition_order(:a, 'confirmed', 1);
SELECT orderdb.wms_callback('fk-ex-1', :a, 'EXCEPTION', '{"exception_type": "OUT_OF_STOCK"}');
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
