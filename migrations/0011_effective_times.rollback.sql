-- Rollback of 0011_effective_times: the history loses effective_at (occurred_at, as reported,
-- was never changed). `orderdb migrate` re-applies the migration and refills it.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.order_status_history DROP COLUMN IF EXISTS effective_at;
