-- app_create_order: the application-layer baseline. The same work as create_order.sql done the
-- way an application without stored functions would do it: one statement per round trip against
-- plain tables (schema bench_app, bench/app_schema.sql), in one transaction:
--   BEGIN; INSERT order; INSERT items; UPDATE inventory per line (in sku order, conditional);
--   INSERT history; COMMIT.
-- (No input validation, idempotency, order number, outbox event or ledger/check of the updated
-- row count: it does less than create_order, in 8 round trips instead of 1.)
-- Run by hand:
--   pgbench -n -M prepared -c 16 -j 2 -T 30 -P 5 -D skus=10000 \
--           -l --log-prefix=app_create_order -f bench/app_create_order.sql \
--           postgresql://postgres@127.0.0.1:<port>/orderdb_bench
\set third :skus / 3
\set s1 100000 + random(1, :third)
\set s2 100000 + :third + random(1, :third)
\set s3 100000 + 2 * :third + random(1, :third)
\set cust random(1, 1000000)
BEGIN;
INSERT INTO bench_app.orders (warehouse_id, customer_id, status, version, created_by)
VALUES (1, :cust, 'pending', 1, 'bench') RETURNING order_id \gset
INSERT INTO bench_app.order_lines (warehouse_id, order_id, sku, line_no, quantity, unit_price, qty_held)
VALUES (1, :order_id, 'SKU-' || :s1, 1, 1, 19.90, 1),
       (1, :order_id, 'SKU-' || :s2, 2, 2, 5.00, 2),
       (1, :order_id, 'SKU-' || :s3, 3, 1, 120.00, 1);
UPDATE bench_app.inventory SET reserved = reserved + 1, updated_at = now()
 WHERE warehouse_id = 1 AND sku = 'SKU-' || :s1 AND on_hand - reserved >= 1;
UPDATE bench_app.inventory SET reserved = reserved + 2, updated_at = now()
 WHERE warehouse_id = 1 AND sku = 'SKU-' || :s2 AND on_hand - reserved >= 2;
UPDATE bench_app.inventory SET reserved = reserved + 1, updated_at = now()
 WHERE warehouse_id = 1 AND sku = 'SKU-' || :s3 AND on_hand - reserved >= 1;
INSERT INTO bench_app.order_status_history (warehouse_id, order_id, version, from_status, to_status, actor)
VALUES (1, :order_id, 1, 'new', 'pending', 'bench');
COMMIT;
