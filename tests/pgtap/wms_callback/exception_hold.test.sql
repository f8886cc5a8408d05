-- wms_callback EXCEPTION: puts the order on hold with the exception type as reason; on an order
-- already on hold it adds its reason (no status change); the hold is left by going back.
BEGIN;
SELECT plan(7);

SELECT FROM orderdb.receive_stock(404, 'WD', 10);
SELECT order_id AS o FROM orderdb.create_order(1, 404, '[{"sku": "WD", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('ex-0', :o, 'PICKED');

SELECT results_eq(format($$ SELECT status, version FROM orderdb.wms_callback('ex-1', %s, 'EXCEPTION',
                             '{"exception_type": "ADDRESS_INCOMPLETE"}') $$, :o),
                  $$ VALUES ('on_hold'::text, 5) $$, 'EXCEPTION puts the order on hold');
SELECT is((SELECT reason FROM orderdb.order_status_history WHERE order_id = :o AND version = 5),
          'ADDRESS_INCOMPLETE', 'the hold reason is the exception type');
SELECT results_eq(format($$ SELECT status, version FROM orderdb.wms_callback('ex-2', %s, 'EXCEPTION',
                             '{"exception_type": "DAMAGED_GOODS"}') $$, :o),
                  $$ VALUES ('on_hold'::text, 5) $$, 'a second EXCEPTION keeps the hold and the version');
SELECT results_eq(format($$ SELECT reason FROM orderdb.order_hold_reasons WHERE order_id = %s ORDER BY hold_reason_id $$, :o),
                  $$ VALUES ('ADDRESS_INCOMPLETE'::text), ('DAMAGED_GOODS') $$, 'both reasons are kept');
SELECT results_eq(format($$ SELECT status, version FROM orderdb.wms_callback('ex-3', %s, 'PACKED') $$, :o),
                  $$ VALUES ('on_hold'::text, 5) $$, 'PACKED does not move an order on hold');
SELECT throws_ok(format($$ SELECT * FROM orderdb.transition_order(%s, 'packed', 5) $$, :o), 'OD003', NULL,
                 'out of hold only back to the status before it');
SELECT results_eq(format($$ SELECT status, version FROM orderdb.transition_order(%s, 'picked', 5, 'ops', 'address fixed') $$, :o),
                  $$ VALUES ('picked'::text, 6) $$, 'fix the address and resume: back to picked');

SELECT * FROM finish();
ROLLBACK;
