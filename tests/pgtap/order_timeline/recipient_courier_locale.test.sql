-- order_timeline's people and languages: "recipient" {name, masked phone, city}; "courier" while
-- delivering (named by an out_for_delivery carrier event's payload.courier, else the route's
-- courier), masked; no full phone anywhere in the document; p_locale 'en' | 'zh-CN' (any case)
-- chooses every text, unknown: 22023; "time_zone" Asia/Shanghai for zh-CN unless the order says
-- otherwise; the 2-argument call still works; order_timeline_by_no takes the locale too; every
-- 'en' text has a 'zh-CN' one.
BEGIN;
SELECT plan(22);

SELECT FROM orderdb.receive_stock(7716008, 'ODT-A', 100);
SELECT order_id AS o, order_no AS ono FROM orderdb.create_order(99716008, 7716008, '[{"sku": "ODT-A", "quantity": 1}]',
       NULL, NULL, '{"ship_to": {"name": "王五", "phone": "138 1234 5678", "city": "深圳市", "line1": "科技园1号"}}') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:o, 'dispatched', 2);
SELECT FROM orderdb.wms_callback('odt-7716008-1', :o, 'SHIPPED', '{"carrier": "GENERIC", "tracking_number": "ODT-TN-7716008"}');

SELECT is(orderdb.order_timeline(:o) -> 'recipient', '{"name": "王五", "phone": "138****5678", "city": "深圳市"}'::jsonb,
          'recipient: name, masked phone, city');
SELECT is(orderdb.order_timeline(:o) -> 'courier', 'null'::jsonb, 'shipped, not out for delivery: no courier');

SELECT FROM orderdb.record_tracking_event('GENERIC', 'ODT-TN-7716008', now() - interval '2 hours', 'in_transit');
SELECT FROM orderdb.record_tracking_event('GENERIC', 'ODT-TN-7716008', now() - interval '1 hour', 'out_for_delivery',
       p_payload => '{"courier": {"name": "赵师傅", "phone": "+86 139 0000 1111"}}');
SELECT is(orderdb.order_timeline(:o) -> 'courier', '{"name": "赵师傅", "phone": "139****1111"}'::jsonb,
          'out for delivery: the courier the carrier names, masked');
SELECT ok(position('13812345678' IN orderdb.order_timeline(:o)::text) = 0
          AND position('13900001111' IN orderdb.order_timeline(:o)::text) = 0
          AND position('13812345678' IN orderdb.order_timeline_by_no(:'ono', 99716008, 'zh-CN')::text) = 0,
          'no full phone anywhere in the customer''s documents');

-- languages
SELECT is(orderdb.order_timeline(:o, NULL, 'zh-CN') ->> 'status_text', '运输中', 'zh-CN: the status text');
SELECT is(orderdb.order_timeline(:o, NULL, 'zh-CN') #>> '{timeline,0,description}', '已下单', 'zh-CN: the first entry');
SELECT is(orderdb.order_timeline(:o, NULL, 'zh-CN') #>> '{labels,recipient}', '收件人', 'zh-CN: the page labels');
SELECT is((SELECT e ->> 'description' FROM jsonb_array_elements(orderdb.order_timeline(:o, NULL, 'zh-CN') -> 'timeline') e
            WHERE e ->> 'status' = 'out_for_delivery'), '派送中', 'zh-CN: a carrier status without description');
SELECT is(orderdb.order_timeline(:o, NULL, 'zh-cn') ->> 'locale', 'zh-CN', 'the locale is matched in any case');
SELECT is(orderdb.order_timeline(:o, NULL, 'zh-CN') ->> 'time_zone', 'Asia/Shanghai', 'zh-CN: Asia/Shanghai');
SELECT is(orderdb.order_timeline(:o) ->> 'time_zone', 'UTC', 'en: UTC');
SELECT is(orderdb.order_timeline(:o) #>> '{timeline,0,description}', 'Order placed', 'en by default');
SELECT is(orderdb.order_timeline(:o, 99716008) ->> 'locale', 'en', 'the 2-argument call still works');
SELECT throws_ok(format($$ SELECT orderdb.order_timeline(%s, NULL, 'fr') $$, :o), '22023', NULL, 'an unknown locale');
SELECT throws_ok($$ SELECT orderdb.order_timeline_by_no('ORD-NOPE', 1, 'xx') $$, '22023', NULL,
                 'order_timeline_by_no: an unknown locale is 22023 before the lookup');
SELECT is(orderdb.order_timeline_by_no(:'ono', 99716008, 'zh-CN') #>> '{timeline,0,description}', '已下单',
          'order_timeline_by_no passes the locale');
SELECT is_empty($$ SELECT e.kind, e.code FROM orderdb.customer_texts e WHERE e.locale = 'en'
                   EXCEPT SELECT z.kind, z.code FROM orderdb.customer_texts z WHERE z.locale = 'zh-CN' $$,
                'every en text has a zh-CN one');

-- the order's own time zone wins
SELECT order_id AS tz FROM orderdb.create_order(99716008, 7716008, '[{"sku": "ODT-A", "quantity": 1}]', NULL, NULL,
       '{"time_zone": "Europe/Berlin"}') \gset
SELECT is(orderdb.order_timeline(:tz, NULL, 'zh-CN') ->> 'time_zone', 'Europe/Berlin', 'options.time_zone wins');
SELECT is(orderdb.order_timeline(:tz) -> 'recipient', 'null'::jsonb, 'no ship_to: no recipient');

-- a route's courier (plan_routes)
SELECT order_id AS r FROM orderdb.create_order(99716008, 7716008, '[{"sku": "ODT-A", "quantity": 1}]', NULL, NULL,
       '{"ship_to": {"line1": "Dock 2", "lat": 22.54, "lon": 113.95, "phone": "010-12345678"}}') \gset
SELECT FROM orderdb.set_warehouse_location(7716008, 22.5, 113.9);
SELECT FROM orderdb.add_courier(7716008, '钱师傅', 22.5, 113.9, 5, true, '13711112222');
SELECT FROM orderdb.transition_order(:r, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:r, 'dispatched', 2);
SELECT FROM orderdb.transition_order(:r, 'picked', 3);
SELECT FROM orderdb.transition_order(:r, 'packed', 4);
SELECT FROM orderdb.plan_routes(7716008);
SELECT is(orderdb.order_timeline(:r) -> 'courier', 'null'::jsonb, 'routed but packed: no courier yet');
SELECT FROM orderdb.transition_order(:r, 'shipped', 5);
SELECT FROM orderdb.transition_order(:r, 'delivering', 6);
SELECT is(orderdb.order_timeline(:r) -> 'courier', '{"name": "钱师傅", "phone": "137****2222"}'::jsonb,
          'delivering on a route: the route''s courier, masked');
SELECT is(orderdb.order_timeline(:r) #>> '{recipient,phone}', '010-****5678', 'a landline masked');

SELECT * FROM finish();
ROLLBACK;
