-- record_tracking_event: the same event twice (by event id, or by carrier + tracking number +
-- event time + code) is stored once; the duplicate changes nothing.
BEGIN;
SELECT plan(7);

SELECT tracking_event_id AS e1 FROM orderdb.record_tracking_event('GENERIC', 'DD1', now() - interval '1 hour', 'in_transit', 'Hub', 'arrived', 'ev-1') \gset

SELECT results_eq(format($$ SELECT tracking_event_id, duplicate, normalized_status, order_id FROM
                             orderdb.record_tracking_event('GENERIC', 'DD1', now() - interval '1 hour', 'in_transit', 'Hub', 'arrived', 'ev-1') $$),
                  format($$ VALUES (%s::bigint, true, 'in_transit'::text, NULL::bigint) $$, :e1),
                  'same event id: duplicate, the stored event');
SELECT results_eq($$ SELECT duplicate FROM orderdb.record_tracking_event('GENERIC', 'DD1', now() - interval '3 hours', 'in_transit', NULL, NULL, 'ev-1') $$,
                  $$ VALUES (true) $$, 'same event id, other fields: still the duplicate');
SELECT results_eq($$ SELECT duplicate FROM orderdb.record_tracking_event('GENERIC', 'DD1', now() - interval '1 hour', 'in_transit') $$,
                  $$ VALUES (true) $$, 'no event id: the natural key dedupes');
SELECT results_eq($$ SELECT duplicate FROM orderdb.record_tracking_event('GENERIC', 'DD1', now() - interval '1 hour', 'in_transit', NULL, NULL, 'ev-2') $$,
                  $$ VALUES (true) $$, 'another event id with the same natural key is the same event');
SELECT results_eq($$ SELECT duplicate FROM orderdb.record_tracking_event('GENERIC', 'DD1', now() - interval '30 minutes', 'in_transit') $$,
                  $$ VALUES (false) $$, 'another time is another event');
SELECT is((SELECT count(*)::int FROM orderdb.tracking_events WHERE tracking_number = 'DD1'), 2, 'two events stored');
SELECT is((SELECT count(*)::int FROM orderdb.outbox WHERE event_type = 'tracking.recorded'
            AND payload ->> 'tracking_number' = 'DD1'), 2, 'tracking.recorded once per stored event');

SELECT * FROM finish();
ROLLBACK;
