-- record_tracking_events: a batch of carrier events, each recorded exactly as
-- record_tracking_event records it (dedupe, matching, order moves), one row per element with its
-- ordinal; a bad element is 22023 naming its ordinal and nothing of the batch is recorded.
BEGIN;
SELECT plan(12);

SELECT FROM orderdb.receive_stock(940391, 'RTEB-1', 10);
SELECT order_id AS o FROM orderdb.create_order(940391, 940391, '[{"sku": "RTEB-1", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('rteb-1', :o, 'SHIPPED',
                                 '{"carrier": "GENERIC", "tracking_number": "RTEB-TN-940391"}');

CREATE TEMP TABLE b AS
SELECT * FROM orderdb.record_tracking_events(jsonb_build_array(
    jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'RTEB-TN-940391',
                       'event_time', to_char(now() - interval '3 hours', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                       'carrier_status', 'in_transit', 'location', 'Hub', 'event_id', 'rteb-e1'),
    jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'RTEB-TN-940391',
                       'event_time', to_char(now() - interval '2 hours', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                       'carrier_status', 'out_for_delivery', 'payload', '{"courier": {"name": "Li"}}'::jsonb),
    jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'RTEB-TN-940391',
                       'event_time', to_char(now() - interval '3 hours', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                       'carrier_status', 'in_transit', 'event_id', 'rteb-e1'),
    jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'RTEB-UNKNOWN-940391',
                       'event_time', '2026-01-02T03:04:05+08:00', 'carrier_status', 'in_transit',
                       'location', NULL)));

SELECT results_eq($$ SELECT ordinal, duplicate, normalized_status, order_status FROM b ORDER BY ordinal $$,
                  $$ VALUES (1, false, 'in_transit'::text, 'delivering'::text),
                            (2, false, 'out_for_delivery', 'delivering'),
                            (3, true, 'in_transit', 'delivering'),
                            (4, false, 'in_transit', NULL) $$,
                  'one row per element, in order, as the single call answers');
SELECT is((SELECT order_id FROM b WHERE ordinal = 1), :o::bigint, 'matched to its order');
SELECT is((SELECT order_id FROM b WHERE ordinal = 4), NULL::bigint, 'an unknown tracking number is stored unmatched');
SELECT is((SELECT tracking_event_id FROM b WHERE ordinal = 3), (SELECT tracking_event_id FROM b WHERE ordinal = 1),
          'a repeat inside the batch is the stored event');
SELECT is((SELECT count(*)::integer FROM orderdb.tracking_events WHERE tracking_number = 'RTEB-TN-940391'), 2,
          'each event stored once');
SELECT is((SELECT event_time FROM orderdb.tracking_events WHERE tracking_number = 'RTEB-UNKNOWN-940391'),
          '2026-01-01T19:04:05Z'::timestamptz, 'event_time read with its offset');

-- a bad element: 22023 naming its ordinal, nothing of the batch recorded
CREATE TEMP TABLE before_count AS SELECT count(*) AS n FROM orderdb.tracking_events WHERE carrier = 'GENERIC' AND tracking_number LIKE 'RTEB-%';
SELECT throws_ok($$ SELECT FROM orderdb.record_tracking_events(jsonb_build_array(
                        jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'RTEB-TN-940391',
                                           'event_time', to_char(now(), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                                           'carrier_status', 'delivered'),
                        jsonb_build_object('carrier', 'GENERIC', 'tracking_number', '',
                                           'event_time', to_char(now(), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                                           'carrier_status', 'delivered'))) $$,
                 '22023', NULL, 'a bad element is 22023');
SELECT is((SELECT count(*) FROM orderdb.tracking_events WHERE carrier = 'GENERIC' AND tracking_number LIKE 'RTEB-%'),
          (SELECT n FROM before_count), 'nothing of a refused batch is recorded');
SELECT throws_like($$ SELECT FROM orderdb.record_tracking_events(jsonb_build_array(
                          jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'RTEB-TN-940391',
                                             'event_time', '2026-01-02T03:04:05Z', 'carrier_status', 'in_transit'),
                          jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'RTEB-TN-940391',
                                             'event_time', '2026-01-02 03:04:05', 'carrier_status', 'in_transit'))) $$,
                   'event 2: event_time must be an ISO 8601 time with an offset%',
                   'a time without an offset is refused, naming the ordinal');
SELECT throws_like($$ SELECT FROM orderdb.record_tracking_events('[{"carrier": "GENERIC", "tracking_number": "X", "event_time": "2026-01-02T03:04:05Z", "carrier_status": "in_transit", "status": "x"}]') $$,
                   'event 1: unknown key "status"%', 'an unknown key is named');
SELECT throws_like($$ SELECT FROM orderdb.record_tracking_events('[]') $$,
                   'events must hold 1 to 1000 events', 'an empty batch is refused');
SELECT throws_like($$ SELECT FROM orderdb.record_tracking_events('{"carrier": "GENERIC"}') $$,
                   'events must be a JSON array', 'not an array is refused');

SELECT * FROM finish();
ROLLBACK;
