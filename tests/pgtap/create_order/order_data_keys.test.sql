-- create_order's order data besides ship_to: priority, currency (ISO 4217), shipping_fee,
-- promised_ship_at / promised_delivery_at / payment_due_by (ISO 8601 with an offset, from 2000 and
-- before 2100), time_zone, attributes. Bad values are 22023 naming the key and write nothing;
-- unknown top-level keys are kept. Totals: get_order and order.created carry them.
BEGIN;
SELECT plan(33);

SELECT FROM orderdb.receive_stock(7716003, 'ODK-A', 100) a, orderdb.receive_stock(7716003, 'ODK-B', 100) b;
CREATE TEMP TABLE before AS
    SELECT (SELECT count(*) FROM orderdb.orders WHERE customer_id = 99716003) AS orders;

CREATE FUNCTION pg_temp.co(p_options text)
RETURNS text LANGUAGE sql AS $f$
    SELECT format('SELECT * FROM orderdb.create_order(99716003, 7716003, %L::jsonb, NULL, NULL, %L::jsonb)',
                  '[{"sku": "ODK-A", "quantity": 1}]', p_options);
$f$;

SELECT throws_ok(pg_temp.co('{"priority": "urgent"}'), '22023', 'priority must be "normal" or "express"', 'priority urgent');
SELECT throws_ok(pg_temp.co('{"priority": null}'), '22023', 'priority must be "normal" or "express"', 'priority null');
SELECT throws_ok(pg_temp.co('{"currency": "XYZ"}'), '22023', 'currency must be an ISO 4217 code (e.g. CNY)', 'currency XYZ');
SELECT throws_ok(pg_temp.co('{"currency": "RMB"}'), '22023', 'currency must be an ISO 4217 code (e.g. CNY)', 'currency RMB');
SELECT throws_ok(pg_temp.co('{"currency": 156}'), '22023', 'currency must be an ISO 4217 code (e.g. CNY)', 'currency a number');
SELECT throws_ok(pg_temp.co('{"shipping_fee": -1}'), '22023', 'shipping_fee must be a number from 0 to 1e12', 'negative fee');
SELECT throws_ok(pg_temp.co('{"shipping_fee": "1e3"}'), '22023', 'shipping_fee must be a number from 0 to 1e12', 'fee string with exponent');
SELECT throws_ok(pg_temp.co('{"shipping_fee": 1e13}'), '22023', 'shipping_fee must be a number from 0 to 1e12', 'fee over 1e12');
SELECT throws_ok(pg_temp.co('{"promised_ship_at": "next tuesday"}'), '22023',
                 'promised_ship_at must be an ISO 8601 time with an offset (e.g. 2030-01-31T18:00:00+08:00)', 'not a time');
SELECT throws_ok(pg_temp.co('{"promised_delivery_at": "2030-01-31T18:00:00"}'), '22023',
                 'promised_delivery_at must be an ISO 8601 time with an offset (e.g. 2030-01-31T18:00:00+08:00)', 'no offset');
SELECT throws_ok(pg_temp.co('{"payment_due_by": "2030-02-30T18:00:00Z"}'), '22023',
                 'payment_due_by must be an ISO 8601 time with an offset (e.g. 2030-01-31T18:00:00+08:00)', 'February 30');
SELECT throws_ok(pg_temp.co('{"promised_ship_at": "2030-01-31T24:00:00+08:00"}'), '22023',
                 'promised_ship_at must be an ISO 8601 time with an offset (e.g. 2030-01-31T18:00:00+08:00)', 'hour 24');
SELECT throws_ok(pg_temp.co('{"payment_due_by": "infinity"}'), '22023',
                 'payment_due_by must be an ISO 8601 time with an offset (e.g. 2030-01-31T18:00:00+08:00)', 'infinity');
SELECT throws_ok(pg_temp.co('{"promised_ship_at": "1999-12-31T23:59:59Z"}'), '22023',
                 'promised_ship_at must be from 2000-01-01 and before 2100-01-01', 'before 2000');
SELECT throws_ok(pg_temp.co('{"promised_delivery_at": "2100-01-01T00:00:00Z"}'), '22023',
                 'promised_delivery_at must be from 2000-01-01 and before 2100-01-01', '2100');
SELECT throws_ok(pg_temp.co('{"promised_delivery_by": "soon"}'), '22023',
                 'promised_delivery_by must be an ISO 8601 time with an offset (e.g. 2030-01-31T18:00:00+08:00)', 'the SLA alias is validated too');
