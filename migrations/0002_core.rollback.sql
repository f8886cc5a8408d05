-- Rollback of 0002_core. Views of sql/ that read these tables are dropped with them (CASCADE);
-- `orderdb migrate` recreates them. Functions of sql/ stay defined but unusable until re-migrated.
DROP VIEW IF EXISTS orderdb_ops.inventory_drift;
DROP TABLE IF EXISTS orderdb.order_status_history CASCADE;
DROP TABLE IF EXISTS orderdb.order_lines CASCADE;
DROP TABLE IF EXISTS orderdb.orders CASCADE;
DROP TABLE IF EXISTS orderdb.order_directory CASCADE;
DROP TABLE IF EXISTS orderdb.stock_receipts CASCADE;
DROP TABLE IF EXISTS orderdb.inventory CASCADE;
DROP TABLE IF EXISTS orderdb.warehouses CASCADE;
DROP TABLE IF EXISTS orderdb.order_transitions CASCADE;
DROP TABLE IF EXISTS orderdb.order_statuses CASCADE;
