-- order_timeline in a locale shows a carrier's own description only when it is written in that
-- locale's script (Chinese characters for zh-CN, none for the others); else the locale's text of
-- the carrier status, so every text of a zh-CN document is Chinese and of an en one English; a
-- Japanese locale a shop adds takes texts with Chinese characters or kana.
BEGIN;
SELECT plan(8);

SELECT FROM orderdb.receive_stock(7716021, 'ODT-L', 100);
SELECT order_id AS o FROM orderdb.create_order(99716021, 7716021, '[{"sku": "ODT-L", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:o, 'dispatched', 2);
SELECT FROM orderdb.wms_callback('odt-7716021-1', :o, 'SHIPPED', '{"carrier": "GENERIC", "tracking_number": "ODT-TN-7716021"}');
SELECT FROM orderdb.record_tracking_event('GENERIC', 'ODT-TN-7716021', now() - interval '2 hours', 'in_transit',
       'Guangzhou', 'Arrived at the sorting hub');
SELECT FROM orderdb.record_tracking_event('GENERIC', 'ODT-TN-7716021', now() - interval '1 hour', 'out_for_delivery',
       '深圳', '快件正在派送中，请保持电话畅通');

CREATE TEMP TABLE odt_l AS
SELECT l.locale, e ->> 'status' AS status, e ->> 'description' AS description
  FROM (VALUES ('en'), ('zh-CN')) l(locale),
       jsonb_array_elements(orderdb.order_timeline(:o, NULL, l.locale) -> 'timeline') e
 WHERE e ->> 'kind' = 'carrier';

SELECT is((SELECT description FROM odt_l WHERE locale = 'en' AND status = 'in_transit'),
          'Arrived at the sorting hub', 'en: an English carrier description is kept');
SELECT is((SELECT description FROM odt_l WHERE locale = 'zh-CN' AND status = 'out_for_delivery'),
          '快件正在派送中，请保持电话畅通', 'zh-CN: a Chinese carrier description is kept');
SELECT is((SELECT description FROM odt_l WHERE locale = 'zh-CN' AND status = 'in_transit'),
          orderdb._customer_text('carrier', 'in_transit', 'zh-CN'),
          'zh-CN: an English carrier description gives way to the Chinese text of the status');
SELECT is((SELECT description FROM odt_l WHERE locale = 'en' AND status = 'out_for_delivery'),
          orderdb._customer_text('carrier', 'out_for_delivery', 'en'),
          'en: a Chinese carrier description gives way to the English text of the status');
SELECT is_empty($$ SELECT description FROM odt_l WHERE locale = 'zh-CN' AND description !~ '[\u4e00-\u9fff]' $$,
                'zh-CN: every carrier entry is Chinese');
SELECT is_empty($$ SELECT description FROM odt_l WHERE locale = 'en' AND description ~ '[\u4e00-\u9fff]' $$,
                'en: no carrier entry is Chinese');

INSERT INTO orderdb.customer_texts (locale, kind, code, text) VALUES ('ja-ODT', 'carrier', 'in_transit', '輸送中');
SELECT is((SELECT e ->> 'description' FROM jsonb_array_elements(orderdb.order_timeline(:o, NULL, 'ja-ODT') -> 'timeline') e
            WHERE e ->> 'status' = 'in_transit' AND e ->> 'kind' = 'carrier'),
          '輸送中', 'ja: an English carrier description gives way to the shop''s Japanese text');
SELECT is((SELECT e ->> 'description' FROM jsonb_array_elements(orderdb.order_timeline(:o, NULL, 'ja-ODT') -> 'timeline') e
            WHERE e ->> 'status' = 'out_for_delivery'),
          '快件正在派送中，请保持电话畅通', 'ja: a description in Chinese characters is kept');

SELECT * FROM finish();
ROLLBACK;
