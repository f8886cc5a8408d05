-- Rollback of 0007_ops_history_key (after 0007_ops_history_partitions was rolled back, which
-- leaves the index in place for this step).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX IF EXISTS orderdb.order_status_history_part_key;
