-- A sku the warehouse has never stocked is OD001 with available 0; an unknown warehouse is OD004.
BEGIN;
SELECT plan(5);

CREATE FUNCTION pg_temp.err(p_sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE v_state text; v_detail text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_detail = PG_EXCEPTION_DETAIL;
    RETURN v_state || ': ' || coalesce(v_detail, '');
END $f$;

SELECT FROM orderdb.receive_stock(203, 'NS-A', 10);
SELECT is(pg_temp.err($$ SELECT orderdb.create_order(1, 203, '[{"sku": "NS-NEVER", "quantity": 1}]') $$),
          'OD001: sku=NS-NEVER requested=1 available=0', 'never-stocked sku alone: OD001, available 0');
SELECT is(pg_temp.err($$ SELECT orderdb.create_order(1, 203, '[{"sku": "NS-A", "quantity": 1},
                                                             {"sku": "NS-NEVER", "quantity": 2}]') $$),
          'OD001: sku=NS-NEVER requested=2 available=0', 'never-stocked sku among others: OD001, available 0');
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(203, 'NS-A') $$, $$ VALUES (10, 0, 10) $$,
                  'nothing reserved');
SELECT is_empty($$ SELECT 1 FROM orderdb.inventory WHERE sku = 'NS-NEVER' $$,
                'no inventory row was created for the never-stocked sku');
SELECT throws_ok($$ SELECT orderdb.create_order(1, 999203, '[{"sku": "NS-A", "quantity": 1}]') $$,
                 'OD004', 'unknown warehouse 999203', 'a warehouse that never received stock is OD004');

SELECT * FROM finish();
ROLLBACK;
