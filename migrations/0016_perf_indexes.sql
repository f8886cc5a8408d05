-- depends: 0014_comments 0014_ops_counters 0015_consumer_groups
--
-- Fewer ever-increasing B-tree entries per order: orders (created_at) becomes a BRIN index.
--
-- created_at is only ever read by ranges (fulfillment_kpis, sla_breaches, board_snapshot: the
-- orders of a window or a rule's horizon), never looked up by value nor sorted through the
-- index, and rows are inserted in creation order, so the heap is correlated with it: a BRIN
-- index (one summary per 32 heap pages) answers those ranges with a bitmap scan of the pages
-- that can hold them. A B-tree put every new order into its right-most leaf, the page all
-- concurrent create_order calls contend for; a BRIN index is written only when a new range of
-- pages starts (or by autovacuum's summarisation). created_at never changes: status changes stay
-- HOT. Measured: docs/benchmarks.md, "What each change measured".
--
-- Not CONCURRENTLY (as 0007_ops_indexes): `orderdb migrate` serialises concurrent runs on a
-- session advisory lock, and a run waiting for that lock holds a snapshot that CREATE INDEX
-- CONCURRENTLY would wait for. A BRIN build reads the table once and writes a few pages (well
-- under a second per million orders); dropping the B-tree takes an exclusive lock on orders for
-- a moment (lock_timeout 5 s). On a large live database build it beforehand, and this migration
-- then finds it:
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_created_at_brin ON orderdb.orders
--       USING brin (created_at) WITH (pages_per_range = 32);
--   DROP INDEX CONCURRENTLY IF EXISTS orderdb.orders_created_at;

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS orders_created_at_brin ON orderdb.orders
    USING brin (created_at) WITH (pages_per_range = 32);

-- squawk-ignore require-concurrent-index-deletion
DROP INDEX IF EXISTS orderdb.orders_created_at;

COMMENT ON INDEX orderdb.orders_created_at_brin IS
    'Orders by creation time, for range scans (KPI windows, SLA horizons, the board); BRIN: no '
    'right-most B-tree leaf on the create path.';
