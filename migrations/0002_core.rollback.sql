-- Rollback of 0002_core. Views of sql/ that read these tables are dropped with them (CASCADE);
-- `orderdb migrate` recreates them. Functions of sql/ stay defined but unusable until re-migrated.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
-- squawk-ignore ban-drop-view
DROP VIEW IF EXISTS orderdb_ops.inventory_drift;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.order_status_history CASCADE;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.order_lines CASCADE;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.orders CASCADE;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.order_directory CASCADE;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.stock_receipts CASCADE;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.inventory CASCADE;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.warehouses CASCADE;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.order_transitions CASCADE;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.order_statuses CASCADE;
