-- record_tracking_event: bad arguments are 22023 naming the field; nothing is stored.
BEGIN;
SELECT plan(10);

SELECT throws_ok($$ SELECT * FROM orderdb.record_tracking_event(NULL, 'T', now(), 'in_transit') $$, '22023', 'carrier is required', 'no carrier');
SELECT throws_ok($$ SELECT * FROM orderdb.record_tracking_event(repeat('c', 256), 'T', now(), 'in_transit') $$, '22023', 'carrier must be 1 to 255 characters', 'long carrier');
SELECT throws_ok($$ SELECT * FROM orderdb.record_tracking_event('SF', '', now(), 'in_transit') $$, '22023', 'tracking_number must be 1 to 255 characters', 'empty tracking number');
SELECT throws_ok($$ SELECT * FROM orderdb.record_tracking_event('SF', 'T', NULL, 'in_transit') $$, '22023', 'event_time is required', 'no event time');
SELECT throws_ok($$ SELECT * FROM orderdb.record_tracking_event('SF', 'T', 'infinity', 'in_transit') $$, '22023',
                 'event_time must be finite, not before 2000-01-01 and at most one day in the future', 'infinite event time');
SELECT throws_ok($$ SELECT * FROM orderdb.record_tracking_event('SF', 'T', now() + interval '2 days', 'in_transit') $$, '22023',
                 'event_time must be finite, not before 2000-01-01 and at most one day in the future', 'event time two days ahead');
SELECT throws_ok($$ SELECT * FROM orderdb.record_tracking_event('SF', 'T', now(), NULL) $$, '22023', 'carrier_status is required', 'no code');
SELECT throws_ok($$ SELECT * FROM orderdb.record_tracking_event('SF', 'T', now(), '80', repeat('l', 1001)) $$, '22023', 'location must be at most 1000 characters', 'long location');
SELECT throws_ok($$ SELECT * FROM orderdb.record_tracking_event('SF', 'T', now(), '80', NULL, NULL, NULL, '[1]') $$, '22023', 'payload must be a JSON object', 'payload an array');
SELECT is((SELECT count(*)::int FROM orderdb.tracking_events WHERE tracking_number = 'T'), 0, 'nothing stored');

SELECT * FROM finish();
ROLLBACK;
