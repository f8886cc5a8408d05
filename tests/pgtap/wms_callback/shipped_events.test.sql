-- wms_callback SHIPPED: creates a shipment with its tracking number, emits shipment.created and
-- order.status_changed; a SHIPPED on a cancelled order is OD003; a tracking number of another
-- order is 22023; a repeat SHIPPED of the same parcel with a new id changes nothing.
BEGIN;
SELECT plan(7);

SELECT FROM orderdb.receive_stock(406, 'SE', 10);
SELECT order_id AS o FROM orderdb.create_order(1, 406, '[{"sku": "SE", "quantity": 1}]') \gset
SELECT order_id AS o2 FROM orderdb.create_order(1, 406, '[{"sku": "SE", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:o2, 'confirmed', 1);

SELECT results_eq(format($$ SELECT status, version FROM orderdb.wms_callback('se-1', %s, 'SHIPPED',
                             '{"carrier": "ZTO", "tracking_number": "Z1"}') $$, :o),
                  $$ VALUES ('shipped'::text, 6) $$, 'SHIPPED on a confirmed order walks to shipped');
SELECT is((SELECT count(*)::int FROM orderdb.outbox WHERE order_id = :o AND event_type = 'shipment.created'), 1,
          'shipment.created emitted');
SELECT results_eq(format($$ SELECT carrier, tracking_number, status FROM orderdb.shipments WHERE order_id = %s $$, :o),
                  $$ VALUES ('ZTO'::text, 'Z1'::text, 'shipped'::text) $$, 'the shipment row');
SELECT results_eq(format($$ SELECT status, version FROM orderdb.wms_callback('se-2', %s, 'SHIPPED',
                             '{"carrier": "ZTO", "tracking_number": "Z1"}') $$, :o),
                  $$ VALUES ('shipped'::text, 6) $$, 'the same parcel again (new id): recorded, no change');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('se-3', %s, 'SHIPPED',
                          '{"carrier": "ZTO", "tracking_number": "Z1"}') $$, :o2),
                 '22023', NULL, 'a tracking number of another order');
SELECT FROM orderdb.transition_order(:o2, 'cancelled', 2);
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('se-4', %s, 'SHIPPED',
                          '{"carrier": "ZTO", "tracking_number": "Z2"}') $$, :o2),
                 'OD003', NULL, 'a cancelled order cannot be shipped');
SELECT is((SELECT count(*)::int FROM orderdb.shipments WHERE order_id = :o2), 0, 'no shipment written');

SELECT * FROM finish();
ROLLBACK;
