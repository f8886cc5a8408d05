-- A carrier exception or delivery failure on an open parcel is an alert (source carrier,
-- subject: the order number, message: the tracking number) until a later carrier event moves
-- the parcel on; each parcel of an order on its own; a delivered parcel or order never alerts.
-- Scoped to this file's own warehouse, orders and tracking numbers.
\set QUIET on
BEGIN;
SELECT plan(10);

SELECT orderdb.receive_stock(73841, 'CEX-A', 50) \gset
SELECT orderdb.receive_stock(73841, 'CEX-B', 50) \gset
-- two parcels of one order
SELECT order_id AS two, order_no AS two_no
  FROM orderdb.create_order(1, 73841, '[{"sku": "CEX-A", "quantity": 1}, {"sku": "CEX-B", "quantity": 1}]') \gset
SELECT orderdb.transition_order(:two, 'confirmed', 1) \gset
SELECT orderdb.wms_callback('cex-73841-two-1', :two, 'SHIPPED',
       jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'CEX73841-P1',
                          'lines', '[{"sku": "CEX-A", "quantity": 1}]'::jsonb,
                          'occurred_at', now() - interval '2 days')) \gset
SELECT orderdb.wms_callback('cex-73841-two-2', :two, 'SHIPPED',
       jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'CEX73841-P2',
                          'lines', '[{"sku": "CEX-B", "quantity": 1}]'::jsonb,
                          'occurred_at', now() - interval '2 days')) \gset
SELECT orderdb.record_tracking_event('GENERIC', 'CEX73841-P1', now() - interval '1 day', 'in_transit') \gset
SELECT orderdb.record_tracking_event('GENERIC', 'CEX73841-P2', now() - interval '1 day', 'in_transit') \gset
SELECT orderdb.record_tracking_event('GENERIC', 'CEX73841-P1', now() - interval '3 hours', 'exception',
       p_location => 'Shenzhen hub', p_description => 'parcel crushed') \gset
-- an order whose one parcel failed an exception and was delivered afterwards
SELECT order_id AS done, order_no AS done_no
  FROM orderdb.create_order(1, 73841, '[{"sku": "CEX-A", "quantity": 1}]') \gset
SELECT orderdb.transition_order(:done, 'confirmed', 1) \gset
SELECT orderdb.wms_callback('cex-73841-done', :done, 'SHIPPED',
       jsonb_build_object('carrier', 'GENERIC', 'tracking_number', 'CEX73841-D',
                          'occurred_at', now() - interval '2 days')) \gset
SELECT orderdb.record_tracking_event('GENERIC', 'CEX73841-D', now() - interval '5 hours', 'exception',
       p_description => 'address unclear') \gset
SELECT orderdb.record_tracking_event('GENERIC', 'CEX73841-D', now() - interval '1 hour', 'delivered') \gset

SELECT results_eq(
    format($$ SELECT source, subject COLLATE "default", level, since FROM orderdb_ops.alerts
               WHERE subject IN (%L, %L) $$, :'two_no', :'done_no'),
    format($$ VALUES ('carrier'::text, %L::text, 'critical'::text, now() - interval '3 hours') $$,
           :'two_no'),
    'a carrier exception on an open parcel: one alert for its order, since the event time');
SELECT ok((SELECT message LIKE '%CEX73841-P1%' AND message LIKE '%parcel crushed%'
                  AND message NOT LIKE '%CEX73841-P2%'
             FROM orderdb_ops.alerts WHERE source = 'carrier' AND subject = :'two_no'),
          'the message names the tracking number and what the carrier said');
SELECT is_empty(format($$ SELECT 1 FROM orderdb_ops.alerts WHERE subject = %L $$, :'done_no'),
                'an exception followed by a delivered event: no alert');

-- the other parcel of the same order fails a delivery attempt: a second row for the order
SELECT orderdb.record_tracking_event('GENERIC', 'CEX73841-P2', now() - interval '2 hours', 'failed_attempt',
       p_description => 'nobody home') \gset
SELECT results_eq(
    format($$ SELECT level, since, message LIKE '%%CEX73841-P2%%' FROM orderdb_ops.alerts
               WHERE source = 'carrier' AND subject = %L ORDER BY since $$, :'two_no'),
    $$ VALUES ('critical'::text, now() - interval '3 hours', false),
              ('warning', now() - interval '2 hours', true) $$,
    'a delivery failure on another parcel of the order is its own row (a warning)');

-- an older event uploaded late does not move the parcel on
SELECT orderdb.record_tracking_event('GENERIC', 'CEX73841-P1', now() - interval '4 hours', 'in_transit',
       p_event_id => 'cex-73841-late') \gset
SELECT is((SELECT count(*)::integer FROM orderdb_ops.alerts
            WHERE source = 'carrier' AND subject = :'two_no' AND message LIKE '%CEX73841-P1%'),
          1, 'an older event arriving late does not clear the exception');

-- a later event moves the parcel on: its alert goes, the other parcel's stays
SELECT orderdb.record_tracking_event('GENERIC', 'CEX73841-P1', now() - interval '1 hour', 'in_transit') \gset
SELECT results_eq(
    format($$ SELECT message LIKE '%%CEX73841-P2%%' FROM orderdb_ops.alerts
               WHERE source = 'carrier' AND subject = %L $$, :'two_no'),
    $$ VALUES (true) $$,
    'a later carrier event clears that parcel''s alert only');

-- the exception is raised again, then the parcel is delivered: cleared
SELECT orderdb.record_tracking_event('GENERIC', 'CEX73841-P1', now() - interval '50 minutes', 'exception',
       p_description => 'customs hold') \gset
SELECT is((SELECT count(*)::integer FROM orderdb_ops.alerts
            WHERE source = 'carrier' AND subject = :'two_no'), 2, 'a new exception alerts again');
SELECT orderdb.record_tracking_event('GENERIC', 'CEX73841-P1', now() - interval '40 minutes', 'delivered') \gset
SELECT is((SELECT count(*)::integer FROM orderdb_ops.alerts
            WHERE source = 'carrier' AND subject = :'two_no' AND message LIKE '%CEX73841-P1%'),
          0, 'delivered clears the parcel''s alert');

-- both parcels delivered: the order is delivered; an exception reported afterwards never alerts
SELECT orderdb.record_tracking_event('GENERIC', 'CEX73841-P2', now() - interval '30 minutes', 'delivered') \gset
SELECT is((SELECT status FROM orderdb.orders WHERE order_id = :two), 'delivered', 'the order is delivered');
SELECT orderdb.record_tracking_event('GENERIC', 'CEX73841-P2', now() - interval '10 minutes', 'exception',
       p_description => 'scan after delivery') \gset
SELECT is_empty(format($$ SELECT 1 FROM orderdb_ops.alerts WHERE subject = %L $$, :'two_no'),
                'a delivered order never alerts');

SELECT * FROM finish();
ROLLBACK;
