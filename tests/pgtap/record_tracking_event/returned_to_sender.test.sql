-- record_tracking_event returned_to_sender: the refused / undeliverable parcel goes back
-- (returning); receive_return restocks everything shipped (returned).
BEGIN;
SELECT plan(5);

SELECT FROM orderdb.receive_stock(414, 'RS', 10);
SELECT order_id AS o FROM orderdb.create_order(1, 414, '[{"sku": "RS", "quantity": 2}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('rs-1', :o, 'SHIPPED', '{"carrier": "KUAIDI100", "tracking_number": "K1"}');
SELECT FROM orderdb.record_tracking_event('KUAIDI100', 'K1', now() - interval '2 hours', '14', 'Door', 'refused');

SELECT is((SELECT status FROM orderdb.orders WHERE order_id = :o), 'delivery_failed', 'refused: delivery_failed');
SELECT results_eq($$ SELECT normalized_status, order_status FROM orderdb.record_tracking_event('KUAIDI100', 'K1', now() - interval '1 hour', '6', 'Hub', 'returning to sender') $$,
                  $$ VALUES ('returned_to_sender'::text, 'returning'::text) $$, 'returned to sender: returning');
SELECT results_eq(format($$ SELECT status, restocked FROM orderdb.receive_return(%s) $$, :o),
                  $$ VALUES ('returned'::text, 2) $$, 'receive_return restocks what was shipped');
SELECT results_eq($$ SELECT on_hand, reserved FROM orderdb.inventory WHERE warehouse_id = 414 $$,
                  $$ VALUES (10, 0) $$, 'stock is back');
SELECT is_empty($$ SELECT * FROM orderdb_ops.inventory_drift WHERE warehouse_id = 414 $$, 'counters == ledger');

SELECT * FROM finish();
ROLLBACK;
