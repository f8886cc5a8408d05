-- create_order reserves every line or none: one short line fails the whole order with OD001,
-- DETAIL naming sku, requested and available, and nothing is reserved or written.
BEGIN;
SELECT plan(8);

CREATE FUNCTION pg_temp.err(p_sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE v_state text; v_detail text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_detail = PG_EXCEPTION_DETAIL;
    RETURN v_state || ': ' || coalesce(v_detail, '');
END $f$;

SELECT FROM orderdb.receive_stock(202, 'AN-A', 10);
SELECT FROM orderdb.receive_stock(202, 'AN-B', 3);
SELECT FROM orderdb.receive_stock(202, 'AN-C', 10);
SELECT FROM orderdb.create_order(1, 202, '[{"sku": "AN-B", "quantity": 1}]');
CREATE TEMP TABLE before AS
    SELECT (SELECT count(*) FROM orderdb.orders) AS orders,
           (SELECT count(*) FROM orderdb.order_lines) AS lines,
           (SELECT count(*) FROM orderdb.order_directory) AS dir,
           (SELECT count(*) FROM orderdb.outbox) AS events;

SELECT throws_ok(
    $$ SELECT orderdb.create_order(2, 202, '[{"sku": "AN-A", "quantity": 4},
                                            {"sku": "AN-B", "quantity": 3},
                                            {"sku": "AN-C", "quantity": 1}]') $$,
    'OD001', 'insufficient stock for sku "AN-B"', 'one short line fails the order with OD001');
SELECT is(pg_temp.err($$ SELECT orderdb.create_order(2, 202, '[{"sku": "AN-A", "quantity": 4},
                                                             {"sku": "AN-B", "quantity": 3}]') $$),
          'OD001: sku=AN-B requested=3 available=2', 'DETAIL names sku, requested and available');
SELECT is(pg_temp.err($$ SELECT orderdb.create_order(2, 202, '[{"sku": "AN-C", "quantity": 11},
                                                             {"sku": "AN-B", "quantity": 3}]') $$),
          'OD001: sku=AN-B requested=3 available=2',
          'several short lines: the first in sku order is named');
SELECT is(pg_temp.err($$ SELECT orderdb.create_order(2, 202, '[{"sku": "AN-A", "quantity": 11}]') $$),
          'OD001: sku=AN-A requested=11 available=10', 'single line: same DETAIL');
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(202, 'AN-A') $$, $$ VALUES (10, 0, 10) $$,
                  'the line that fit was not reserved');
SELECT results_eq($$ SELECT * FROM orderdb.stock_level(202, 'AN-B') $$, $$ VALUES (3, 1, 2) $$,
                  'the short line keeps its earlier reservation only');
SELECT results_eq(
    $$ SELECT (SELECT count(*) FROM orderdb.orders), (SELECT count(*) FROM orderdb.order_lines),
              (SELECT count(*) FROM orderdb.order_directory), (SELECT count(*) FROM orderdb.outbox) $$,
    $$ SELECT orders, lines, dir, events FROM before $$,
    'no order, line, directory entry or event was written');
SELECT is_empty($$ SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id = 202 $$,
                'counters agree with the ledger');

SELECT * FROM finish();
ROLLBACK;
