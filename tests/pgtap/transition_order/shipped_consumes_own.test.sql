-- shipped consumes exactly this order's held reservations (on_hand and reserved drop by its
-- quantities); other orders' reservations of the same skus stay held.
BEGIN;
SELECT plan(7);

SELECT FROM orderdb.receive_stock(305, 'SC-A', 20);
SELECT FROM orderdb.receive_stock(305, 'SC-B', 20);
CREATE FUNCTION pg_temp.walk(p_id bigint, p_path text[]) RETURNS integer LANGUAGE plpgsql AS $f$
DECLARE v_version integer; v_status text;
BEGIN
    SELECT o.version INTO v_version FROM orderdb.orders o WHERE o.order_id = p_id;
    FOREACH v_status IN ARRAY p_path LOOP
        SELECT t.version INTO v_version FROM orderdb.transition_order(p_id, v_status, v_version) t;
    END LOOP;
    RETURN v_version;
END $f$;
CREATE TEMP TABLE a AS SELECT * FROM orderdb.create_order(1, 305, '[{"sku": "SC-A", "quantity": 3}, {"sku": "SC-B", "quantity": 2}]');
CREATE TEMP TABLE b AS SELECT * FROM orderdb.create_order(2, 305, '[{"sku": "SC-A", "quantity": 5}]');
CREATE TEMP TABLE c AS SELECT * FROM orderdb.create_order(3, 305, '[{"sku": "SC-B", "quantity": 4}]');

SELECT is(pg_temp.walk((SELECT order_id FROM a), ARRAY['confirmed', 'dispatched', 'picked', 'packed']), 5,
          'order a packed at version 5');
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(305, 'SC-A') $$, $$ VALUES (20, 8, 12) $$,
                  'packing consumes nothing');
SELECT is(pg_temp.walk((SELECT order_id FROM a), ARRAY['shipped']), 6, 'order a shipped');
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(305, 'SC-A') $$, $$ VALUES (17, 5, 12) $$,
                  'SC-A: on_hand and reserved drop by a''s 3; b''s 5 stay reserved');
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(305, 'SC-B') $$, $$ VALUES (18, 4, 14) $$,
                  'SC-B: on_hand and reserved drop by a''s 2; c''s 4 stay reserved');
SELECT results_eq(
    $$ SELECT order_id, sku COLLATE "default", qty_held, qty_consumed FROM orderdb.order_lines
        WHERE warehouse_id = 305 ORDER BY order_id, sku $$,
    $$ SELECT order_id, 'SC-A'::text, 0, 3 FROM a UNION ALL SELECT order_id, 'SC-B', 0, 2 FROM a
       UNION ALL SELECT order_id, 'SC-A', 5, 0 FROM b UNION ALL SELECT order_id, 'SC-B', 4, 0 FROM c $$,
    'ledger: a''s lines consumed, b''s and c''s still held');
SELECT is_empty($$ SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id = 305 $$,
                'counters agree with the ledgers');

SELECT * FROM finish();
ROLLBACK;
