-- wms_callback: the same event id twice is a duplicate that returns the current status and
-- version and changes nothing; the event is stored once. The same id with another event type is
-- OD006 (tests/pgtap/wms_callback/event_id_scope.test.sql).
BEGIN;
SELECT plan(6);

SELECT FROM orderdb.receive_stock(401, 'WA', 10);
SELECT order_id AS o FROM orderdb.create_order(1, 401, '[{"sku": "WA", "quantity": 2}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);

SELECT results_eq(format($$ SELECT status, version, duplicate FROM orderdb.wms_callback('wms-1', %s, 'PICKED') $$, :o),
                  $$ VALUES ('picked'::text, 4, false) $$, 'first PICKED walks confirmed -> dispatched -> picked');
SELECT results_eq(format($$ SELECT status, version, duplicate FROM orderdb.wms_callback('wms-1', %s, 'PICKED') $$, :o),
                  $$ VALUES ('picked'::text, 4, true) $$, 'replay: duplicate, same status and version');
SELECT throws_ok(format($$ SELECT * FROM orderdb.wms_callback('wms-1', %s, 'PACKED') $$, :o),
                 'OD006', NULL, 'same id with another type is an idempotency conflict: no change');
SELECT is((SELECT count(*)::int FROM orderdb.wms_events WHERE event_id = 'wms-1'), 1, 'stored once');
SELECT is((SELECT count(*)::int FROM orderdb.order_status_history WHERE order_id = :o), 3, 'history unchanged by replays');
SELECT is((SELECT outcome FROM orderdb.wms_events WHERE event_id = 'wms-1'), 'applied', 'outcome recorded');

SELECT * FROM finish();
ROLLBACK;
