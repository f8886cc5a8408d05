-- depends: 0003_events
--
-- Flash-sale stock: a SKU can keep its stock split across N bucket rows instead of its one
-- orderdb.inventory row, so that concurrent reservations of that SKU claim different rows
-- (FOR NO KEY UPDATE SKIP LOCKED) instead of queueing on one row lock until each order commits.
-- Switched per (warehouse, sku) with orderdb.set_stock_buckets (sql/25_stock_buckets.sql); off
-- by default (no row in stock_bucket_skus: the SKU lives in orderdb.inventory as before).
--
-- While a SKU is bucketed its orderdb.inventory row stays (it names the SKU, and locks in the
-- usual (warehouse_id, sku) order) with on_hand = reserved = 0; the stock is the sum of its
-- buckets. orderdb.inventory_levels (sql/25) adds the two for stock_level and the ops views.
--
-- Write pattern: every reservation updates one bucket row, thousands of times a second in a
-- sale. fillfactor 10 leaves room on each page for HOT updates and keeps about ten bucket rows
-- per page (not all of a SKU's buckets behind one buffer content lock); nothing indexes a
-- column that changes.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE IF NOT EXISTS orderdb.stock_bucket_skus (
    warehouse_id integer NOT NULL,
    sku          text COLLATE "C" NOT NULL,
    buckets      integer NOT NULL CHECK (buckets BETWEEN 2 AND 1024),
    actor        text CHECK (length(actor) <= 1000),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stock_bucket_skus_pkey PRIMARY KEY (warehouse_id, sku)
);

COMMENT ON TABLE orderdb.stock_bucket_skus IS
    'SKUs whose stock is split into buckets (flash sales): how many buckets; absent = not bucketed.';

CREATE TABLE IF NOT EXISTS orderdb.stock_buckets (
    warehouse_id integer NOT NULL,
    sku          text COLLATE "C" NOT NULL,
    bucket       integer NOT NULL,
    on_hand      integer NOT NULL DEFAULT 0,
    reserved     integer NOT NULL DEFAULT 0,
    CONSTRAINT stock_buckets_pkey PRIMARY KEY (warehouse_id, sku, bucket),
    CONSTRAINT stock_buckets_bucket_nonneg CHECK (bucket >= 0),
    CONSTRAINT stock_buckets_on_hand_nonneg CHECK (on_hand >= 0),
    CONSTRAINT stock_buckets_reserved_nonneg CHECK (reserved >= 0),
    CONSTRAINT stock_buckets_reserved_le_on_hand CHECK (reserved <= on_hand)
) WITH (
    fillfactor = 10,
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.2
);

COMMENT ON TABLE orderdb.stock_buckets IS
    'Stock of a bucketed SKU split into rows 0..buckets-1 (on_hand, reserved each); the SKU''s '
    'stock is their sum. Rows are locked in (warehouse_id, sku, bucket) order, after inventory rows.';
