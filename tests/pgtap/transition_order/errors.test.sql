-- transition_order errors: OD004 unknown order, OD002 stale version (DETAIL: current status and
-- version), OD003 edge not allowed, and OD002 wins when both the version and the edge are wrong.
-- A refused call changes nothing.
BEGIN;
SELECT plan(10);

CREATE FUNCTION pg_temp.err(p_sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE v_state text; v_detail text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_detail = PG_EXCEPTION_DETAIL;
    RETURN v_state || ': ' || coalesce(v_detail, '');
END $f$;

SELECT FROM orderdb.receive_stock(302, 'TE-A', 10);
CREATE TEMP TABLE o AS SELECT * FROM orderdb.create_order(1, 302, '[{"sku": "TE-A", "quantity": 1}]');
SELECT FROM orderdb.transition_order((SELECT order_id FROM o), 'confirmed', 1);

SELECT throws_ok($$ SELECT orderdb.transition_order(999999999, 'confirmed', 1) $$, 'OD004',
                 'order 999999999 not found', 'unknown order: OD004');
SELECT throws_ok(format('SELECT orderdb.transition_order(%s, %L, 1)', (SELECT order_id FROM o), 'dispatched'),
                 'OD002', NULL, 'stale version: OD002');
SELECT is(pg_temp.err(format('SELECT orderdb.transition_order(%s, %L, 5)', (SELECT order_id FROM o), 'dispatched')),
          'OD002: status=confirmed version=2', 'OD002 DETAIL gives the current status and version');
SELECT throws_ok(format('SELECT orderdb.transition_order(%s, %L, 2)', (SELECT order_id FROM o), 'shipped'),
                 'OD003', NULL, 'edge not allowed: OD003');
SELECT throws_ok(format('SELECT orderdb.transition_order(%s, %L, 2)', (SELECT order_id FROM o), 'pending'),
                 'OD003', NULL, 'no edge backwards: OD003');
SELECT throws_ok(format('SELECT orderdb.transition_order(%s, %L, 2)', (SELECT order_id FROM o), 'confirmed'),
                 'OD003', NULL, 'no edge to the same status: OD003');
SELECT throws_ok(format('SELECT orderdb.transition_order(%s, %L, 1)', (SELECT order_id FROM o), 'shipped'),
                 'OD002', NULL, 'stale version and forbidden edge: OD002 wins');
SELECT FROM orderdb.transition_order((SELECT order_id FROM o), 'cancelled', 2);
SELECT throws_ok(format('SELECT orderdb.transition_order(%s, %L, 3)', (SELECT order_id FROM o), 'confirmed'),
                 'OD003', NULL, 'nothing leaves a terminal status');
SELECT results_eq(
    $$ SELECT status, version FROM orderdb.orders WHERE order_id = (SELECT order_id FROM o) $$,
    $$ VALUES ('cancelled'::text, 3) $$, 'refused calls changed neither status nor version');
SELECT is((SELECT count(*)::integer FROM orderdb.order_status_history WHERE order_id = (SELECT order_id FROM o)),
          2, 'refused calls wrote no history');

SELECT * FROM finish();
ROLLBACK;
