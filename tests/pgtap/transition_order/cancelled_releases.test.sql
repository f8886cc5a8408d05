-- cancelled releases the order's held reservations (reserved drops, on_hand unchanged), from
-- every status that may be cancelled, and leaves other orders' reservations alone.
BEGIN;
SELECT plan(10);

SELECT FROM orderdb.receive_stock(306, 'CR-A', 100);
CREATE FUNCTION pg_temp.order_at(p_path text[]) RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE v_id bigint; v_version integer; v_status text;
BEGIN
    SELECT c.order_id, c.version INTO v_id, v_version
      FROM orderdb.create_order(1, 306, '[{"sku": "CR-A", "quantity": 2}]') c;
    FOREACH v_status IN ARRAY p_path LOOP
        SELECT t.version INTO v_version FROM orderdb.transition_order(v_id, v_status, v_version) t;
    END LOOP;
    RETURN v_id;
END $f$;
CREATE TEMP TABLE keep AS SELECT pg_temp.order_at(ARRAY['confirmed']) AS order_id;
CREATE TEMP TABLE cancel AS
    SELECT p.status, pg_temp.order_at(p.path) AS order_id, cardinality(p.path) + 1 AS version
      FROM (VALUES ('pending', ARRAY[]::text[]), ('confirmed', ARRAY['confirmed']),
                   ('dispatched', ARRAY['confirmed', 'dispatched']),
                   ('picked', ARRAY['confirmed', 'dispatched', 'picked']),
                   ('packed', ARRAY['confirmed', 'dispatched', 'picked', 'packed']),
                   ('on_hold', ARRAY['confirmed', 'on_hold'])) p(status, path);

SELECT results_eq($$ SELECT * FROM orderdb.stock_level(306, 'CR-A') $$, $$ VALUES (100, 14, 86) $$,
                  'seven orders hold 2 each');
SELECT results_eq(format('SELECT status FROM orderdb.transition_order(%s, %L, %s)', order_id, 'cancelled', version),
                  $$ VALUES ('cancelled'::text) $$, format('%s -> cancelled', status))
  FROM cancel ORDER BY version, status;
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(306, 'CR-A') $$, $$ VALUES (100, 2, 98) $$,
                  'all six cancelled orders released; the kept order still holds 2');
SELECT results_eq(
    $$ SELECT sum(qty_held)::integer, sum(qty_released)::integer FROM orderdb.order_lines
        WHERE order_id IN (SELECT order_id FROM cancel) $$,
    $$ VALUES (0, 12) $$, 'ledger: the cancelled lines are released');
SELECT is_empty($$ SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id = 306 $$,
                'counters agree with the ledgers');

SELECT * FROM finish();
ROLLBACK;
