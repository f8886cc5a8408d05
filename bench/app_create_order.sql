-- app_create_order: the application-layer baseline of create_order.sql. The same work as one
-- orderdb.create_order call, done the way an ORM-based application does it: the input checked
-- in the application, then one transaction of 9 round trips on copies of orderdb's tables
-- (schema bench_app, bench/app_schema.sql):
--   1 BEGIN
--   2 the order id from the sequence (and the order number)
--   3 the idempotency key claimed with the order's directory row (unique key; taken: replay)
--   4 the three stock rows locked in sku order and checked (unknown SKU or short: ROLLBACK)
--   5 the reservation: one conditional UPDATE (on_hand - reserved >= quantity, the rule that
--     never oversells)
--   6 the order row   7 the three lines   8 the order.created outbox event   9 COMMIT
-- (An ORM usually sends one UPDATE per line: counted as one here, in the application's favour.)
-- `orderdb bench --rtt-ms 1` runs it with \sleep 1 ms after every round trip: a 1 ms network.
-- Run by hand:
--   pgbench -n -M prepared -c 16 -j 2 -T 30 -P 5 -D skus=10000 -D run=h1 -D k=0 \
--           -l --log-prefix=app_create_order -f bench/app_create_order.sql \
--           postgresql://postgres@127.0.0.1:<port>/orderdb_bench
\set third :skus / 3
\set s1 100000 + random(1, :third)
\set s2 100000 + :third + random(1, :third)
\set s3 100000 + 2 * :third + random(1, :third)
\set cust random(1, 1000000)
\set q1 1
\set q2 2
\set q3 1
\if :cust >= 1 and :q1 >= 1 and :q2 >= 1 and :q3 >= 1 and :s1 <> :s2 and :s2 <> :s3 and :s1 <> :s3
BEGIN;
SELECT o.id AS order_id,
       'ORD' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')
             || lpad(o.id::text, greatest(8, length(o.id::text)), '0') AS order_no
  FROM (SELECT nextval('bench_app.order_id_seq') AS id) AS o \gset
WITH claimed AS (
    INSERT INTO bench_app.order_directory AS d
           (order_id, warehouse_id, order_no, idempotency_key, request_hash)
    VALUES (:order_id, 1, :order_no, 'bench-' || :run || '-' || :client_id || '-' || :k,
            sha256(convert_to(CAST(:cust AS text) || '|1|SKU-' || :s1 || ':1:19.90|SKU-' || :s2 || ':2:5.00|SKU-'
                              || :s3 || ':1:120.00', 'UTF8')))
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING d.order_id)
SELECT count(*) AS claimed FROM claimed \gset
\if :claimed = 0
SELECT d.order_id AS replayed_id FROM bench_app.order_directory d
 WHERE d.idempotency_key = 'bench-' || :run || '-' || :client_id || '-' || :k \gset
COMMIT;
\else
SELECT count(*) AS found, coalesce(min(s.spare), -1) AS spare
  FROM (SELECT i.on_hand - i.reserved - r.qty AS spare
          FROM bench_app.inventory AS i
          JOIN (VALUES ('SKU-' || :s1, CAST(:q1 AS integer)), ('SKU-' || :s2, :q2), ('SKU-' || :s3, :q3))
               AS r(sku, qty) ON i.warehouse_id = 1 AND i.sku = r.sku
         ORDER BY i.sku
           FOR NO KEY UPDATE OF i) AS s \gset
\if :found = 3 and :spare >= 0
UPDATE bench_app.inventory AS i
   SET reserved = i.reserved + r.qty, updated_at = now()
  FROM (VALUES ('SKU-' || :s1, CAST(:q1 AS integer)), ('SKU-' || :s2, :q2), ('SKU-' || :s3, :q3)) AS r(sku, qty)
 WHERE i.warehouse_id = 1 AND i.sku = r.sku AND i.on_hand - i.reserved >= r.qty;
INSERT INTO bench_app.orders (warehouse_id, order_id, order_no, customer_id, status, version,
                              options, created_by, currency, priority, items_total, shipping_fee)
VALUES (1, :order_id, :order_no, :cust, 'pending', 1, '{}', 'bench', 'CNY', 'normal', 149.80, 0);
INSERT INTO bench_app.order_lines (warehouse_id, order_id, sku, line_no, quantity, unit_price,
                                   qty_held)
VALUES (1, :order_id, 'SKU-' || :s1, 1, :q1, 19.90, :q1),
       (1, :order_id, 'SKU-' || :s2, 2, :q2, 5.00, :q2),
       (1, :order_id, 'SKU-' || :s3, 3, :q3, 120.00, :q3);
INSERT INTO bench_app.outbox (event_type, order_id, warehouse_id, payload)
VALUES ('order.created', :order_id, 1, jsonb_build_object(
    'order_no', CAST(:order_no AS text), 'customer_id', CAST(:cust AS bigint), 'warehouse_id', 1, 'status', 'pending',
    'version', 1, 'priority', 'normal',
    'items', jsonb_build_array(
        jsonb_build_object('sku', 'SKU-' || :s1, 'line_no', 1, 'quantity', CAST(:q1 AS integer), 'unit_price', 19.90),
        jsonb_build_object('sku', 'SKU-' || :s2, 'line_no', 2, 'quantity', CAST(:q2 AS integer), 'unit_price', 5.00),
        jsonb_build_object('sku', 'SKU-' || :s3, 'line_no', 3, 'quantity', CAST(:q3 AS integer), 'unit_price', 120.00)),
    'totals', jsonb_build_object('currency', 'CNY', 'items', 149.80, 'shipping', 0,
                                 'total', 149.80)));
COMMIT;
\else
ROLLBACK;
\endif
\endif
\endif
\set k :k + 1
