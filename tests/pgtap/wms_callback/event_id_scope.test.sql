-- wms_callback: event ids are scoped per source. The same (source, id) with the same order and
-- event type is a duplicate; with another order or event type it is OD006 naming the event id,
-- and nothing changes; the same id from another source is another event.
BEGIN;
SELECT plan(13);

SELECT FROM orderdb.receive_stock(915201, 'SC-A', 10);
SELECT order_id AS o1 FROM orderdb.create_order(915201, 915201, '[{"sku": "SC-A", "quantity": 1}]') \gset
SELECT order_id AS o2 FROM orderdb.create_order(915201, 915201, '[{"sku": "SC-A", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o1, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:o2, 'confirmed', 1);

SELECT results_eq(format($$ SELECT status, duplicate FROM orderdb.wms_callback('sc-915201-1', %s, 'PICKED') $$, :o1),
                  $$ VALUES ('picked'::text, false) $$, 'first callback applied (default source)');
SELECT results_eq(format($$ SELECT status, duplicate FROM orderdb.wms_callback('sc-915201-1', %s, 'PICKED', '{}', 'wms') $$, :o1),
                  $$ VALUES ('picked'::text, true) $$, 'same source, id, order and type: duplicate');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('sc-915201-1', %s, 'PICKED') $$, :o2),
                 'OD006', $$event_id 'sc-915201-1' of source 'wms' was already used for another callback$$,
                 'same id for another order: OD006 naming the event id');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('sc-915201-1', %s, 'PACKED') $$, :o1),
                 'OD006', NULL, 'same id with another event type: OD006');
SELECT is((SELECT status FROM orderdb.orders WHERE order_id = :o2), 'confirmed', 'the other order did not move');
SELECT is((SELECT status FROM orderdb.orders WHERE order_id = :o1), 'picked', 'the first order did not move further');
SELECT is((SELECT count(*)::int FROM orderdb.wms_events WHERE event_id = 'sc-915201-1'), 1, 'nothing stored by the refused calls');

-- the DETAIL names what was stored and what this call asked
CREATE TEMP TABLE sc_detail (detail text);
DO $$
DECLARE v text;
BEGIN
    PERFORM orderdb.wms_callback('sc-915201-1', (SELECT max(order_id) FROM orderdb.orders WHERE customer_id = 915201), 'PICKED');
EXCEPTION WHEN SQLSTATE 'OD006' THEN
    GET STACKED DIAGNOSTICS v = PG_EXCEPTION_DETAIL;
    INSERT INTO sc_detail VALUES (v);
END;
$$;
SELECT matches((SELECT detail FROM sc_detail), '^stored: order_id=[0-9]+ event_type=PICKED; this call: order_id=[0-9]+ event_type=PICKED$',
               'the DETAIL gives the stored and the new order and type');

-- another source: another event
SELECT results_eq(format($$ SELECT status, duplicate FROM orderdb.wms_callback('sc-915201-1', %s, 'PICKED', '{}', 'wms-east') $$, :o2),
                  $$ VALUES ('picked'::text, false) $$, 'the same id from another source is another event');
SELECT results_eq(format($$ SELECT status, duplicate FROM orderdb.wms_callback('sc-915201-1', %s, 'PICKED', '{}', 'wms-east') $$, :o2),
                  $$ VALUES ('picked'::text, true) $$, 'and is deduplicated within its source');
SELECT results_eq($$ SELECT source, order_id FROM orderdb.wms_events WHERE event_id = 'sc-915201-1' ORDER BY source $$,
                  format($$ VALUES ('wms'::text, %s::bigint), ('wms-east', %s) $$, :o1, :o2),
                  'one stored callback per source');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('sc-915201-2', %s, 'PACKED', '{}', '') $$, :o1),
                 '22023', 'source must be 1 to 255 characters', 'an empty source is refused');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('sc-915201-2', %s, 'PACKED', '{}', NULL) $$, :o1),
                 '22023', 'source is required', 'a NULL source is refused');

SELECT * FROM finish();
ROLLBACK;
