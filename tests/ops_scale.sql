-- Scale check of the orderdb_ops views: bulk-loads :scale orders (default 1,000,000) with their
-- history, lines, shipments, carrier and WMS events straight into the tables (INSERT ... SELECT
-- generate_series; no business functions, so it takes minutes, not hours), then EXPLAIN ANALYZEs
-- every ops view. Run it on a freshly migrated scratch database, never on a real one:
--
--   createdb ops_scale && orderdb migrate --dsn postgresql:///ops_scale
--   psql -X -v scale=1000000 -d ops_scale -f tests/ops_scale.sql
--
-- Shape: orders spread evenly over the last 365 days (so a 7-day KPI window holds ~2 % of them,
-- a 90-day SLA horizon ~25 %); orders older than 10 days are finished (completed, cancelled,
-- returned), newer ones sit in every status; 10 warehouses x 1,000 skus; one line per order;
-- status history with the milestones the views read (confirmed, shipped, delivering, delivered,
-- completed / cancelled / delivery_failed); one shipment, one tracking number and two carrier
-- events per shipped order; one WMS event per shipped order. tests/test_ops_scale.py runs this
-- script with a small scale to keep it working; docs/operations.md records the 1M figures.

\set ON_ERROR_STOP on
\if :{?scale}
\else
\set scale 1000000
\endif
\timing on
-- -v skip_load=1: only the EXPLAINs, on data loaded before
\if :{?skip_load}
\else

SET client_min_messages = warning;
-- the load: one transaction per table, no WAL-heavy per-row work
SET synchronous_commit = off;

TRUNCATE orderdb.orders, orderdb.order_directory, orderdb.order_lines,
         orderdb.order_status_history, orderdb.shipments, orderdb.tracking_numbers,
         orderdb.tracking_events, orderdb.wms_events, orderdb.inventory, orderdb.warehouses,
         orderdb.outbox, orderdb.sla_escalations, orderdb.stock_receipts;

INSERT INTO orderdb.warehouses (warehouse_id) SELECT w FROM generate_series(1, 10) w;
INSERT INTO orderdb.inventory (warehouse_id, sku, on_hand, reserved)
SELECT w, 'SKU-' || lpad(s::text, 5, '0'), 1000 + (s % 50), 0
  FROM generate_series(1, 10) w, generate_series(1, 1000) s;

-- one row per order: id, warehouse, creation time and the status it has reached
CREATE TEMP TABLE gen AS
SELECT g AS order_id,
       1 + (g % 10) AS warehouse_id,
       now() - make_interval(secs => (:scale - g)::double precision * 365 * 86400 / :scale)
           AS created_at,
       CASE
         WHEN (:scale - g)::double precision / :scale * 365 > 10 THEN
           CASE WHEN g % 100 < 90 THEN 'completed' WHEN g % 100 < 96 THEN 'cancelled'
                WHEN g % 100 < 98 THEN 'returned' ELSE 'delivered' END
         ELSE (ARRAY['pending', 'confirmed', 'dispatched', 'picked', 'packed', 'shipped',
                     'delivering', 'delivered', 'completed', 'delivery_failed', 'on_hold',
                     'cancelled'])[1 + g % 12]
       END AS status
  FROM generate_series(1, :scale) g;

INSERT INTO orderdb.order_directory (order_id, warehouse_id, order_no)
SELECT order_id, warehouse_id, 'ORD' || to_char(created_at, 'YYYYMMDD') || lpad(order_id::text, 8, '0')
  FROM gen;
SELECT setval('orderdb.order_id_seq', :scale);

INSERT INTO orderdb.orders (warehouse_id, order_id, order_no, customer_id, status, version,
                            options, created_at, updated_at)
SELECT warehouse_id, order_id, 'ORD' || to_char(created_at, 'YYYYMMDD') || lpad(order_id::text, 8, '0'),
       1 + order_id % 50000, status, 6,
       CASE WHEN order_id % 7 = 0
            THEN jsonb_build_object('promised_ship_at', created_at + interval '2 days')
            ELSE '{}'::jsonb END,
       created_at, created_at
  FROM gen;

