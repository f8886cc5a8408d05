-- depends: 0010_ops_tracking_partitions 0010_ops_outbox_partitions 0011_customer_texts 0011_effective_times 0011_sla_late_delivery 0011_wms_event_source 0012_webhook_attempt_details 0013_order_data
--
-- Comments on what had none: the schemas orderdb and orderdb_ops, orderdb.stock_receipts, the
-- DEFAULT partitions, and the monthly partitions `orderdb maintain` made before it commented the
-- ones it makes (sql/65_ops_maintain.sql). Every schema, table and view of orderdb and
-- orderdb_ops has a comment from here on (tests/pgtap/schema/comments.test.sql). Catalog only.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

COMMENT ON SCHEMA orderdb IS
    'orderdb: the order-fulfillment and tracking engine (tables, and the API functions that are '
    'the only way applications change them; see docs/contract.md).';
COMMENT ON SCHEMA orderdb_ops IS
    'orderdb operator views (SLA breaches, KPIs, alerts, stock, relay and server health), '
    'readable by role orderdb_ops; see docs/operations.md.';

COMMENT ON TABLE orderdb.stock_receipts IS
    'Append-only record of goods received per (warehouse_id, sku): quantity, actor, time '
    '(orderdb.receive_stock).';

COMMENT ON TABLE orderdb.outbox_default IS
    'DEFAULT partition of orderdb.outbox: events outside every monthly partition (orderdb '
    'maintain moves them into the month''s partition when it makes it).';
COMMENT ON TABLE orderdb.order_status_history_default IS
    'DEFAULT partition of orderdb.order_status_history: rows outside every monthly partition '
    '(orderdb maintain moves them into the month''s partition when it makes it).';
COMMENT ON TABLE orderdb.tracking_events_default IS
    'DEFAULT partition of orderdb.tracking_events: rows outside every monthly partition '
    '(orderdb maintain moves them into the month''s partition when it makes it).';

DO $comments$
DECLARE
    v_part record;
BEGIN
    FOR v_part IN
        SELECT c.relname::text AS part, p.relname::text AS parent,
               pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'orderdb'
          JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid
          JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
         WHERE c.relispartition
           AND c.relkind IN ('r', 'p')
           AND pg_catalog.obj_description(c.oid, 'pg_class') IS NULL
         ORDER BY 1
    LOOP
        EXECUTE format('COMMENT ON TABLE orderdb.%I IS %L', v_part.part,
                       format('Partition of orderdb.%s: %s, made by orderdb maintain.',
                              v_part.parent, v_part.bound));
    END LOOP;
END;
$comments$;
