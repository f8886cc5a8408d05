-- Rollback of 0016_perf_indexes: the B-tree on orders (created_at) of 0007_ops_indexes again.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS orders_created_at ON orderdb.orders (created_at);
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX IF EXISTS orderdb.orders_created_at_brin;
