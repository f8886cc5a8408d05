-- alerts unites KPI and SLA breaches, low stock and inventory drift (and the health sources,
-- tested in tests/test_ops_health.py with real sessions). Scoped to this file's own rows, so data
-- already in the database (a demo, production) does not matter: its own warehouse, KPI windows
-- shrunk to the present (only orders created now count), and an unpaid order older than every
-- unpaid breach already there.
BEGIN;
SELECT plan(4);

UPDATE orderdb.kpi_thresholds SET window_size = interval '1 microsecond'
 WHERE category = 'fulfillment';
SELECT least(now() - interval '2 days', min(breached_since) - interval '1 day') AS due,
       count(*) + 1 AS breaches,
       count(*) FILTER (WHERE level = 'critical') + 1 AS critical
  FROM orderdb_ops.sla_breaches WHERE rule = 'unpaid' \gset

SELECT FROM orderdb.receive_stock(1624624, 'AL-A', 50);
SELECT FROM orderdb.receive_stock(1624624, 'AL-LOW', 2);
SELECT order_id AS u FROM orderdb.create_order(1, 1624624, '[{"sku": "AL-A", "quantity": 1}]',
       p_options => jsonb_build_object('payment_due_by', :'due'::timestamptz)) \gset

SELECT results_eq(
    $$ SELECT source, subject COLLATE "default", level FROM orderdb_ops.alerts
        WHERE source = 'kpi' OR (source = 'sla' AND subject = 'unpaid')
           OR (source = 'stock' AND subject LIKE 'warehouse 1624624 / %')
        ORDER BY source, subject $$,
    $$ VALUES ('sla'::text, 'unpaid'::text, 'critical'::text), ('stock', 'warehouse 1624624 / AL-LOW', 'warning') $$,
    'an SLA breach (2 days unpaid: critical) and a low sku');
SELECT matches((SELECT message FROM orderdb_ops.alerts WHERE source = 'sla' AND subject = 'unpaid'),
               format('^%s order\(s\) breach unpaid \(%s critical\); oldest: %s(,|$)',
                      :breaches, :critical, :u),
               'the SLA alert names the oldest orders');
SELECT is((SELECT since FROM orderdb_ops.alerts WHERE source = 'sla' AND subject = 'unpaid'),
          :'due'::timestamptz, 'since: the oldest breach');

UPDATE orderdb.inventory SET reserved = reserved + 1 WHERE warehouse_id = 1624624 AND sku = 'AL-A';
SELECT is((SELECT level FROM orderdb_ops.alerts
            WHERE source = 'inventory_drift' AND subject = 'warehouse 1624624 / AL-A'), 'critical',
          'counter/ledger drift is critical');

SELECT * FROM finish();
ROLLBACK;
