-- hot_sku: every client orders the same SKU (a flash sale): 1-line orders, quantity 1.
-- -D hot_sku=HOT-PLAIN: one ordinary inventory row (every order waits for the row lock of the
-- previous one until it commits); -D hot_sku=HOT-BUCKETED: the SKU's stock is split into 32
-- buckets (orderdb.set_stock_buckets(1, 'HOT-BUCKETED', 32), claimed FOR UPDATE SKIP LOCKED).
-- Compared with single_line_random.sql (same order shape, random SKUs). `orderdb bench` runs
-- both also with durable commits (PGOPTIONS='-c synchronous_commit=on'): then a plain hot row
-- stays locked through each commit's WAL flush, and the orders of one SKU queue on it.
-- Data: orderdb_bench as loaded by `orderdb bench` (both hot SKUs hold 1,000,000,000 units).
-- Run by hand:
--   pgbench -n -M prepared -c 16 -j 2 -T 30 -P 5 -D hot_sku=HOT-BUCKETED \
--           -l --log-prefix=hot_sku -f bench/hot_sku.sql \
--           postgresql://postgres@127.0.0.1:<port>/orderdb_bench
\set cust random(1, 1000000)
SELECT order_id FROM orderdb.create_order(:cust, 1, jsonb_build_array(
    jsonb_build_object('sku', CAST(:hot_sku AS text), 'quantity', 1, 'unit_price', 9.90)),
    NULL, 'bench');
