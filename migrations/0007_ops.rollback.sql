-- Rollback of 0007_ops. The views and functions of sql/60_ops_*.sql and sql/65_ops_*.sql that read
-- these tables are dropped with them (CASCADE); `orderdb migrate` recreates them.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.sla_escalations CASCADE;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.stock_thresholds CASCADE;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.kpi_thresholds CASCADE;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.sla_rules CASCADE;
