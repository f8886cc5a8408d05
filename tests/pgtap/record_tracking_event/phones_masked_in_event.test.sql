-- record_tracking_event: the tracking.recorded event (what a shop forwards to its customers) carries
-- the carrier's description and location with phone numbers masked (orderdb._mask_phones_in_text);
-- tracking_events keeps the carrier's text as sent, for operators.
BEGIN;
SELECT plan(3);

SELECT FROM orderdb.record_tracking_event('GENERIC', 'ODT-TN-7716023', now() - interval '1 hour', 'out_for_delivery',
       '网点 0755-12345678', '快递员赵师傅(139 0000 1111)正在派件');

SELECT is((SELECT payload ->> 'description' FROM orderdb.outbox
            WHERE event_type = 'tracking.recorded' AND payload ->> 'tracking_number' = 'ODT-TN-7716023'),
          '快递员赵师傅(139****1111)正在派件', 'the event''s description has the phone masked');
SELECT is((SELECT payload ->> 'location' FROM orderdb.outbox
            WHERE event_type = 'tracking.recorded' AND payload ->> 'tracking_number' = 'ODT-TN-7716023'),
          '网点 0755-****5678', 'the event''s location has the phone masked');
SELECT is((SELECT description FROM orderdb.tracking_events
            WHERE carrier = 'GENERIC' AND tracking_number = 'ODT-TN-7716023'),
          '快递员赵师傅(139 0000 1111)正在派件', 'tracking_events keeps the text as sent');

SELECT * FROM finish();
ROLLBACK;
