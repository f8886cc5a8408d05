-- Every not-yet-shipped status moves (pending .. packed, on_hold); an order on hold keeps the
-- status it returns to, and returns to it in the new warehouse.
BEGIN;
SELECT plan(8);

SELECT FROM orderdb.receive_stock(3521, 'RH-A', 100);
SELECT FROM orderdb.receive_stock(3522, 'RH-A', 100);
CREATE FUNCTION pg_temp.order_at(p_path text[]) RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE v_id bigint; v_version integer; v_status text;
BEGIN
    SELECT c.order_id, c.version INTO v_id, v_version
      FROM orderdb.create_order(1, 3521, '[{"sku": "RH-A", "quantity": 2}]') c;
    FOREACH v_status IN ARRAY p_path LOOP
        SELECT t.version INTO v_version FROM orderdb.transition_order(v_id, v_status, v_version) t;
    END LOOP;
    RETURN v_id;
END $f$;
CREATE TEMP TABLE orders_at AS
    SELECT p.status, pg_temp.order_at(p.path) AS order_id, cardinality(p.path) + 1 AS version
      FROM (VALUES ('pending', ARRAY[]::text[]), ('confirmed', ARRAY['confirmed']),
                   ('dispatched', ARRAY['confirmed', 'dispatched']),
                   ('picked', ARRAY['confirmed', 'dispatched', 'picked']),
                   ('packed', ARRAY['confirmed', 'dispatched', 'picked', 'packed']),
                   ('on_hold', ARRAY['confirmed', 'dispatched', 'picked', 'on_hold'])) p(status, path);

SELECT is(r.status, a.status, format('an order in status %s moves', a.status))
  FROM orders_at a, orderdb.reallocate_order(a.order_id, 3522, a.version) r
 ORDER BY a.version;
SELECT results_eq($$ SELECT warehouse_id, reserved FROM orderdb.inventory WHERE sku = 'RH-A' ORDER BY 1 $$,
                  $$ VALUES (3521, 0), (3522, 12) $$, 'all their reservations moved');
SELECT results_eq(
    $$ SELECT status, version FROM orderdb.transition_order(
           (SELECT order_id FROM orders_at WHERE status = 'on_hold'), 'picked', 6) $$,
    $$ VALUES ('picked'::text, 7) $$, 'the order on hold returns to the status before the hold');

SELECT * FROM finish();
ROLLBACK;
