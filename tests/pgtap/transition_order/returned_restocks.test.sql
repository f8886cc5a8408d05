-- returned restocks what the order consumed (on_hand rises, ledger state returned); the whole
-- path delivered -> return_requested -> returning -> returned, and delivery_failed -> returning.
BEGIN;
SELECT plan(8);

SELECT FROM orderdb.receive_stock(307, 'RR-A', 10);
SELECT FROM orderdb.receive_stock(307, 'RR-B', 10);
CREATE FUNCTION pg_temp.walk(p_id bigint, p_path text[]) RETURNS integer LANGUAGE plpgsql AS $f$
DECLARE v_version integer; v_status text;
BEGIN
    SELECT o.version INTO v_version FROM orderdb.orders o WHERE o.order_id = p_id;
    FOREACH v_status IN ARRAY p_path LOOP
        SELECT t.version INTO v_version FROM orderdb.transition_order(p_id, v_status, v_version) t;
    END LOOP;
    RETURN v_version;
END $f$;
CREATE TEMP TABLE a AS SELECT * FROM orderdb.create_order(1, 307, '[{"sku": "RR-A", "quantity": 3}, {"sku": "RR-B", "quantity": 1}]');
CREATE TEMP TABLE b AS SELECT * FROM orderdb.create_order(1, 307, '[{"sku": "RR-A", "quantity": 2}]');

SELECT is(pg_temp.walk((SELECT order_id FROM a),
                       ARRAY['confirmed', 'dispatched', 'picked', 'packed', 'shipped', 'delivering', 'delivered',
                             'return_requested', 'returning']), 10, 'order a on its way back');
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(307, 'RR-A') $$, $$ VALUES (7, 2, 5) $$,
                  'while returning, a''s goods are still consumed');
SELECT is(pg_temp.walk((SELECT order_id FROM a), ARRAY['returned']), 11, 'order a returned');
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(307, 'RR-A') $$, $$ VALUES (10, 2, 8) $$,
                  'RR-A restocked by 3; b still holds 2');
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(307, 'RR-B') $$, $$ VALUES (10, 0, 10) $$,
                  'RR-B restocked by 1');
SELECT results_eq(
    $$ SELECT sku COLLATE "default", qty_held, qty_consumed, qty_released, qty_returned FROM orderdb.order_lines
        WHERE order_id = (SELECT order_id FROM a) ORDER BY sku $$,
    $$ VALUES ('RR-A'::text, 0, 0, 0, 3), ('RR-B', 0, 0, 0, 1) $$,
    'ledger: a''s lines are in state returned');
SELECT is(pg_temp.walk((SELECT order_id FROM b),
                       ARRAY['confirmed', 'dispatched', 'picked', 'packed', 'shipped', 'delivery_failed',
                             'returning', 'returned']), 9, 'a failed delivery comes back too');
SELECT is_empty($$ SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id = 307 $$,
                'counters agree with the ledgers');

SELECT * FROM finish();
ROLLBACK;
