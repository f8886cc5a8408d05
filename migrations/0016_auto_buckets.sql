-- depends: 0014_comments 0014_ops_counters 0015_consumer_groups
--
-- Automatic flash-sale stock: a SKU whose inventory row keeps other reservations waiting is split
-- into stock buckets by itself (sql/25_stock_buckets.sql, orderdb._note_stock_conflict), and
-- merged back into its one row by `orderdb maintain` once it has cooled down
-- (orderdb._merge_cooled_stock_buckets). orderdb.set_stock_buckets stays the manual switch: a
-- SKU set by hand is never merged automatically.
--
--   * stock_bucket_skus gains mode ('manual' | 'automatic'), reason (why it was split),
--     bucketed_since, and the reservation count / time of the last cool-down check
--     (reservations_seen, seen_at);
--   * stock_buckets gains reservations: the reservations each bucket served (incremented in the
--     update that reserves, so it costs no extra row write; the cool-down check reads the rate);
--   * stock_lock_conflicts: one row per reservation that found a plain SKU's inventory row held
--     by another transaction (append-only, unlogged: a crash forgets recent conflicts, which only
--     delays a split); the SKU's rows go when it is split, older ones with `orderdb maintain`;
--   * stock_bucket_policy: the thresholds (one row; "thresholds are data").
-- Adding columns with constant defaults rewrites nothing; new tables take no lock on old ones.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

ALTER TABLE orderdb.stock_bucket_skus
    ADD COLUMN IF NOT EXISTS mode text NOT NULL DEFAULT 'manual',
    ADD COLUMN IF NOT EXISTS reason text,
    ADD COLUMN IF NOT EXISTS bucketed_since timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS reservations_seen bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS seen_at timestamptz NOT NULL DEFAULT now();

-- NOT VALID: no scan (rows written before this migration hold the defaults)
DO $constraints$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c
                    WHERE c.conrelid = 'orderdb.stock_bucket_skus'::regclass
                      AND c.conname = 'stock_bucket_skus_mode_check') THEN
        ALTER TABLE orderdb.stock_bucket_skus
            ADD CONSTRAINT stock_bucket_skus_mode_check
            CHECK (mode IN ('manual', 'automatic') AND length(reason) <= 1000) NOT VALID;
    END IF;
END;
$constraints$;

COMMENT ON COLUMN orderdb.stock_bucket_skus.mode IS
    'manual: set with orderdb.set_stock_buckets (never merged automatically); automatic: split '
    'because of lock conflicts, merged back by orderdb maintain once cool.';
COMMENT ON COLUMN orderdb.stock_bucket_skus.reason IS
    'Why the SKU is bucketed, e.g. "16 lock conflicts in 10 s" (NULL for a manual switch).';
COMMENT ON COLUMN orderdb.stock_bucket_skus.reservations_seen IS
    'Sum of the buckets'' reservations at seen_at (the last cool-down check, or the split).';

ALTER TABLE orderdb.stock_buckets
    ADD COLUMN IF NOT EXISTS reservations bigint NOT NULL DEFAULT 0;

COMMENT ON COLUMN orderdb.stock_buckets.reservations IS
    'Reservations this bucket served since the SKU was bucketed (the cool-down check reads it).';

CREATE UNLOGGED TABLE IF NOT EXISTS orderdb.stock_lock_conflicts (
    warehouse_id integer NOT NULL,
    sku          text COLLATE "C" NOT NULL,
    noted_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX IF NOT EXISTS stock_lock_conflicts_sku_idx
    ON orderdb.stock_lock_conflicts (warehouse_id, sku, noted_at);

COMMENT ON TABLE orderdb.stock_lock_conflicts IS
    'One row per reservation that found a plain SKU''s inventory row held by another transaction '
    '(unlogged, append-only): enough of them in a short window split the SKU into buckets.';

CREATE TABLE IF NOT EXISTS orderdb.stock_bucket_policy (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    enabled          boolean NOT NULL DEFAULT true,
    split_conflicts  integer NOT NULL DEFAULT 16 CHECK (split_conflicts >= 1),
    split_window     interval NOT NULL DEFAULT interval '10 seconds'
                     CHECK (split_window > interval '0'),
    buckets          integer NOT NULL DEFAULT 32 CHECK (buckets BETWEEN 2 AND 1024),
    merge_below_rate numeric NOT NULL DEFAULT 5 CHECK (merge_below_rate >= 0),
    merge_after      interval NOT NULL DEFAULT interval '10 minutes'
                     CHECK (merge_after >= interval '0'),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE orderdb.stock_bucket_policy IS
    'Automatic stock buckets (one row): split a plain SKU after split_conflicts lock conflicts '
    'within split_window into buckets buckets; orderdb maintain merges an automatic SKU back when '
    'it served fewer than merge_below_rate reservations per second over at least merge_after.';

INSERT INTO orderdb.stock_bucket_policy (singleton) VALUES (true)
ON CONFLICT (singleton) DO NOTHING;
