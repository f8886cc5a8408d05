-- create_order validates options.ship_to (orderdb._check_ship_to): every bad field is 22023
-- naming ship_to.<field>, and nothing is written; a good ship_to is stored normalised (texts
-- trimmed, phone normalised, country upper-cased and defaulted to CN).
BEGIN;
SELECT plan(26);

SELECT FROM orderdb.receive_stock(7716001, 'ODS-A', 100);
CREATE TEMP TABLE before AS
    SELECT (SELECT count(*) FROM orderdb.orders WHERE customer_id = 99716001) AS orders,
           (SELECT count(*) FROM orderdb.outbox WHERE event_type = 'order.created'
                                                  AND payload ->> 'customer_id' = '99716001') AS events,
           (SELECT reserved FROM orderdb.inventory WHERE warehouse_id = 7716001 AND sku = 'ODS-A') AS reserved;

CREATE FUNCTION pg_temp.co(p_ship_to text)
RETURNS text LANGUAGE sql AS $f$
    SELECT format('SELECT * FROM orderdb.create_order(99716001, 7716001, %L::jsonb, NULL, NULL, %L::jsonb)',
                  '[{"sku": "ODS-A", "quantity": 1}]', '{"ship_to": ' || p_ship_to || '}');
$f$;

SELECT throws_ok(pg_temp.co('"Shanghai"'), '22023', 'ship_to must be a JSON object', 'ship_to a string');
SELECT throws_ok(pg_temp.co('{"name": "Li"}'), '22023', 'ship_to.line1 is required', 'line1 missing');
SELECT throws_ok(pg_temp.co('{"line1": "   "}'), '22023', 'ship_to.line1 must be 1 to 200 characters', 'blank line1');
SELECT throws_ok(pg_temp.co('{"line1": 5}'), '22023', 'ship_to.line1 must be a string', 'line1 a number');
SELECT throws_ok(pg_temp.co(format('{"line1": "%s"}', repeat('x', 201))), '22023',
                 'ship_to.line1 must be 1 to 200 characters', 'line1 over 200');
SELECT throws_ok(pg_temp.co(format('{"line1": "a", "name": "%s"}', repeat('x', 101))), '22023',
                 'ship_to.name must be 1 to 100 characters', 'name over 100');
SELECT throws_ok(pg_temp.co('{"line1": "a", "city": "x\u0007y"}'), '22023',
                 'ship_to.city must not contain control characters', 'control character in city');
SELECT throws_ok(pg_temp.co('{"line1": "a", "phone": "12345"}'), '22023',
                 'ship_to.phone is not a phone number', 'short phone');
SELECT throws_ok(pg_temp.co('{"line1": "a", "phone": 13812345678}'), '22023',
                 'ship_to.phone must be a string', 'phone a number');
SELECT throws_ok(pg_temp.co('{"line1": "a", "country": "ZZ"}'), '22023',
                 'ship_to.country must be an ISO 3166-1 alpha-2 code (e.g. CN)', 'unknown country');
SELECT throws_ok(pg_temp.co('{"line1": "a", "country": "CHN"}'), '22023',
                 'ship_to.country must be an ISO 3166-1 alpha-2 code (e.g. CN)', 'alpha-3 country');
SELECT throws_ok(pg_temp.co('{"line1": "a", "postcode": "20012"}'), '22023',
                 'ship_to.postcode must be 6 digits in CN', 'CN postcode of 5 digits');
SELECT throws_ok(pg_temp.co('{"line1": "a", "country": "GB", "postcode": "-SW1"}'), '22023',
                 'ship_to.postcode must be 2 to 16 letters, digits, spaces or dashes', 'bad GB postcode');
SELECT throws_ok(pg_temp.co('{"line1": "a", "lat": 91, "lon": 0}'), '22023',
                 'ship_to.lat must be a number from -90 to 90', 'lat 91');
