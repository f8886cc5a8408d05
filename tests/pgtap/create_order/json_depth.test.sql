-- Every JSON argument nests at most 32 levels deep (besides its 64 kB bound): deeper is 22023
-- naming the argument, and nothing is written. 32 levels are accepted. Options nested 1,000
-- deep (2 kB) used to be stored, and no JSON decoder with a recursion limit could read the
-- order back.
BEGIN;
SELECT plan(14);

SELECT FROM orderdb.receive_stock(915401, 'JD-A', 10);
CREATE TEMP TABLE deep AS
SELECT (repeat('{"a":', 1000) || '1' || repeat('}', 1000))::jsonb AS d1000,
       (repeat('{"a":', 33) || '1' || repeat('}', 33))::jsonb AS d33,
       (repeat('{"a":', 32) || '1' || repeat('}', 32))::jsonb AS d32,
       (repeat('[', 32) || repeat(']', 32))::jsonb AS arr32;
SELECT ok((SELECT octet_length(d1000::text) < 8192 FROM deep), 'the 1,000-deep document is small (under 8 kB)');

SELECT throws_ok($$ SELECT * FROM orderdb.create_order(915401, 915401, '[{"sku": "JD-A", "quantity": 1}]', NULL, NULL, (SELECT d1000 FROM deep)) $$,
                 '22023', 'options must nest at most 32 levels deep', 'options 1,000 deep are refused');
SELECT throws_ok($$ SELECT * FROM orderdb.create_order(915401, 915401, '[{"sku": "JD-A", "quantity": 1}]', NULL, NULL, (SELECT d33 FROM deep)) $$,
                 '22023', 'options must nest at most 32 levels deep', 'options 33 deep are refused');
SELECT is((SELECT count(*)::int FROM orderdb.orders WHERE customer_id = 915401), 0, 'no order written');
SELECT lives_ok($$ SELECT * FROM orderdb.create_order(915401, 915401, '[{"sku": "JD-A", "quantity": 1}]', NULL, NULL, (SELECT d32 FROM deep)) $$,
                'options 32 deep are accepted');
SELECT throws_ok($$ SELECT * FROM orderdb.create_order(915401, 915401,
                        jsonb_build_array(jsonb_build_object('sku', 'JD-A', 'quantity', 1, 'note', (SELECT arr32 FROM deep)))) $$,
                 '22023', 'items must nest at most 32 levels deep', 'a line with a deep extra key: the items array is 34 deep');

SELECT order_id AS o FROM orderdb.create_order(915401, 915401, '[{"sku": "JD-A", "quantity": 1}]') \gset
SELECT throws_ok(format($$ SELECT * FROM orderdb.transition_order(%s, 'confirmed', 1, NULL, NULL, (SELECT d33 FROM deep)) $$, :o),
                 '22023', 'context must nest at most 32 levels deep', 'transition_order context');
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('jd-915401-1', %s, 'PICKED', (SELECT d33 FROM deep)) $$, :o),
                 '22023', 'payload must nest at most 32 levels deep', 'wms_callback payload');
SELECT throws_ok($$ SELECT * FROM orderdb.record_tracking_event('GENERIC', 'JD915401', now(), 'in_transit', NULL, NULL, NULL, (SELECT d33 FROM deep)) $$,
                 '22023', 'payload must nest at most 32 levels deep', 'record_tracking_event payload');
SELECT throws_ok(format($$ SELECT * FROM orderdb.cancel_order_lines(%s, jsonb_build_array(jsonb_build_object('sku', 'JD-A', 'x', (SELECT arr32 FROM deep))), 2) $$, :o),
                 '22023', 'lines must nest at most 32 levels deep', 'cancel_order_lines lines');
SELECT throws_ok(format($$ SELECT * FROM orderdb.request_return(%s, jsonb_build_array(jsonb_build_object('sku', 'JD-A', 'x', (SELECT arr32 FROM deep))), 2) $$, :o),
                 '22023', 'lines must nest at most 32 levels deep', 'request_return lines');
SELECT throws_ok(format($$ SELECT * FROM orderdb.receive_return(%s, jsonb_build_array(jsonb_build_object('sku', 'JD-A', 'x', (SELECT arr32 FROM deep)))) $$, :o),
                 '22023', 'lines must nest at most 32 levels deep', 'receive_return lines');
SELECT results_eq(format($$ SELECT status, version FROM orderdb.orders WHERE order_id = %s $$, :o),
                  $$ VALUES ('confirmed'::text, 2) $$, 'the order is unchanged');
SELECT ok(NOT orderdb._json_too_deep('"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{"', '"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{"'),
          'brackets inside a string are not nesting');

SELECT * FROM finish();
ROLLBACK;
