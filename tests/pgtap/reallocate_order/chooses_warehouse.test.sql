-- create_order with p_warehouse_id NULL chooses a warehouse (sql/35_reallocation.sql): only one
-- that serves every line, lower warehouse_priority.priority first, then the most stock of the
-- order's skus, then the smallest id; auto_allocate = false opts out; OD001 when none can. An
-- idempotent replay returns the original order even when no warehouse could serve it now; the
-- request as sent (warehouse NULL) is what the idempotency key remembers.
BEGIN;
SELECT plan(11);

-- keep other files' warehouses out of the choice
INSERT INTO orderdb.warehouse_priority (warehouse_id, auto_allocate)
SELECT w.warehouse_id, false FROM orderdb.warehouses w
ON CONFLICT (warehouse_id) DO UPDATE SET auto_allocate = false;

SELECT FROM orderdb.receive_stock(3531, 'CW-A', 5);
SELECT FROM orderdb.receive_stock(3531, 'CW-B', 100);
SELECT FROM orderdb.receive_stock(3532, 'CW-A', 50);
SELECT FROM orderdb.receive_stock(3532, 'CW-B', 50);
SELECT FROM orderdb.receive_stock(3533, 'CW-A', 1000);
SELECT FROM orderdb.receive_stock(3534, 'CW-T', 7);
SELECT FROM orderdb.receive_stock(3535, 'CW-T', 7);

CREATE FUNCTION pg_temp.wh(p_items text, p_key text DEFAULT NULL) RETURNS integer LANGUAGE plpgsql AS $f$
DECLARE v_id bigint;
BEGIN
    SELECT c.order_id INTO v_id FROM orderdb.create_order(1, NULL, p_items::jsonb, p_key) c;
    RETURN (SELECT d.warehouse_id FROM orderdb.order_directory d WHERE d.order_id = v_id);
END $f$;

SELECT is(pg_temp.wh('[{"sku": "CW-A", "quantity": 1}, {"sku": "CW-B", "quantity": 1}]'), 3531,
          'both serve every line at equal priority: the most stock of the order''s skus wins');
SELECT is(pg_temp.wh('[{"sku": "CW-A", "quantity": 10}, {"sku": "CW-B", "quantity": 1}]', 'cw-key'), 3532,
          'only a warehouse that serves every line is chosen');
SELECT is(pg_temp.wh('[{"sku": "CW-A", "quantity": 10}]'), 3533, 'the most stock of a single sku');
SELECT is(pg_temp.wh('[{"sku": "CW-T", "quantity": 1}]'), 3534, 'a tie goes to the smallest warehouse_id');

INSERT INTO orderdb.warehouse_priority (warehouse_id, priority) VALUES (3532, 10);
SELECT is(pg_temp.wh('[{"sku": "CW-A", "quantity": 1}, {"sku": "CW-B", "quantity": 1}]'), 3532,
          'a configured priority wins over stock');
SELECT is((SELECT reserved FROM orderdb.inventory WHERE warehouse_id = 3532 AND sku = 'CW-A'), 11,
          'the order reserved in the chosen warehouse');

UPDATE orderdb.warehouse_priority SET auto_allocate = false WHERE warehouse_id = 3532;
SELECT throws_ok($$ SELECT orderdb.create_order(1, NULL, '[{"sku": "CW-A", "quantity": 10}, {"sku": "CW-B", "quantity": 1}]') $$,
                 'OD001', 'insufficient stock for sku "CW-B"',
                 'OD001 when no taking-part warehouse serves every line (the closest, 3533, lacks CW-B)');
SELECT throws_ok($$ SELECT orderdb.create_order(1, NULL, '[{"sku": "CW-NEVER", "quantity": 1}]') $$,
                 'OD001', 'insufficient stock for sku "CW-NEVER"', 'OD001 for a sku no warehouse stocks');

SELECT results_eq(
    $$ SELECT c.replayed, c.order_id = d.order_id
         FROM orderdb.create_order(1, NULL, '[{"sku": "CW-A", "quantity": 10}, {"sku": "CW-B", "quantity": 1}]', 'cw-key') c,
              orderdb.order_directory d WHERE d.idempotency_key = 'cw-key' $$,
    $$ VALUES (true, true) $$,
    'a replay returns the original order although no warehouse could serve it now');
SELECT throws_ok($$ SELECT orderdb.create_order(1, 3532, '[{"sku": "CW-A", "quantity": 10}, {"sku": "CW-B", "quantity": 1}]', 'cw-key') $$,
                 'OD006', NULL, 'the key remembers the request as sent: naming the warehouse is another request');
SELECT throws_ok($$ SELECT orderdb.create_order(1, NULL, '[{"sku": "CW-A", "quantity": 0}]') $$,
                 '22023', 'items[0].quantity must be a positive integer', 'bad items are still 22023');

SELECT * FROM finish();
ROLLBACK;
