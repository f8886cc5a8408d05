-- record_tracking_event: a code without mapping is stored as unknown, changes no status, and is
-- listed by orderdb_ops.unknown_carrier_codes until an INSERT maps it. Every seeded carrier maps.
BEGIN;
SELECT plan(7);

SELECT FROM orderdb.receive_stock(413, 'UK', 10);
SELECT order_id AS o FROM orderdb.create_order(1, 413, '[{"sku": "UK", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('uk-1', :o, 'SHIPPED', '{"carrier": "YTO", "tracking_number": "YT1"}');

SELECT results_eq($$ SELECT normalized_status, order_status FROM orderdb.record_tracking_event('YTO', 'YT1', now() - interval '2 minutes', '已中转', 'Hangzhou', 'in transfer') $$,
                  $$ VALUES ('unknown'::text, 'shipped'::text) $$, 'an unmapped code is unknown, no status change');
SELECT results_eq($$ SELECT carrier, carrier_status, events FROM orderdb_ops.unknown_carrier_codes WHERE carrier = 'YTO' $$,
                  $$ VALUES ('YTO'::text, '已中转'::text, 1::bigint) $$, 'listed in unknown_carrier_codes');
INSERT INTO orderdb.carrier_status_map (carrier, carrier_status, normalized_status) VALUES ('YTO', '已中转', 'in_transit');
SELECT is_empty($$ SELECT * FROM orderdb_ops.unknown_carrier_codes WHERE carrier = 'YTO' $$, 'an INSERT maps it');
SELECT results_eq($$ SELECT normalized_status, order_status FROM orderdb.record_tracking_event('YTO', 'YT1', now() - interval '1 minute', '已中转', 'Shanghai', 'in transfer') $$,
                  $$ VALUES ('in_transit'::text, 'delivering'::text) $$, 'the next such event is mapped');
SELECT is((SELECT count(DISTINCT carrier)::int FROM orderdb.carrier_status_map
            WHERE carrier IN ('GENERIC', 'AFTERSHIP', 'SF', 'YTO', 'ZTO', 'KUAIDI100')), 6, 'seeded carriers');
SELECT set_eq($$ SELECT carrier_status FROM orderdb.carrier_status_map WHERE carrier = 'GENERIC' $$,
              $$ SELECT status FROM orderdb.tracking_statuses WHERE status <> 'unknown' $$, 'GENERIC takes every normalised name');
SELECT set_eq($$ SELECT carrier_status FROM orderdb.carrier_status_map WHERE carrier = 'AFTERSHIP' $$,
              $$ VALUES ('InfoReceived'), ('InTransit'), ('OutForDelivery'), ('AttemptFail'), ('Delivered'),
                        ('AvailableForPickup'), ('Exception'), ('Expired'), ('Pending') $$, 'AfterShip tags');

SELECT * FROM finish();
ROLLBACK;
