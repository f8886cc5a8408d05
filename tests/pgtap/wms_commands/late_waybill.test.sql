-- A waybill the carrier made after its order stopped needing it (the WMS shipped the order with a
-- tracking number of its own while the waybill was being booked) is not recorded, and its
-- cancel_waybill is queued once, so that no booked parcel is left at the carrier. A waybill of an
-- order cancelled meanwhile keeps the one cancel_waybill the cancel queued.
BEGIN;
SELECT plan(7);

SELECT FROM orderdb.receive_stock(7742401, 'LW-A', 100);
SELECT FROM orderdb.set_warehouse_wms(7742401, 'sim', NULL, NULL, 'SIM');
CREATE TEMP TABLE held AS
    SELECT command_id, next_attempt_at FROM orderdb.wms_commands WHERE status IN ('pending', 'sending');
UPDATE orderdb.wms_commands SET next_attempt_at = now() + interval '1 day'
 WHERE command_id IN (SELECT command_id FROM held);

CREATE FUNCTION pg_temp.packed_order(p_tag text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE v_id bigint;
BEGIN
    SELECT order_id INTO v_id FROM orderdb.create_order(99742401, 7742401, '[{"sku": "LW-A", "quantity": 1}]', NULL, NULL,
        '{"ship_to": {"name": "Han Meimei", "line1": "8 Zhongshan Rd", "city": "Wuhan", "postcode": "430000"}}');
    PERFORM orderdb.transition_order(v_id, 'confirmed', 1);
    PERFORM orderdb.wms_callback('lw-' || p_tag, v_id, 'PACKED');
    RETURN v_id;
END;
$$;
CREATE FUNCTION pg_temp.commands(p_order bigint) RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce(string_agg(kind || ':' || status, ' ' ORDER BY command_id), '')
      FROM orderdb.wms_commands WHERE order_id = p_order;
$$;

-- the waybill is being booked when the WMS ships the order with its own tracking number
SELECT pg_temp.packed_order('a') AS a \gset
CREATE TEMP TABLE wa AS SELECT * FROM orderdb.claim_wms_commands('lw', 100, 60) WHERE order_id = :a;
SELECT FROM orderdb.wms_callback('lw-a-shipped', :a, 'SHIPPED', '{"carrier": "SIM", "tracking_number": "LW-WMS-1"}');
SELECT is(orderdb.complete_wms_command((SELECT command_id FROM wa), 'lw', 1, NULL, 'LW-LATE-1'), 'done',
          'the late waybill is done');
SELECT is((SELECT string_agg(tracking_number, ' ') FROM orderdb.shipments WHERE order_id = :a), 'LW-WMS-1',
          'the order keeps the WMS''s tracking number only');
SELECT is(pg_temp.commands(:a), 'waybill:done cancel_waybill:pending', 'the late waybill gets a cancel_waybill');
SELECT is((SELECT row(kind, carrier, tracking_number)::text FROM orderdb.claim_wms_commands('lw', 100, 60) WHERE order_id = :a),
          row('cancel_waybill', 'SIM', 'LW-LATE-1')::text, 'which cancels the late waybill''s number');
SELECT is((SELECT response ->> 'recorded' FROM orderdb.wms_commands WHERE command_id = (SELECT command_id FROM wa)), 'false',
          'the waybill''s response says it was not recorded');

-- cancelled while the waybill was being booked: the cancel's cancel_waybill, no second one
SELECT pg_temp.packed_order('b') AS b \gset
CREATE TEMP TABLE wb AS SELECT * FROM orderdb.claim_wms_commands('lw', 100, 60) WHERE order_id = :b;
SELECT FROM orderdb.transition_order(:b, 'cancelled', 5);
SELECT is(orderdb.complete_wms_command((SELECT command_id FROM wb), 'lw', 1, NULL, 'LW-LATE-2'), 'done',
          'the waybill of a cancelled order is done');
SELECT is(pg_temp.commands(:b), 'waybill:done cancel_waybill:pending', 'one cancel_waybill, the cancel''s');

UPDATE orderdb.wms_commands w SET next_attempt_at = h.next_attempt_at FROM held h WHERE w.command_id = h.command_id;
SELECT * FROM finish();
ROLLBACK;
