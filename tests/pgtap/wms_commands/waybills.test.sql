-- A packed order without a tracking number gets a waybill command when its warehouse makes
-- waybills (a carrier in warehouse_wms; the order's options.carrier, else that one); its tracking
-- number is recorded as the WMS's SHIPPED records one (shipment, shipped). No waybill when the WMS brings a tracking number
-- (SHIPPED, or PACKED with one) or no carrier is known. Cancelling a packed order skips a
-- waybill never requested and cancels one that was (cancel_waybill with its tracking number).
-- Reallocation: the old warehouse's WMS gets a cancel, the new one a create.
BEGIN;
SELECT plan(15);

SELECT FROM orderdb.receive_stock(7742301, 'WW-A', 100);
SELECT FROM orderdb.receive_stock(7742302, 'WW-A', 100);
SELECT FROM orderdb.set_warehouse_wms(7742301, 'sim', NULL, NULL, 'SIM');
SELECT FROM orderdb.set_warehouse_wms(7742302, 'sim');
CREATE TEMP TABLE held AS
    SELECT command_id, next_attempt_at FROM orderdb.wms_commands WHERE status IN ('pending', 'sending');
UPDATE orderdb.wms_commands SET next_attempt_at = now() + interval '1 day'
 WHERE command_id IN (SELECT command_id FROM held);

CREATE FUNCTION pg_temp.packed_order(p_warehouse integer, p_tag text, p_options jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE v_id bigint;
BEGIN
    SELECT order_id INTO v_id FROM orderdb.create_order(99742301, p_warehouse, '[{"sku": "WW-A", "quantity": 1}]', NULL, NULL,
        '{"ship_to": {"name": "Han Meimei", "line1": "8 Zhongshan Rd", "city": "Wuhan", "postcode": "430000"}}'::jsonb || p_options);
    PERFORM orderdb.transition_order(v_id, 'confirmed', 1);
    PERFORM orderdb.wms_callback('ww-' || p_tag, v_id, 'PACKED');
    RETURN v_id;
END;
$$;
CREATE FUNCTION pg_temp.commands(p_order bigint) RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce(string_agg(kind || ':' || status, ' ' ORDER BY command_id), '')
      FROM orderdb.wms_commands WHERE order_id = p_order;
$$;

SELECT pg_temp.packed_order(7742301, 'a') AS a \gset
SELECT is(pg_temp.commands(:a), 'waybill:pending', 'packed without a tracking number: a waybill (the WMS itself moved the order, so no create)');
SELECT is((SELECT carrier || ' ' || (payload -> 'recipient' ->> 'name') FROM orderdb.wms_commands WHERE order_id = :a),
          'SIM Han Meimei', 'for the warehouse''s carrier, to the order''s recipient');
SELECT pg_temp.packed_order(7742301, 'b', '{"carrier": "ACME"}') AS b \gset
SELECT is((SELECT kind || ' ' || carrier FROM orderdb.wms_commands WHERE order_id = :b), 'waybill ACME',
          'the order''s own carrier (options.carrier)');
SELECT pg_temp.packed_order(7742302, 'b2', '{"carrier": "ACME"}') AS b2 \gset
SELECT is(pg_temp.commands(:b2), '',
          'a warehouse without a waybill carrier (its WMS reports tracking numbers): no waybill, whatever the order''s carrier');
SELECT pg_temp.packed_order(7742302, 'c') AS c \gset
SELECT is(pg_temp.commands(:c), '', 'no carrier known: no waybill');

SELECT order_id AS d FROM orderdb.create_order(99742301, 7742301, '[{"sku": "WW-A", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:d, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('ww-d', :d, 'SHIPPED', '{"carrier": "SIM", "tracking_number": "WW-D-1"}');
SELECT is(pg_temp.commands(:d), '', 'SHIPPED through packed brings its tracking number: no waybill');
SELECT order_id AS e FROM orderdb.create_order(99742301, 7742301, '[{"sku": "WW-A", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:e, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('ww-e', :e, 'PACKED', '{"tracking_number": "WW-E-1"}');
SELECT is(pg_temp.commands(:e), '', 'a PACKED callback with a tracking number: no waybill');

-- the carrier made the waybill: recorded as SHIPPED records a tracking number
CREATE TEMP TABLE wa AS SELECT * FROM orderdb.claim_wms_commands('w1', 100, 60) WHERE order_id = :a;
SELECT is((SELECT kind || ' ' || carrier FROM wa), 'waybill SIM', 'the waybill is claimed with its carrier');
SELECT is(orderdb.complete_wms_command((SELECT command_id FROM wa), 'w1', 1, NULL, 'WWTRACK0001', '{"label_url": null}'),
          'done', 'completed with the tracking number');
SELECT is((SELECT status FROM orderdb.orders WHERE order_id = :a), 'shipped', 'the order is shipped');
SELECT is((SELECT row(carrier, tracking_number)::text FROM orderdb.shipments WHERE order_id = :a),
          row('SIM', 'WWTRACK0001')::text, 'with a shipment of that tracking number');

-- cancelling packed orders: a waybill never requested is skipped; one being made is cancelled
SELECT pg_temp.packed_order(7742301, 'g') AS g \gset
CREATE TEMP TABLE wg AS SELECT * FROM orderdb.claim_wms_commands('w1', 100, 60) WHERE order_id = :g;
SELECT pg_temp.packed_order(7742301, 'f') AS f \gset
SELECT FROM orderdb.transition_order(:f, 'cancelled', 5);
SELECT FROM orderdb.transition_order(:g, 'cancelled', 5);
SELECT is(pg_temp.commands(:f) || ' / ' || pg_temp.commands(:g), 'waybill:skipped / waybill:sending cancel_waybill:pending',
          'cancelled: an unrequested waybill is skipped, a requested one gets a cancel_waybill');
SELECT is(orderdb.complete_wms_command((SELECT command_id FROM wg), 'w1', 1, NULL, 'WWTRACK0002'), 'done',
          'the waybill comes back after the cancel');
SELECT is((SELECT row(kind, carrier, tracking_number)::text FROM orderdb.claim_wms_commands('w1', 100, 60) WHERE order_id = :g),
          row('cancel_waybill', 'SIM', 'WWTRACK0002')::text, 'its cancel_waybill carries the tracking number');

-- reallocation of a dispatched order between two connected warehouses
SELECT order_id AS h FROM orderdb.create_order(99742301, 7742301, '[{"sku": "WW-A", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:h, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:h, 'dispatched', 2);
SELECT FROM orderdb.claim_wms_commands('w1', 100, 60) WHERE order_id = :h;
SELECT FROM orderdb.complete_wms_command((SELECT command_id FROM orderdb.wms_commands WHERE order_id = :h), 'w1', 1, 'SIM-H');
SELECT FROM orderdb.reallocate_order(:h, 7742302, 3);
SELECT is((SELECT string_agg(kind || '@' || warehouse_id || ':' || status, ' ' ORDER BY command_id) FROM orderdb.wms_commands WHERE order_id = :h),
          'create@7742301:done cancel@7742301:pending create@7742302:pending',
          'reallocated: the old WMS gets a cancel, the new one a create');

UPDATE orderdb.wms_commands w SET next_attempt_at = h.next_attempt_at FROM held h WHERE w.command_id = h.command_id;
SELECT * FROM finish();
ROLLBACK;