SELECT throws_ok(pg_temp.co('{"time_zone": "Mars/Olympus"}'), '22023',
                 'time_zone must be an IANA time zone name (e.g. Asia/Shanghai)', 'unknown zone');
SELECT throws_ok(pg_temp.co('{"time_zone": "CST"}'), '22023',
                 'time_zone must be an IANA time zone name (e.g. Asia/Shanghai)', 'an abbreviation is not a zone name');
SELECT throws_ok(pg_temp.co('{"attributes": ["cold"]}'), '22023', 'attributes must be a JSON object', 'attributes an array');
SELECT is((SELECT count(*) FROM orderdb.orders WHERE customer_id = 99716003), (SELECT orders FROM before),
          'refused order data writes nothing');

-- good data: normalised, columns, totals
SELECT order_id AS o FROM orderdb.create_order(99716003, 7716003,
       '[{"sku": "ODK-A", "quantity": 2, "unit_price": "19.90"}, {"sku": "ODK-B", "quantity": 3, "unit_price": 0.10}]',
       NULL, NULL,
       '{"currency": "usd", "shipping_fee": "12.50", "priority": "express",
         "promised_ship_at": "2099-12-31T23:59:59+08:00", "promised_delivery_at": "2031-01-01 12:00+08",
         "payment_due_by": "2001-01-01T00:00:00Z", "time_zone": "Europe/Berlin",
         "attributes": {"cold_chain": true}, "channel": "web"}') \gset
SELECT is(orderdb.get_order(:o) -> 'totals',
          '{"currency": "USD", "items": 40.10, "shipping": 12.50, "total": 52.60}'::jsonb,
          'totals: items = sum(quantity x unit_price), total = items + shipping');
SELECT is(orderdb.get_order(:o) ->> 'priority', 'express', 'priority');
SELECT is(orderdb.get_order(:o) #>> '{options,currency}', 'USD', 'currency stored upper-case');
SELECT is(orderdb.get_order(:o) #> '{options,shipping_fee}', '12.50'::jsonb, 'shipping_fee stored as a number');
SELECT is(orderdb.get_order(:o) #>> '{options,promised_delivery_at}', '2031-01-01 12:00+08', 'promised times kept as sent');
SELECT is(orderdb.get_order(:o) #>> '{options,channel}', 'web', 'an unknown top-level key is kept');
SELECT is((SELECT row(currency, priority, items_total, shipping_fee)::text FROM orderdb.orders WHERE order_id = :o),
          row('USD', 'express', 40.10, 12.50)::text, 'the columns');
SELECT is((SELECT payload -> 'totals' FROM orderdb.outbox WHERE order_id = :o AND event_type = 'order.created'),
          '{"currency": "USD", "items": 40.10, "shipping": 12.50, "total": 52.60}'::jsonb, 'order.created carries the totals');

-- defaults, and a line without a price
SELECT order_id AS d FROM orderdb.create_order(99716003, 7716003, '[{"sku": "ODK-A", "quantity": 1}]') \gset
SELECT is(orderdb.get_order(:d) -> 'totals', '{"currency": "CNY", "items": 0, "shipping": 0, "total": 0}'::jsonb,
          'defaults: CNY, no shipping; a line without a price counts 0');
SELECT is(orderdb.get_order(:d) ->> 'priority', 'normal', 'priority defaults to normal');
-- an order from before order data (items_total NULL): summed from its lines
UPDATE orderdb.orders SET items_total = NULL WHERE order_id = :o;
SELECT is(orderdb.get_order(:o) #> '{totals,items}', '40.10'::jsonb, 'an older order''s items are summed from its lines');
-- the idempotency hash is over the options as sent: the same request replays
SELECT FROM orderdb.create_order(99716003, 7716003, '[{"sku": "ODK-A", "quantity": 1}]', 'odk-key', NULL, '{"currency": "eur"}');
SELECT is((SELECT replayed FROM orderdb.create_order(99716003, 7716003, '[{"sku": "ODK-A", "quantity": 1}]', 'odk-key', NULL,
                                                     '{"currency": "eur"}')), true, 'a replay with the same options');
SELECT throws_ok($$ SELECT FROM orderdb.create_order(99716003, 7716003, '[{"sku": "ODK-A", "quantity": 1}]', 'odk-key', NULL,
                                                     '{"currency": "EUR"}') $$, 'OD006', NULL,
                 'other options under the same key: OD006 (the hash is over the options as sent)');

SELECT * FROM finish();
ROLLBACK;
