-- alerts unites KPI and SLA breaches, low stock and inventory drift (and the health sources,
-- tested in tests/test_ops_health.py with real sessions).
BEGIN;
SELECT plan(4);

SELECT orderdb.receive_stock(624, 'AL-A', 50);
SELECT orderdb.receive_stock(624, 'AL-LOW', 2);
SELECT order_id AS u FROM orderdb.create_order(1, 624, '[{"sku": "AL-A", "quantity": 1}]',
       p_options => jsonb_build_object('payment_due_by', now() - interval '2 days')) \gset

SELECT results_eq(
    $$ SELECT source, subject COLLATE "default", level FROM orderdb_ops.alerts WHERE source IN ('sla', 'stock', 'kpi') ORDER BY source, subject $$,
    $$ VALUES ('sla'::text, 'unpaid'::text, 'critical'::text), ('stock', 'warehouse 624 / AL-LOW', 'warning') $$,
    'an SLA breach (2 days unpaid: critical) and a low sku');
SELECT ok((SELECT message LIKE '1 order(s) breach unpaid (1 critical); oldest: ' || :u
             FROM orderdb_ops.alerts WHERE source = 'sla'), 'the SLA alert names the oldest orders');
SELECT is((SELECT since FROM orderdb_ops.alerts WHERE source = 'sla'), now() - interval '2 days',
          'since: the oldest breach');

UPDATE orderdb.inventory SET reserved = reserved + 1 WHERE warehouse_id = 624 AND sku = 'AL-A';
SELECT is((SELECT level FROM orderdb_ops.alerts WHERE source = 'inventory_drift'), 'critical',
          'counter/ledger drift is critical');

SELECT * FROM finish();
ROLLBACK;
