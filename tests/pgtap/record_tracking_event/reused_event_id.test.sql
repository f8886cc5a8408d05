-- record_tracking_event: a carrier event id used again for another parcel or another status is
-- OD006 (nothing changes), not a silent duplicate that drops the other event; the same event
-- again (same parcel and status) stays a duplicate.
BEGIN;
SELECT plan(6);

SELECT FROM orderdb.receive_stock(940393, 'REUSE-1', 10);
SELECT order_id AS o FROM orderdb.create_order(940393, 940393, '[{"sku": "REUSE-1", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('reuse-940393', :o, 'SHIPPED',
                                 '{"carrier": "GENERIC", "tracking_number": "REUSE-TN-940393"}');
SELECT FROM orderdb.record_tracking_event('GENERIC', 'REUSE-OTHER-940393', now() - interval '1 hour',
                                          'in_transit', NULL, NULL, 'reuse-ev-940393');

SELECT throws_ok($$ SELECT FROM orderdb.record_tracking_event('GENERIC', 'REUSE-TN-940393', now(),
                                                              'delivered', NULL, NULL, 'reuse-ev-940393') $$,
                 'OD006', NULL, 'the id of another parcel''s event: OD006');
SELECT is((SELECT status FROM orderdb.orders WHERE order_id = :o), 'shipped', 'nothing changed');
SELECT throws_ok($$ SELECT FROM orderdb.record_tracking_event('GENERIC', 'REUSE-OTHER-940393', now() - interval '1 hour',
                                                              'delivered', NULL, NULL, 'reuse-ev-940393') $$,
                 'OD006', NULL, 'the same id with another status: OD006');
SELECT is((SELECT count(*)::integer FROM orderdb.tracking_events
            WHERE carrier = 'GENERIC' AND event_id = 'reuse-ev-940393'), 1, 'only the first event stored');
SELECT is((SELECT duplicate FROM orderdb.record_tracking_event('GENERIC', 'REUSE-OTHER-940393', now() - interval '1 hour',
                                                               'in_transit', 'Hub', NULL, 'reuse-ev-940393')),
          true, 'the same event again is a duplicate');
SELECT is((SELECT duplicate FROM orderdb.record_tracking_event('OTHERCARRIER', 'REUSE-TN-940393', now(),
                                                               'delivered', NULL, NULL, 'reuse-ev-940393')),
          false, 'the same id from another carrier is another event');

SELECT * FROM finish();
ROLLBACK;
