-- reallocate_order refuses, changing nothing: bad input (22023), unknown order or target (OD004),
-- a stale version (OD002, which wins over the other refusals), the current warehouse as target
-- (22023), an order past packed or cancelled (OD003), a target that cannot serve every held line
-- (OD001, DETAIL names sku, requested, available).
BEGIN;
SELECT plan(17);

SELECT FROM orderdb.receive_stock(3511, 'RE-A', 10);
SELECT FROM orderdb.receive_stock(3511, 'RE-B', 10);
SELECT FROM orderdb.receive_stock(3512, 'RE-A', 10);
SELECT FROM orderdb.receive_stock(3512, 'RE-B', 1);
SELECT FROM orderdb.receive_stock(3513, 'RE-A', 10);
CREATE TEMP TABLE o AS
    SELECT * FROM orderdb.create_order(1, 3511, '[{"sku": "RE-A", "quantity": 2}, {"sku": "RE-B", "quantity": 2}]');
CREATE TEMP TABLE c AS
    SELECT * FROM orderdb.create_order(1, 3511, '[{"sku": "RE-A", "quantity": 1}]');
SELECT FROM orderdb.transition_order((SELECT order_id FROM c), 'cancelled', 1);
CREATE TEMP TABLE before AS SELECT warehouse_id, sku, on_hand, reserved FROM orderdb.inventory;

SELECT throws_ok($$ SELECT orderdb.reallocate_order(0, 3512, 1) $$, '22023',
                 'order_id must be a positive integer', 'order_id 0');
SELECT throws_ok($$ SELECT orderdb.reallocate_order((SELECT order_id FROM o), NULL, 1) $$, '22023',
                 'to_warehouse_id must be a positive integer', 'NULL to_warehouse_id');
SELECT throws_ok($$ SELECT orderdb.reallocate_order((SELECT order_id FROM o), 3512, 0) $$, '22023',
                 'expected_version must be a positive integer', 'expected_version 0');
SELECT throws_ok($$ SELECT orderdb.reallocate_order((SELECT order_id FROM o), 3512, 1, repeat('a', 1001)) $$,
                 '22023', 'actor must be at most 1000 characters', 'actor too long');
SELECT throws_ok($$ SELECT orderdb.reallocate_order((SELECT order_id FROM o), 3512, 1, NULL, repeat('r', 1001)) $$,
                 '22023', 'reason must be at most 1000 characters', 'reason too long');
SELECT throws_ok($$ SELECT orderdb.reallocate_order(999999999, 3512, 1) $$, 'OD004', NULL, 'unknown order');
SELECT throws_ok($$ SELECT orderdb.reallocate_order((SELECT order_id FROM o), 3599, 1) $$, 'OD004',
                 'unknown warehouse 3599', 'unknown target warehouse');
SELECT throws_ok($$ SELECT orderdb.reallocate_order((SELECT order_id FROM o), 3512, 7) $$, 'OD002',
                 NULL, 'stale version');
SELECT throws_ok($$ SELECT orderdb.reallocate_order((SELECT order_id FROM o), 3511, 7) $$, 'OD002',
                 NULL, 'stale version wins over the same warehouse');
SELECT throws_ok($$ SELECT orderdb.reallocate_order((SELECT order_id FROM o), 3511, 1) $$, '22023',
                 'to_warehouse_id must differ from the order''s current warehouse', 'same warehouse');
SELECT throws_ok($$ SELECT orderdb.reallocate_order((SELECT order_id FROM c), 3512, 2) $$, 'OD003',
                 NULL, 'a cancelled order does not move');

-- OD001: warehouse 3512 has 1 RE-B for 2 requested; 3513 never stocked RE-B
PREPARE short_b AS SELECT orderdb.reallocate_order((SELECT order_id FROM o), 3512, 1);
SELECT throws_ok('short_b', 'OD001', 'insufficient stock for sku "RE-B" in warehouse 3512', 'target short of one line');
CREATE FUNCTION pg_temp.detail_of(p_sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE v_detail text;
BEGIN
    EXECUTE p_sql;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
    RETURN v_detail;
END $f$;
SELECT is(pg_temp.detail_of(format('SELECT orderdb.reallocate_order(%s, 3512, 1)', (SELECT order_id FROM o))),
          'sku=RE-B requested=2 available=1', 'DETAIL names sku, requested and available');
SELECT is(pg_temp.detail_of(format('SELECT orderdb.reallocate_order(%s, 3513, 1)', (SELECT order_id FROM o))),
          'sku=RE-B requested=2 available=0', 'a sku never stocked in the target has available 0');

SELECT results_eq($$ SELECT warehouse_id, sku, on_hand, reserved FROM orderdb.inventory ORDER BY 1, 2 $$,
                  $$ SELECT warehouse_id, sku, on_hand, reserved FROM before ORDER BY 1, 2 $$,
                  'no refusal changed the inventory');
SELECT results_eq($$ SELECT d.warehouse_id, o.warehouse_id, o.version FROM orderdb.order_directory d
                       JOIN orderdb.orders o USING (order_id) WHERE d.order_id = (SELECT order_id FROM o) $$,
                  $$ VALUES (3511, 3511, 1) $$, 'nor the order');

-- past packed: shipped
SELECT FROM (VALUES ('confirmed', 1), ('dispatched', 2), ('picked', 3), ('packed', 4), ('shipped', 5)) s(status, v),
       LATERAL orderdb.transition_order((SELECT order_id FROM o), s.status, s.v);
SELECT throws_ok($$ SELECT orderdb.reallocate_order((SELECT order_id FROM o), 3512, 6) $$, 'OD003',
                 NULL, 'a shipped order does not move');

SELECT * FROM finish();
ROLLBACK;
