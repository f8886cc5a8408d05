-- wms_callback: a callback that skips ahead walks forward through the skipped stages (each in the
-- history, at the payload's occurred_at); a late stage is recorded, changes nothing, no error.
BEGIN;
SELECT plan(8);

SELECT FROM orderdb.receive_stock(402, 'WB', 10);
SELECT order_id AS o FROM orderdb.create_order(1, 402, '[{"sku": "WB", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:o, 'dispatched', 2);

SELECT results_eq(format($$ SELECT status, version, duplicate FROM orderdb.wms_callback('sk-1', %s, 'PACKED',
                             jsonb_build_object('occurred_at', (now() - interval '2 hours')::text)) $$, :o),
                  $$ VALUES ('packed'::text, 5, false) $$, 'PACKED on a dispatched order ends packed');
SELECT results_eq(format($$ SELECT to_status, source FROM orderdb.order_status_history WHERE order_id = %s AND version >= 4 ORDER BY version $$, :o),
                  $$ VALUES ('picked'::text, 'wms'::text), ('packed', 'wms') $$, 'picked and packed are both in the history');
SELECT is((SELECT count(*)::int FROM orderdb.order_status_history WHERE order_id = :o AND version >= 4
            AND occurred_at = now() - interval '2 hours'), 2, 'both carry the warehouse time (occurred_at)');
SELECT ok((SELECT reason FROM orderdb.order_status_history WHERE order_id = :o AND version = 4) LIKE 'implied by%',
          'the skipped stage says why');

SELECT results_eq(format($$ SELECT status, version, duplicate FROM orderdb.wms_callback('sk-2', %s, 'PICKED') $$, :o),
                  $$ VALUES ('packed'::text, 5, false) $$, 'a late PICKED changes nothing and is no error');
SELECT is((SELECT outcome FROM orderdb.wms_events WHERE event_id = 'sk-2'), 'late', 'the late callback is stored as late');
SELECT results_eq(format($$ SELECT status, version FROM orderdb.wms_callback('sk-3', %s, 'PACKED') $$, :o),
                  $$ VALUES ('packed'::text, 5) $$, 'a repeated stage with a new id is recorded, no change');
SELECT is((SELECT count(*)::int FROM orderdb.wms_events WHERE order_id = :o), 3, 'every callback is stored');

SELECT * FROM finish();
ROLLBACK;
