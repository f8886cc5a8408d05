-- create_order: one 3-line order on random SKUs with an idempotency key, one SQL call
-- (orderdb.create_order: validation, the key, the reservation, order, lines, the outbox event).
-- The three SKUs come from three disjoint thirds of SKU-100001..SKU-(100000+skus), so they are
-- distinct by construction (create_order rejects a sku listed twice). The key is
-- bench-<run>-<client>-<k>: new for every order of a run (-D run=<any text> -D k=0).
-- Data: the orderdb_bench database that `orderdb bench` loads (warehouse 1, <skus> SKUs with
-- 1,000,000,000 units each; `orderdb bench --keep` leaves it and the server running).
-- Run by hand (16 clients, 30 s, per-transaction latency log in ./create_order.<pid>.<thread>):
--   pgbench -n -M prepared -c 16 -j 2 -T 30 -P 5 -D skus=10000 -D run=h1 -D k=0 \
--           -l --log-prefix=create_order -f bench/create_order.sql \
--           postgresql://postgres@127.0.0.1:<port>/orderdb_bench
-- Compared with: pgbench -M prepared -c 16 -j 2 -T 30 -b tpcb-like <pgbench database, -i -s 16>,
-- and with bench/app_create_order.sql (the same work from an application, 9 round trips).
\set third :skus / 3
\set s1 100000 + random(1, :third)
\set s2 100000 + :third + random(1, :third)
\set s3 100000 + 2 * :third + random(1, :third)
\set cust random(1, 1000000)
SELECT order_id FROM orderdb.create_order(:cust, 1, jsonb_build_array(
    jsonb_build_object('sku', 'SKU-' || :s1, 'quantity', 1, 'unit_price', 19.90),
    jsonb_build_object('sku', 'SKU-' || :s2, 'quantity', 2, 'unit_price', 5.00),
    jsonb_build_object('sku', 'SKU-' || :s3, 'quantity', 1, 'unit_price', 120.00)),
    'bench-' || :run || '-' || :client_id || '-' || :k, 'bench');
\set k :k + 1
