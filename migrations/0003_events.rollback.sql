-- Rollback of 0003_events. The view orderdb_ops.relay_lag reads the dropped columns and is dropped
-- first; the functions of sql/50_events.sql stay defined but unusable until `orderdb migrate`.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
-- squawk-ignore ban-drop-view
DROP VIEW IF EXISTS orderdb_ops.relay_lag;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.webhook_attempts;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.webhook_deliveries;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.webhook_subscriptions;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.event_consumers DROP COLUMN IF EXISTS read_at;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.event_consumers DROP COLUMN IF EXISTS acked_at;
