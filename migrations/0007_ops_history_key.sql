-- depends: 0007_ops_retention
--
-- Step 1 of partitioning orderdb.order_status_history by month (step 2: 0007_ops_history_partitions):
-- the primary key of a partitioned table must contain the partition key (changed_at), so the
-- existing table gets its future key as a unique index first.
--
-- Not CONCURRENTLY, for the reason given in 0007_ops_indexes (concurrent `orderdb migrate` runs
-- hold snapshots CREATE INDEX CONCURRENTLY would wait for). On a large live database build it
-- beforehand and this migration finds it:
--   CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS order_status_history_part_key
--       ON orderdb.order_status_history (warehouse_id, order_id, version, changed_at);

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX IF NOT EXISTS order_status_history_part_key
    ON orderdb.order_status_history (warehouse_id, order_id, version, changed_at);
