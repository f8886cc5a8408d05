-- hot_sku: every client orders the same SKU (a flash sale): 1-line orders, quantity 1, with an
-- idempotency key, on a SKU nobody configured (-D hot_sku=HOT-PLAIN: received like any other
-- SKU; whatever orderdb does about a contended SKU, it does on its own).
-- Compared with single_line_random.sql (same order shape, random SKUs), and with
-- bench/app_hot_sku.sql (the same order from an application, 9 round trips).
-- Data: orderdb_bench as loaded by `orderdb bench` (HOT-PLAIN holds 1,000,000,000 units).
-- Run by hand:
--   pgbench -n -M prepared -c 16 -j 2 -T 30 -P 5 -D hot_sku=HOT-PLAIN -D run=h1 -D k=0 \
--           -l --log-prefix=hot_sku -f bench/hot_sku.sql \
--           postgresql://postgres@127.0.0.1:<port>/orderdb_bench
\set cust random(1, 1000000)
SELECT order_id FROM orderdb.create_order(:cust, 1, jsonb_build_array(
    jsonb_build_object('sku', CAST(:hot_sku AS text), 'quantity', 1, 'unit_price', 9.90)),
    'bench-' || :run || '-' || :client_id || '-' || :k, 'bench');
\set k :k + 1