SELECT throws_ok(pg_temp.co('{"line1": "a", "lat": 0, "lon": "121"}'), '22023',
                 'ship_to.lon must be a number from -180 to 180', 'lon a string');
SELECT throws_ok(pg_temp.co('{"line1": "a", "lat": 31.2}'), '22023',
                 'ship_to.lon is required with ship_to.lat', 'lat without lon');
SELECT throws_ok(pg_temp.co('{"line1": "a", "adress": "typo"}'), '22023',
                 'ship_to.adress is not a ship_to field', 'unknown field');

SELECT is((SELECT row(b.orders, b.events, b.reserved)::text FROM before b),
          (SELECT row((SELECT count(*) FROM orderdb.orders WHERE customer_id = 99716001),
                      (SELECT count(*) FROM orderdb.outbox WHERE event_type = 'order.created'
                                                            AND payload ->> 'customer_id' = '99716001'),
                      (SELECT reserved FROM orderdb.inventory WHERE warehouse_id = 7716001 AND sku = 'ODS-A'))::text),
          'a refused ship_to writes nothing (no order, no event, no reservation)');

-- a good one, normalised
SELECT order_id AS good FROM orderdb.create_order(99716001, 7716001, '[{"sku": "ODS-A", "quantity": 1}]', NULL, NULL,
       '{"ship_to": {"name": " 张三 ", "phone": "+86 138-1234-5678", "country": "cn", "province": "上海市",
                     "city": "上海市", "district": "浦东新区", "line1": "世纪大道100号　", "line2": null,
                     "postcode": "200120", "lat": 31.23, "lon": 121.5}}') \gset
SELECT is(orderdb.get_order(:good) #> '{options,ship_to}',
          '{"name": "张三", "phone": "+8613812345678", "country": "CN", "province": "上海市", "city": "上海市",
            "district": "浦东新区", "line1": "世纪大道100号", "postcode": "200120", "lat": 31.23, "lon": 121.5}'::jsonb,
          'ship_to stored normalised (trimmed, phone +86..., country upper-case, null field left out)');
SELECT order_id AS minimal FROM orderdb.create_order(99716001, 7716001, '[{"sku": "ODS-A", "quantity": 1}]', NULL, NULL,
       '{"ship_to": {"line1": "1 Main St"}}') \gset
SELECT is(orderdb.get_order(:minimal) #> '{options,ship_to}', '{"line1": "1 Main St", "country": "CN"}'::jsonb,
          'country defaults to CN');
SELECT order_id AS gb FROM orderdb.create_order(99716001, 7716001, '[{"sku": "ODS-A", "quantity": 1}]', NULL, NULL,
       '{"ship_to": {"line1": "10 Downing St", "country": "GB", "postcode": "SW1A 2AA"}}') \gset
SELECT is(orderdb.get_order(:gb) #>> '{options,ship_to,postcode}', 'SW1A 2AA', 'a GB postcode');

-- the helpers directly
SELECT is(orderdb._check_ship_to('{"line1": "a", "name": null}'), '{"line1": "a", "country": "CN"}'::jsonb,
          '_check_ship_to: null fields are left out');
SELECT throws_ok($$ SELECT orderdb._check_ship_to(NULL) $$, '22023', 'ship_to must be a JSON object',
                 '_check_ship_to(NULL)');
SELECT throws_ok(pg_temp.co('{"line1": "a", "x y\"": 1}'), '22023', 'ship_to."x y\"" is not a ship_to field',
                 'an odd key is named quoted');
SELECT throws_ok(pg_temp.co('{"line1": "a", "lat": 0, "lon": 180.5}'), '22023',
                 'ship_to.lon must be a number from -180 to 180', 'lon 180.5');
SELECT lives_ok($$ SELECT orderdb._check_ship_to('{"line1": "a", "lat": -90, "lon": 180}') $$,
                'lat -90 and lon 180 are in range');

SELECT * FROM finish();
ROLLBACK;
