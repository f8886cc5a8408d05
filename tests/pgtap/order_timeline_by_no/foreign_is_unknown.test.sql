-- order_timeline_by_no: another customer's order is answered exactly like an unknown number
-- (OD004, same message and hint; the detail repeats only what the caller sent), so sequential
-- order numbers cannot be probed.
BEGIN;
SELECT plan(6);

SELECT FROM orderdb.receive_stock(702, 'WEB-FX', 10);
SELECT order_no AS n FROM orderdb.create_order(72, 702, '[{"sku": "WEB-FX", "quantity": 1}]') \gset

CREATE FUNCTION pg_temp.failure(p_order_no text, p_customer bigint) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    v_state text; v_message text; v_detail text; v_hint text;
BEGIN
    PERFORM orderdb.order_timeline_by_no(p_order_no, p_customer);
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    RETURN ARRAY[v_state, v_message, v_detail, v_hint];
END;
$$;

SELECT throws_ok(format($$ SELECT orderdb.order_timeline_by_no(%L, 73) $$, :'n'), 'OD004',
                 'order not found', 'another customer''s order: OD004, not OD005');
SELECT throws_ok($$ SELECT orderdb.order_timeline_by_no('ORD2099010199999999', 73) $$, 'OD004',
                 'order not found', 'an unknown number: OD004');
SELECT is(pg_temp.failure(:'n', 73),
          ARRAY['OD004', 'order not found', format('no order %s for customer 73', :'n'),
                'Check the order number and the customer it belongs to.'],
          'foreign: the fields depend on the arguments only');
SELECT is(pg_temp.failure('ORD2099010199999999', 73),
          ARRAY['OD004', 'order not found', 'no order ORD2099010199999999 for customer 73',
                'Check the order number and the customer it belongs to.'],
          'unknown: the same fields');
SELECT is((pg_temp.failure(:'n', 73))[2:4],
          (SELECT (pg_temp.failure(:'n' || '', 73))[2:4]),
          'the same arguments, the same answer');
SELECT lives_ok(format($$ SELECT orderdb.order_timeline_by_no(%L, 72) $$, :'n'),
                'the owner is served');

SELECT * FROM finish();
ROLLBACK;
