-- Rollback of 0016_auto_buckets: automatic stock buckets. Bucketed SKUs keep their buckets (they
-- become manual ones, orderdb.set_stock_buckets switches them off); the conflict log and the
-- policy go. The functions of sql/25_stock_buckets.sql that read the new columns need the
-- previous sql/ files (`orderdb migrate` of the older release).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- squawk-ignore ban-drop-view
DROP VIEW IF EXISTS orderdb_ops.stock_buckets;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.stock_bucket_policy;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.stock_lock_conflicts;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.stock_buckets DROP COLUMN IF EXISTS reservations;
-- squawk-ignore ban-drop-constraint
ALTER TABLE orderdb.stock_bucket_skus DROP CONSTRAINT IF EXISTS stock_bucket_skus_mode_check;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.stock_bucket_skus DROP COLUMN IF EXISTS seen_at;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.stock_bucket_skus DROP COLUMN IF EXISTS reservations_seen;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.stock_bucket_skus DROP COLUMN IF EXISTS bucketed_since;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.stock_bucket_skus DROP COLUMN IF EXISTS reason;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.stock_bucket_skus DROP COLUMN IF EXISTS mode;
