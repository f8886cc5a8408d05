-- Phones (orderdb._normalize_phone, orderdb._mask_phone): Chinese mobiles (+86 / 0086 optional,
-- spaces, dashes, parentheses), Chinese landlines (area code 0 + 2 digits when it starts with 1
-- or 2, else 0 + 3 digits; 7-8 digits; extension) and E.164 are accepted and stored normalised;
-- anything else is 22023 'ship_to.phone is not a phone number'. Masks: 138****5678,
-- 010-****5678, +14*****2671.
BEGIN;
SELECT plan(36);

SELECT is(orderdb._normalize_phone(p), n, format('accepted: %s', p))
  FROM (VALUES ('13812345678', '+8613812345678'),
               ('138 1234 5678', '+8613812345678'),
               ('138-1234-5678', '+8613812345678'),
               ('+86 138 1234 5678', '+8613812345678'),
               ('+8613812345678', '+8613812345678'),
               ('0086-13812345678', '+8613812345678'),
               ('(+86) 19912345678', '+8619912345678'),
               ('010-12345678', '010-12345678'),
               ('010 1234 5678', '010-12345678'),
               ('(021) 1234-5678', '021-12345678'),
               ('0755-1234567', '0755-1234567'),
               ('0755 12345678', '0755-12345678'),
               ('021-12345678-123', '021-12345678-123'),
               ('021-12345678 ext 9', '021-12345678-9'),
               ('021-12345678转801', '021-12345678-801'),
               ('+1 (415) 555-2671', '+14155552671'),
               ('+44 20 7946 0958', '+442079460958'),
               ('0049 30 1234567', '+49301234567')) AS t(p, n);

SELECT is(orderdb._normalize_phone(p), NULL, format('refused: %s', coalesce(p, 'NULL')))
  FROM (VALUES ('12812345678'),          -- second digit 2: not a mobile
               ('1381234567'),           -- 10 digits
               ('138123456789'),         -- 12 digits
               ('0123-1234567'),         -- 3-digit area code starting with 1
               ('010-123456'),           -- 6-digit local number
               ('+0123456789'),          -- E.164 starts with 0 after +
               ('+1234567'),             -- 7 digits
               ('138.1234.5678'),        -- dots are not separators
               ('+861381234567'),        -- +86 and a 10-digit mobile: not E.164 either
               ('0086 199 1234 56789'),  -- +86 and a 12-digit mobile
               ('phone: 13812345678'),
               (repeat('1', 41))) AS t(p);

SELECT is(orderdb._mask_phone('+8613812345678'), '138****5678', 'mobile mask');
SELECT is(orderdb._mask_phone('010-12345678-123'), '010-****5678', 'landline mask (no extension)');
SELECT is(orderdb._mask_phone('+14155552671'), '+14*****2671', 'E.164 mask');
SELECT is(orderdb._mask_phone('call me on 555 0199 0000'), '****0000',
          'a phone stored before validation shows its last 4 digits only');
SELECT is(orderdb._mask_phone(NULL), NULL, 'no phone, no mask');

-- through create_order
SELECT FROM orderdb.receive_stock(7716002, 'ODP-A', 10);
SELECT throws_ok($$ SELECT FROM orderdb.create_order(99716002, 7716002, '[{"sku": "ODP-A", "quantity": 1}]', NULL, NULL,
                     '{"ship_to": {"line1": "a", "phone": "12812345678"}}') $$,
                 '22023', 'ship_to.phone is not a phone number', 'create_order refuses a bad phone');

SELECT * FROM finish();
ROLLBACK;
