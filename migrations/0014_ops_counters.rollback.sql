-- Rolls back 0014_ops_counters: the consumers' acknowledged-events counter (the view of
-- sql/ that reads it is dropped first and re-created by the next orderdb migrate).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- squawk-ignore ban-drop-view
DROP VIEW IF EXISTS orderdb_ops.activity_totals;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.event_consumers DROP COLUMN acked_events;
