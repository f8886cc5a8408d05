-- on_hold returns only to the status the order had before the hold (else OD003), or to cancelled;
-- for every status that may be put on hold.
BEGIN;
SELECT plan(12);

SELECT FROM orderdb.receive_stock(304, 'OH-A', 100);
CREATE FUNCTION pg_temp.order_at(p_path text[]) RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE v_id bigint; v_version integer; v_status text;
BEGIN
    SELECT c.order_id, c.version INTO v_id, v_version
      FROM orderdb.create_order(1, 304, '[{"sku": "OH-A", "quantity": 1}]') c;
    FOREACH v_status IN ARRAY p_path LOOP
        SELECT t.version INTO v_version FROM orderdb.transition_order(v_id, v_status, v_version) t;
    END LOOP;
    RETURN v_id;
END $f$;

CREATE TEMP TABLE held AS
    SELECT s.status, pg_temp.order_at(s.path || 'on_hold'::text) AS order_id, cardinality(s.path) + 2 AS version
      FROM (VALUES ('confirmed', ARRAY['confirmed']),
                   ('dispatched', ARRAY['confirmed', 'dispatched']),
                   ('picked', ARRAY['confirmed', 'dispatched', 'picked']),
                   ('packed', ARRAY['confirmed', 'dispatched', 'picked', 'packed'])) s(status, path);

SELECT results_eq(
    $$ SELECT o.status, o.previous_status COLLATE "default", o.version FROM held h
         JOIN orderdb.orders o ON o.order_id = h.order_id ORDER BY h.version $$,
    $$ SELECT 'on_hold'::text, status, version FROM held ORDER BY version $$,
    'four orders on hold, each remembering the status before the hold');
-- wrong targets: every on_hold edge except the one back
SELECT throws_ok(format('SELECT orderdb.transition_order(%s, %L, %s)', order_id, 'packed', version), 'OD003', NULL,
                 'held at confirmed: cannot return to packed')
  FROM held WHERE status = 'confirmed';
SELECT throws_ok(format('SELECT orderdb.transition_order(%s, %L, %s)', order_id, 'confirmed', version), 'OD003', NULL,
                 'held at dispatched: cannot return to confirmed')
  FROM held WHERE status = 'dispatched';
SELECT throws_ok(format('SELECT orderdb.transition_order(%s, %L, %s)', order_id, 'packed', version), 'OD003', NULL,
                 'held at picked: cannot skip to packed')
  FROM held WHERE status = 'picked';
SELECT throws_ok(format('SELECT orderdb.transition_order(%s, %L, %s)', order_id, 'picked', version), 'OD003', NULL,
                 'held at packed: cannot return to picked')
  FROM held WHERE status = 'packed';
SELECT throws_ok(format('SELECT orderdb.transition_order(%s, %L, %s)', order_id, 'shipped', version), 'OD003', NULL,
                 'held at packed: cannot ship while on hold')
  FROM held WHERE status = 'packed';
-- the way back
SELECT results_eq(format('SELECT status, version FROM orderdb.transition_order(%s, %L, %s)', order_id, status, version),
                  format('VALUES (%L::text, %s)', status, version + 1),
                  format('held at %s: returns to %s', status, status))
  FROM held ORDER BY version;
-- cancelled from on_hold
SELECT FROM pg_temp.order_at(ARRAY['confirmed', 'dispatched']) o, LATERAL orderdb.transition_order(o, 'on_hold', 3);
SELECT results_eq(
    $$ SELECT t.status FROM orderdb.orders o2, orderdb.transition_order(o2.order_id, 'cancelled', 4) t
        WHERE o2.warehouse_id = 304 AND o2.status = 'on_hold' $$,
    $$ VALUES ('cancelled'::text) $$, 'on_hold may always go to cancelled');
-- a second hold after a return remembers the new status
SELECT FROM held h, LATERAL orderdb.transition_order(h.order_id, 'dispatched', h.version + 1) WHERE h.status = 'confirmed';
SELECT FROM held h, LATERAL orderdb.transition_order(h.order_id, 'on_hold', h.version + 2) WHERE h.status = 'confirmed';
SELECT throws_ok(format('SELECT orderdb.transition_order(%s, %L, %s)', order_id, 'confirmed', version + 3), 'OD003', NULL,
                 'a later hold returns to the status before that hold, not an older one')
  FROM held WHERE status = 'confirmed';

SELECT * FROM finish();
ROLLBACK;
