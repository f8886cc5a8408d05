-- app_hot_sku: the application-layer baseline of hot_sku.sql: every client orders the same SKU
-- (HOT-PLAIN of bench_app.inventory, one row), 1 line, quantity 1, with an idempotency key; the
-- same 9 round trips as bench/app_create_order.sql (BEGIN; order id; key; lock and check the
-- stock row; conditional UPDATE; order; line; outbox event; COMMIT). The stock row stays locked
-- from round trip 4 to the COMMIT: with a 1 ms network (`orderdb bench --rtt-ms 1` adds
-- \sleep 1 ms after every round trip) that is ~5 ms per order, and the orders queue on it.
-- Run by hand:
--   pgbench -n -M prepared -c 16 -j 2 -T 30 -P 5 -D hot_sku=HOT-PLAIN -D run=h1 -D k=0 \
--           -l --log-prefix=app_hot_sku -f bench/app_hot_sku.sql \
--           postgresql://postgres@127.0.0.1:<port>/orderdb_bench
\set cust random(1, 1000000)
\set q 1
\if :cust >= 1 and :q >= 1
BEGIN;
SELECT o.id AS order_id,
       'ORD' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')
             || lpad(o.id::text, greatest(8, length(o.id::text)), '0') AS order_no
  FROM (SELECT nextval('bench_app.order_id_seq') AS id) AS o \gset
WITH claimed AS (
    INSERT INTO bench_app.order_directory AS d
           (order_id, warehouse_id, order_no, idempotency_key, request_hash)
    VALUES (:order_id, 1, :order_no, 'bench-' || :run || '-' || :client_id || '-' || :k,
            sha256(convert_to(CAST(:cust AS text) || '|1|' || :hot_sku || ':1:9.90', 'UTF8')))
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING d.order_id)
SELECT count(*) AS claimed FROM claimed \gset
\if :claimed = 0
SELECT d.order_id AS replayed_id FROM bench_app.order_directory d
 WHERE d.idempotency_key = 'bench-' || :run || '-' || :client_id || '-' || :k \gset
COMMIT;
\else
SELECT count(*) AS found, coalesce(min(s.spare), -1) AS spare
  FROM (SELECT i.on_hand - i.reserved - CAST(:q AS integer) AS spare
          FROM bench_app.inventory AS i
         WHERE i.warehouse_id = 1 AND i.sku = CAST(:hot_sku AS text)
           FOR NO KEY UPDATE) AS s \gset
\if :found = 1 and :spare >= 0
UPDATE bench_app.inventory AS i
   SET reserved = i.reserved + CAST(:q AS integer), updated_at = now()
 WHERE i.warehouse_id = 1 AND i.sku = CAST(:hot_sku AS text) AND i.on_hand - i.reserved >= CAST(:q AS integer);
INSERT INTO bench_app.orders (warehouse_id, order_id, order_no, customer_id, status, version,
                              options, created_by, currency, priority, items_total, shipping_fee)
VALUES (1, :order_id, :order_no, :cust, 'pending', 1, '{}', 'bench', 'CNY', 'normal', 9.90, 0);
INSERT INTO bench_app.order_lines (warehouse_id, order_id, sku, line_no, quantity, unit_price,
                                   qty_held)
VALUES (1, :order_id, CAST(:hot_sku AS text), 1, :q, 9.90, :q);
INSERT INTO bench_app.outbox (event_type, order_id, warehouse_id, payload)
VALUES ('order.created', :order_id, 1, jsonb_build_object(
    'order_no', CAST(:order_no AS text), 'customer_id', CAST(:cust AS bigint), 'warehouse_id', 1, 'status', 'pending',
    'version', 1, 'priority', 'normal',
    'items', jsonb_build_array(jsonb_build_object('sku', CAST(:hot_sku AS text), 'line_no', 1,
                                                  'quantity', CAST(:q AS integer), 'unit_price', 9.90)),
    'totals', jsonb_build_object('currency', 'CNY', 'items', 9.90, 'shipping', 0,
                                 'total', 9.90)));
COMMIT;
\else
ROLLBACK;
\endif
\endif
\endif
\set k :k + 1
