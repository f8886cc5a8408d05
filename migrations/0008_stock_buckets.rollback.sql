-- Rollback of 0008_stock_buckets: the stock of every bucketed SKU goes back into its
-- orderdb.inventory row first (nothing is lost), then the tables go. orderdb.inventory_levels
-- and the views of sql/ that read it are dropped with them (CASCADE); orderdb.stock_level and
-- the reservation functions need `orderdb migrate` (without sql/25_stock_buckets.sql) again.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

UPDATE orderdb.inventory AS i
   SET on_hand = i.on_hand + b.on_hand, reserved = i.reserved + b.reserved, updated_at = now()
  FROM (SELECT sb.warehouse_id, sb.sku, sum(sb.on_hand)::integer AS on_hand,
               sum(sb.reserved)::integer AS reserved
          FROM orderdb.stock_buckets sb
         GROUP BY sb.warehouse_id, sb.sku) b
 WHERE i.warehouse_id = b.warehouse_id AND i.sku = b.sku;

-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.stock_buckets CASCADE;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.stock_bucket_skus CASCADE;
