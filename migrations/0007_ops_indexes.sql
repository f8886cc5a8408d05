-- depends: 0007_ops
--
-- Operations: the one index the ops views add to the hot path.
--
-- orders (created_at): created_at is written once, at insert, and never updated, so this index
-- keeps every status change HOT (an index on status, version or updated_at would not: DESIGN
-- principle 7). It lets fulfillment_kpis read the orders of its window, and sla_breaches the
-- orders of each rule's horizon, by range scan: their cost follows the order rate, not the size
-- of the history (docs/operations.md, "Cost"). Price: one index entry per created order.
--
-- Not CONCURRENTLY: `orderdb migrate` serialises concurrent runs on a session advisory lock, and
-- a run waiting for that lock holds a snapshot that CREATE INDEX CONCURRENTLY would wait for
-- (until lock_timeout). The plain build blocks writes to orders while it runs (about a second
-- per million orders). On a large live database build it beforehand, and this migration then
-- finds it:  CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_created_at ON orderdb.orders (created_at);

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS orders_created_at ON orderdb.orders (created_at);
