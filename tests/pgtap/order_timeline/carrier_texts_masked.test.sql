-- order_timeline never passes on a full phone number a carrier wrote into its own texts: a phone
-- inside a carrier event's description or location (Chinese mobile, landline, E.164), or inside
-- the courier's or the recipient's name, is masked as orderdb._mask_phone masks it; the rest of
-- the text and digits that are no phone (tracking numbers, times, longer digit runs) stay.
BEGIN;
SELECT plan(9);

SELECT FROM orderdb.receive_stock(7716019, 'ODT-M', 100);
SELECT order_id AS o, order_no AS ono FROM orderdb.create_order(99716019, 7716019, '[{"sku": "ODT-M", "quantity": 1}]',
       NULL, NULL, '{"ship_to": {"name": "王五 13812345678", "phone": "138 1234 5678", "city": "深圳市", "line1": "科技园1号"}}') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:o, 'dispatched', 2);
SELECT FROM orderdb.wms_callback('odt-7716019-1', :o, 'SHIPPED', '{"carrier": "GENERIC", "tracking_number": "ODT-TN-7716019"}');
SELECT FROM orderdb.record_tracking_event('GENERIC', 'ODT-TN-7716019', now() - interval '3 hours', 'in_transit',
       '南山区 网点电话 0755-12345678', '到达网点, 单号 SF1391234567801, 2026-12-06 10:30');
SELECT FROM orderdb.record_tracking_event('GENERIC', 'ODT-TN-7716019', now() - interval '2 hours', 'in_transit',
       NULL, 'Arrived, call +44 20 7946 0958');
SELECT FROM orderdb.record_tracking_event('GENERIC', 'ODT-TN-7716019', now() - interval '1 hour', 'out_for_delivery',
       '深圳', '快递员赵师傅(139 0000 1111)正在为您派件,电话+8613900001111', NULL,
       '{"courier": {"name": "赵师傅13900001111", "phone": "+86 139 0000 1111"}}');

SELECT ok(orderdb.order_timeline(:o)::text !~ '13900001111|139 0000 1111|0755-12345678|20 7946 0958|13812345678',
          'no full phone in order_timeline');
SELECT ok(orderdb.order_timeline_by_no(:'ono', 99716019, 'zh-CN')::text !~ '13900001111|139 0000 1111|0755-12345678|20 7946 0958|13812345678',
          'no full phone in order_timeline_by_no');
SELECT is((SELECT e ->> 'description' FROM jsonb_array_elements(orderdb.order_timeline(:o, NULL, 'zh-CN') -> 'timeline') e
            WHERE e ->> 'status' = 'out_for_delivery'),
          '快递员赵师傅(139****1111)正在为您派件,电话139****1111', 'a mobile in a carrier description is masked');
SELECT is((SELECT e ->> 'location' FROM jsonb_array_elements(orderdb.order_timeline(:o, NULL, 'zh-CN') -> 'timeline') e
            WHERE e ->> 'description' LIKE '到达网点%'),
          '南山区 网点电话 0755-****5678', 'a landline in a carrier location is masked');
SELECT is((SELECT e ->> 'description' FROM jsonb_array_elements(orderdb.order_timeline(:o, NULL, 'zh-CN') -> 'timeline') e
            WHERE e ->> 'description' LIKE '到达网点%'),
          '到达网点, 单号 SF1391234567801, 2026-12-06 10:30', 'tracking numbers and times stay as they are');
SELECT is((SELECT e ->> 'description' FROM jsonb_array_elements(orderdb.order_timeline(:o) -> 'timeline') e
            WHERE e ->> 'description' LIKE 'Arrived%'),
          'Arrived, call +44******0958', 'an E.164 number in a carrier description is masked');
SELECT is(orderdb.order_timeline(:o) -> 'courier', '{"name": "赵师傅139****1111", "phone": "139****1111"}'::jsonb,
          'a phone in the courier''s name is masked');
SELECT is(orderdb.order_timeline(:o) #>> '{recipient,name}', '王五 138****5678', 'a phone in the recipient''s name is masked');
SELECT is(orderdb.order_timeline(:o) ->> 'current_location', '深圳', 'current_location as the carrier gave it');

SELECT * FROM finish();
ROLLBACK;
