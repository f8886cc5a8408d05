-- Cancelling some lines of an order its WMS has (cancel_order_lines) changes the document the WMS
-- picks from: the WMS gets the new document (in the create not sent yet, else in an update), so
-- that it does not pick the cancelled lines. Cancelling the whole order sends only its cancel; a
-- warehouse without a connector queues nothing.
BEGIN;
SELECT plan(8);

SELECT FROM orderdb.receive_stock(7742501, 'LC-A', 100);
SELECT FROM orderdb.receive_stock(7742501, 'LC-B', 100);
SELECT FROM orderdb.receive_stock(7742502, 'LC-A', 100);
SELECT FROM orderdb.receive_stock(7742502, 'LC-B', 100);
SELECT FROM orderdb.set_warehouse_wms(7742501, 'sim');
CREATE TEMP TABLE held AS
    SELECT command_id, next_attempt_at FROM orderdb.wms_commands WHERE status IN ('pending', 'sending');
UPDATE orderdb.wms_commands SET next_attempt_at = now() + interval '1 day'
 WHERE command_id IN (SELECT command_id FROM held);

CREATE FUNCTION pg_temp.dispatched(p_warehouse integer, p_sent boolean) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE v_id bigint;
BEGIN
    SELECT order_id INTO v_id FROM orderdb.create_order(99742501, p_warehouse,
        '[{"sku": "LC-A", "quantity": 2}, {"sku": "LC-B", "quantity": 3}]');
    PERFORM orderdb.transition_order(v_id, 'confirmed', 1);
    PERFORM orderdb.transition_order(v_id, 'dispatched', 2);
    IF p_sent THEN
        PERFORM FROM orderdb.claim_wms_commands('lc', 100, 60) c WHERE c.order_id = v_id;
        PERFORM orderdb.complete_wms_command(c.command_id, 'lc', 1, 'LC-' || v_id)
           FROM orderdb.wms_commands c WHERE c.order_id = v_id AND c.kind = 'create';
    END IF;
    RETURN v_id;
END;
$$;
CREATE FUNCTION pg_temp.commands(p_order bigint) RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce(string_agg(kind || ':' || status, ' ' ORDER BY command_id), '')
      FROM orderdb.wms_commands WHERE order_id = p_order;
$$;
CREATE FUNCTION pg_temp.items(p_order bigint, p_kind text) RETURNS text
LANGUAGE sql AS $$
    SELECT string_agg((i ->> 'sku') || 'x' || (i ->> 'quantity'), ' ')
      FROM orderdb.wms_commands c, jsonb_array_elements(c.payload -> 'items') i
     WHERE c.order_id = p_order AND c.kind = p_kind;
$$;

-- the WMS has the order: an update without the cancelled line
SELECT pg_temp.dispatched(7742501, true) AS a \gset
SELECT FROM orderdb.cancel_order_lines(:a, '[{"sku": "LC-B"}]', 3);
SELECT is(pg_temp.commands(:a), 'create:done update:pending', 'lines cancelled: an update for the WMS');
SELECT is(pg_temp.items(:a, 'update'), 'LC-Ax2', 'whose document lacks the cancelled line');
SELECT FROM orderdb.cancel_order_lines(:a, '[{"sku": "LC-A", "quantity": 1}]', 3);
SELECT is(pg_temp.commands(:a) || ' / ' || pg_temp.items(:a, 'update'), 'create:done update:pending / LC-Ax1',
          'a second cancellation before it is sent: the same update, with the newest document');

-- the create not sent yet carries the new document
SELECT pg_temp.dispatched(7742501, false) AS b \gset
SELECT FROM orderdb.cancel_order_lines(:b, '[{"sku": "LC-A"}]', 3);
SELECT is(pg_temp.commands(:b) || ' / ' || pg_temp.items(:b, 'create'), 'create:pending / LC-Bx3',
          'the unsent create carries the document without the cancelled line');

-- every line cancelled: the order is cancelled, the WMS gets its cancel and nothing else
SELECT pg_temp.dispatched(7742501, true) AS c \gset
SELECT is((SELECT status FROM orderdb.cancel_order_lines(:c, NULL, 3)), 'cancelled', 'every line cancelled');
SELECT is((SELECT string_agg(kind, ' ' ORDER BY command_id) FROM orderdb.wms_commands
            WHERE order_id = :c AND status <> 'skipped'), 'create cancel', 'only the cancel follows the create');
SELECT pg_temp.dispatched(7742501, true) AS d \gset
SELECT FROM orderdb.transition_order(:d, 'cancelled', 3);
SELECT is(pg_temp.commands(:d), 'create:done cancel:pending', 'transition to cancelled: the cancel alone');

-- no connector: nothing
SELECT pg_temp.dispatched(7742502, false) AS e \gset
SELECT FROM orderdb.cancel_order_lines(:e, '[{"sku": "LC-B"}]', 3);
SELECT is((SELECT count(*)::integer FROM orderdb.wms_commands WHERE order_id = :e), 0,
          'a warehouse without a connector queues nothing');

UPDATE orderdb.wms_commands w SET next_attempt_at = h.next_attempt_at FROM held h WHERE w.command_id = h.command_id;
SELECT * FROM finish();
ROLLBACK;
