-- amend_order: ship_to (replaced whole), priority, promised times (null withdraws), attributes
-- (merged, null removes) with an optimistic version check; version + 1, status unchanged; the
-- history (order_history, source 'amendment') holds actor, reason, old and new; order.amended
-- carries masked phones. OD002 stale version (wins over OD003), OD003 a key that may no longer
-- change, 22023 bad input (validated as create_order validates), and nothing changes.
BEGIN;
SELECT plan(24);

SELECT FROM orderdb.receive_stock(7716004, 'ODA-A', 100);
SELECT order_id AS o FROM orderdb.create_order(99716004, 7716004, '[{"sku": "ODA-A", "quantity": 1, "unit_price": 10}]',
       NULL, 'shop', '{"ship_to": {"name": "李四", "phone": "13912345678", "line1": "旧地址1号", "city": "杭州市"},
                       "attributes": {"gift": true, "note": "ring twice"}, "channel": "app"}') \gset

SELECT is((SELECT row(a.order_id, a.status, a.version)::text
             FROM orderdb.amend_order(:o, 1, '{"ship_to": {"name": "李四", "phone": "0571-87654321", "line1": "新地址8号", "city": "杭州市"},
                                             "priority": "express", "promised_delivery_at": "2031-05-01T18:00:00+08:00",
                                             "attributes": {"gift": null, "floor": 3}}', 'cs-7', 'customer called') a),
          row(:o, 'pending', 2)::text, 'amend: version + 1, status unchanged');
SELECT is(orderdb.get_order(:o) #> '{options,ship_to}',
          '{"name": "李四", "phone": "0571-87654321", "line1": "新地址8号", "city": "杭州市", "country": "CN"}'::jsonb,
          'ship_to replaced whole, normalised');
SELECT is(orderdb.get_order(:o) #> '{options,attributes}', '{"note": "ring twice", "floor": 3}'::jsonb,
          'attributes merged; a null removes one');
SELECT is(orderdb.get_order(:o) ->> 'priority', 'express', 'priority column follows');
SELECT is(orderdb.get_order(:o) #>> '{options,channel}', 'app', 'keys not amended stay');
SELECT is((SELECT row(h.from_status, h.to_status, h.actor, h.reason, h.source)::text
             FROM orderdb.order_history(:o) h WHERE h.version = 2),
          row('pending', 'pending', 'cs-7', 'customer called', 'amendment')::text, 'order_history lists the amendment');
SELECT is((SELECT h.context #> '{changes,ship_to,old,phone}' FROM orderdb.order_history(:o) h WHERE h.version = 2),
          '"+8613912345678"'::jsonb, 'the history keeps the old value');
SELECT is((SELECT h.context #> '{changes,promised_delivery_at}' FROM orderdb.order_history(:o) h WHERE h.version = 2),
          '{"old": null, "new": "2031-05-01T18:00:00+08:00"}'::jsonb, 'old null, new the promise');
SELECT is((SELECT payload FROM orderdb.outbox WHERE order_id = :o AND event_type = 'order.amended') #> '{changes,ship_to}',
          '{"old": {"name": "李四", "phone": "139****5678", "line1": "旧地址1号", "city": "杭州市", "country": "CN"},
            "new": {"name": "李四", "phone": "0571-****4321", "line1": "新地址8号", "city": "杭州市", "country": "CN"}}'::jsonb,
          'order.amended carries the changes with masked phones');
SELECT is((SELECT payload -> 'keys' FROM orderdb.outbox WHERE order_id = :o AND event_type = 'order.amended'),
          '["attributes", "priority", "promised_delivery_at", "ship_to"]'::jsonb, 'order.amended names the keys');

-- a promise withdrawn
SELECT FROM orderdb.amend_order(:o, 2, '{"promised_delivery_at": null}');
SELECT ok(NOT (orderdb.get_order(:o) -> 'options') ? 'promised_delivery_at', 'a null promised time withdraws it');

-- bad input: 22023, nothing changes
CREATE TEMP TABLE snap AS SELECT orderdb.get_order(:o) AS doc;
SELECT throws_ok(format($$ SELECT * FROM orderdb.amend_order(%s, 3, '{"currency": "USD"}') $$, :o), '22023',
                 'currency cannot be amended', 'currency cannot be amended');
SELECT throws_ok(format($$ SELECT * FROM orderdb.amend_order(%s, 3, '{"colour": "red"}') $$, :o), '22023',
                 'colour cannot be amended', 'an unknown key');
SELECT throws_ok(format($$ SELECT * FROM orderdb.amend_order(%s, 3, '{}') $$, :o), '22023',
                 'changes must name at least one key', 'no change');
SELECT throws_ok(format($$ SELECT * FROM orderdb.amend_order(%s, 3, '{"ship_to": {"line1": "x", "phone": "42"}}') $$, :o), '22023',
                 'ship_to.phone is not a phone number', 'a bad phone');
SELECT throws_ok(format($$ SELECT * FROM orderdb.amend_order(%s, 3, '{"ship_to": null}') $$, :o), '22023',
                 'ship_to must be a JSON object', 'ship_to null');
SELECT throws_ok(format($$ SELECT * FROM orderdb.amend_order(%s, 3, '{"promised_ship_at": "tomorrow"}') $$, :o), '22023',
                 'promised_ship_at must be an ISO 8601 time with an offset (e.g. 2030-01-31T18:00:00+08:00)', 'a bad time');
SELECT throws_ok(format($$ SELECT * FROM orderdb.amend_order(%s, NULL, '{"priority": "normal"}') $$, :o), '22023',
                 'expected_version must be a positive integer', 'no expected version');
SELECT throws_ok($$ SELECT * FROM orderdb.amend_order(9223372036854775000, 1, '{"priority": "normal"}') $$, 'OD004',
                 NULL, 'an unknown order');
SELECT throws_ok(format($$ SELECT * FROM orderdb.amend_order(%s, 1, '{"priority": "normal"}') $$, :o), 'OD002',
                 format('order %s has changed: expected version 1, current version 3', :o), 'a stale version');
SELECT is(orderdb.get_order(:o), (SELECT doc FROM snap), 'refused amendments change nothing');

-- which keys may change when
SELECT FROM orderdb.transition_order(:o, 'confirmed', 3);
SELECT FROM orderdb.transition_order(:o, 'dispatched', 4);
SELECT FROM orderdb.transition_order(:o, 'picked', 5);
SELECT FROM orderdb.transition_order(:o, 'packed', 6);
SELECT FROM orderdb.transition_order(:o, 'shipped', 7);
SELECT throws_ok(format($$ SELECT * FROM orderdb.amend_order(%s, 8, '{"ship_to": {"line1": "late"}}') $$, :o), 'OD003',
                 format('order %s is shipped: its ship_to can no longer change', :o), 'ship_to once shipped: OD003');
SELECT throws_ok(format($$ SELECT * FROM orderdb.amend_order(%s, 7, '{"ship_to": {"line1": "late"}}') $$, :o), 'OD002',
                 NULL, 'OD002 wins over OD003');
SELECT is((SELECT a.version FROM orderdb.amend_order(:o, 8, '{"promised_delivery_at": "2031-06-01T00:00:00Z", "attributes": {"x": 1}}') a),
          9, 'promised times and attributes still change once shipped');

SELECT * FROM finish();
ROLLBACK;