INSERT INTO orderdb.order_lines (warehouse_id, order_id, sku, line_no, quantity, unit_price,
                                 qty_held, qty_consumed, qty_released)
SELECT warehouse_id, order_id, 'SKU-' || lpad((1 + order_id % 1000)::text, 5, '0'), 1, 1, 9.90,
       CASE WHEN status IN ('pending', 'confirmed', 'dispatched', 'picked', 'packed', 'on_hold')
            THEN 1 ELSE 0 END,
       CASE WHEN status IN ('pending', 'confirmed', 'dispatched', 'picked', 'packed', 'on_hold',
                            'cancelled') THEN 0 ELSE 1 END,
       CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END
  FROM gen;

-- receipts so that on_hand = received - consumed (the inventory_drift ledger check)
INSERT INTO orderdb.stock_receipts (warehouse_id, sku, quantity, actor, received_at)
SELECT i.warehouse_id, i.sku, i.on_hand + coalesce(c.consumed, 0), 'scale', now() - interval '366 days'
  FROM orderdb.inventory i
  LEFT JOIN (SELECT warehouse_id, sku, sum(qty_consumed)::integer AS consumed
               FROM orderdb.order_lines GROUP BY warehouse_id, sku) c
    ON c.warehouse_id = i.warehouse_id AND c.sku = i.sku;

UPDATE orderdb.inventory i
   SET reserved = h.held
  FROM (SELECT warehouse_id, sku, sum(qty_held)::integer AS held
          FROM orderdb.order_lines GROUP BY warehouse_id, sku) h
 WHERE h.warehouse_id = i.warehouse_id AND h.sku = i.sku;

-- status history: the milestones the views read, each after the previous one
INSERT INTO orderdb.order_status_history (warehouse_id, order_id, version, from_status,
                                          to_status, source, occurred_at, changed_at)
SELECT g.warehouse_id, g.order_id, m.version, m.from_status, m.to_status, 'scale',
       g.created_at + m.after, g.created_at + m.after
  FROM gen g
  JOIN LATERAL (VALUES
        (2, 'pending', 'confirmed', interval '10 minutes',
         g.status NOT IN ('pending')),
        (3, 'confirmed', 'shipped', interval '20 hours',
         g.status IN ('shipped', 'delivering', 'delivered', 'completed', 'delivery_failed',
                      'returned')),
        (4, 'shipped', 'delivering', interval '30 hours',
         g.status IN ('delivering', 'delivered', 'completed', 'delivery_failed', 'returned')),
        (5, 'delivering', CASE WHEN g.status = 'delivery_failed' THEN 'delivery_failed'
                               ELSE 'delivered' END, interval '40 hours',
         g.status IN ('delivered', 'completed', 'delivery_failed', 'returned')),
        (6, 'delivered', 'completed', interval '10 days', g.status = 'completed'),
        (6, 'confirmed', 'cancelled', interval '1 hour', g.status = 'cancelled'),
        (6, 'delivered', 'returned', interval '12 days', g.status = 'returned'),
        (6, 'confirmed', 'on_hold', interval '2 hours', g.status = 'on_hold')
       ) AS m(version, from_status, to_status, after, applies) ON m.applies;

-- shipments, tracking numbers, two carrier events and one WMS event per shipped order
INSERT INTO orderdb.shipments (warehouse_id, order_id, carrier, tracking_number, status,
                               shipped_at, delivered_at, last_event_time, created_at, updated_at)
SELECT g.warehouse_id, g.order_id, 'SF', 'SF' || lpad(g.order_id::text, 12, '0'),
       CASE WHEN g.status IN ('delivered', 'completed', 'returned') THEN 'delivered'
            ELSE 'in_transit' END,
       g.created_at + interval '20 hours',
       CASE WHEN g.status IN ('delivered', 'completed', 'returned')
            THEN g.created_at + interval '40 hours' END,
       g.created_at + interval '40 hours', g.created_at + interval '20 hours',
       g.created_at + interval '40 hours'
  FROM gen g
 WHERE g.status IN ('shipped', 'delivering', 'delivered', 'completed', 'delivery_failed',
                    'returned');

