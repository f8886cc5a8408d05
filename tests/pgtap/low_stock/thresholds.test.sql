-- low_stock lists skus whose available quantity is below their threshold: 10 by default,
-- orderdb.stock_thresholds per (warehouse, sku) otherwise; nothing available is critical.
BEGIN;
SELECT plan(5);

SELECT FROM orderdb.receive_stock(612, 'LS-OK', 10);
SELECT FROM orderdb.receive_stock(612, 'LS-LOW', 9);
SELECT FROM orderdb.receive_stock(612, 'LS-ZERO', 2);
SELECT FROM orderdb.create_order(1, 612, '[{"sku": "LS-ZERO", "quantity": 2}]');
SELECT FROM orderdb.receive_stock(612, 'LS-CUSTOM', 30);

SELECT results_eq(
    $$ SELECT sku COLLATE "default", available, threshold, level FROM orderdb_ops.low_stock WHERE warehouse_id = 612 ORDER BY sku $$,
    $$ VALUES ('LS-LOW'::text, 9, 10, 'warning'::text), ('LS-ZERO', 0, 10, 'critical') $$,
    'below the default threshold 10; 0 available is critical; exactly 10 is not low');

INSERT INTO orderdb.stock_thresholds (warehouse_id, sku, threshold) VALUES (612, 'LS-CUSTOM', 31), (612, 'LS-LOW', 5);
SELECT results_eq(
    $$ SELECT sku COLLATE "default", threshold FROM orderdb_ops.low_stock WHERE warehouse_id = 612 ORDER BY sku $$,
    $$ VALUES ('LS-CUSTOM'::text, 31), ('LS-ZERO', 10) $$,
    'a per-sku threshold overrides the default both ways');

UPDATE orderdb.kpi_thresholds SET warning = 3, critical = 1 WHERE metric = 'stock_available';
SELECT results_eq(
    $$ SELECT sku COLLATE "default", threshold FROM orderdb_ops.low_stock WHERE warehouse_id = 612 ORDER BY sku $$,
    $$ VALUES ('LS-CUSTOM'::text, 31), ('LS-ZERO', 3) $$,
    'the default comes from kpi_thresholds stock_available');

SELECT results_eq(
    $$ SELECT level, subject COLLATE "default" FROM orderdb_ops.alerts WHERE source = 'stock' AND subject LIKE 'warehouse 612 /%' ORDER BY subject $$,
    $$ VALUES ('warning'::text, 'warehouse 612 / LS-CUSTOM'::text), ('critical', 'warehouse 612 / LS-ZERO') $$,
    'each low sku is an alert');
SELECT columns_are('orderdb_ops', 'low_stock',
    ARRAY['warehouse_id', 'sku', 'available', 'threshold', 'on_hand', 'reserved', 'level', 'updated_at'],
    'contract columns first');

SELECT * FROM finish();
ROLLBACK;
