-- Rollback of 0007_ops_indexes.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX IF EXISTS orderdb.orders_created_at;