INSERT INTO orderdb.tracking_numbers (carrier, tracking_number, warehouse_id, shipment_id, order_id)
SELECT s.carrier, s.tracking_number, s.warehouse_id, s.shipment_id, s.order_id
  FROM orderdb.shipments s;

INSERT INTO orderdb.tracking_events (carrier, tracking_number, event_time, carrier_status,
                                     normalized_status, location, warehouse_id, order_id,
                                     shipment_id, received_at, matched_at)
SELECT s.carrier, s.tracking_number, s.shipped_at + e.after, e.code, e.status, 'Shenzhen',
       s.warehouse_id, s.order_id, s.shipment_id, s.shipped_at + e.after, s.shipped_at + e.after
  FROM orderdb.shipments s
 CROSS JOIN LATERAL (VALUES ('54', 'in_transit', interval '2 hours', true),
                            ('80', 'delivered', interval '20 hours',
                             s.delivered_at IS NOT NULL)) AS e(code, status, after, applies)
 WHERE e.applies;

INSERT INTO orderdb.wms_events (event_id, warehouse_id, order_id, event_type, payload,
                                occurred_at, outcome, received_at)
SELECT 'wms-' || s.order_id, s.warehouse_id, s.order_id, 'SHIPPED',
       jsonb_build_object('carrier', s.carrier, 'tracking_number', s.tracking_number),
       s.shipped_at, 'applied', s.shipped_at
  FROM orderdb.shipments s;

DROP TABLE gen;
RESET synchronous_commit;
VACUUM ANALYZE orderdb.orders, orderdb.order_directory, orderdb.order_lines,
               orderdb.order_status_history, orderdb.shipments, orderdb.tracking_numbers,
               orderdb.tracking_events, orderdb.wms_events, orderdb.inventory;

\endif

SELECT relname, n_live_tup FROM pg_stat_user_tables
 WHERE schemaname = 'orderdb' AND n_live_tup > 0 ORDER BY n_live_tup DESC;

-- ------------------------------------------------------------------------------------------
-- The views. Each: EXPLAIN (ANALYZE, BUFFERS) of what an operator (or the exporter) runs.
-- sla_breaches, fulfillment_kpis and alerts are wrappers over functions (JIT off); with
-- -v inner=1 auto_explain also prints the plans inside those functions (needs a superuser).
-- ------------------------------------------------------------------------------------------
\if :{?inner}
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_timing = on;
SET auto_explain.log_nested_statements = on;
SET client_min_messages = log;
\endif
\echo '=== order_funnel'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM orderdb_ops.order_funnel;
\echo '=== sla_breaches'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM orderdb_ops.sla_breaches;
\echo '=== fulfillment_kpis'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM orderdb_ops.fulfillment_kpis;
\echo '=== low_stock'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM orderdb_ops.low_stock;
\echo '=== table_health'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM orderdb_ops.table_health;
\echo '=== lock_waits'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM orderdb_ops.lock_waits;
\echo '=== long_transactions'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM orderdb_ops.long_transactions;
\echo '=== server_health'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM orderdb_ops.server_health;
\echo '=== alerts'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM orderdb_ops.alerts;
\echo '=== sla_check (first run escalates; rolled back)'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM orderdb.sla_check();
ROLLBACK;

-- the figures, for docs/operations.md
RESET client_min_messages;
\echo '=== results'
SELECT status, orders, estimated FROM orderdb_ops.order_funnel;
SELECT rule, count(*), min(breached_since) FROM orderdb_ops.sla_breaches GROUP BY rule ORDER BY rule;
SELECT metric, value, threshold, level, sample FROM orderdb_ops.fulfillment_kpis;
SELECT source, count(*) FROM orderdb_ops.alerts GROUP BY source ORDER BY source;
