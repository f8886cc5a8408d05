-- Commands are queued by the change that causes them, in its transaction: dispatched -> create
-- (with the order document), amend_order -> the unsent create carries the new document, then an
-- update once the create left; cancelled -> cancel after a create that was sent, nothing (the
-- create skipped) before; a warehouse without a connector queues nothing; the WMS's own
-- callbacks that move an order to dispatched queue no create.
BEGIN;
SELECT plan(14);

SELECT FROM orderdb.receive_stock(7742001, 'WQ-A', 100);
SELECT FROM orderdb.receive_stock(7742002, 'WQ-A', 100);
SELECT FROM orderdb.set_warehouse_wms(7742001, 'sim');
-- commands of demo data must not be due here
CREATE TEMP TABLE held AS
    SELECT command_id, next_attempt_at FROM orderdb.wms_commands WHERE status IN ('pending', 'sending');
UPDATE orderdb.wms_commands SET next_attempt_at = now() + interval '1 day'
 WHERE command_id IN (SELECT command_id FROM held);

CREATE FUNCTION pg_temp.new_order(p_warehouse integer, p_options jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE sql AS $$
    SELECT order_id FROM orderdb.create_order(99742001, p_warehouse,
        '[{"sku": "WQ-A", "quantity": 2, "unit_price": "9.90"}]', NULL, 'shop', p_options);
$$;
CREATE FUNCTION pg_temp.commands(p_order bigint) RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce(string_agg(kind || ':' || status, ' ' ORDER BY command_id), '')
      FROM orderdb.wms_commands WHERE order_id = p_order;
$$;

SELECT pg_temp.new_order(7742001, '{"ship_to": {"name": "Li Lei", "line1": "1 Jiefang Rd", "city": "Wuhan", "postcode": "430000", "phone": "13800138000"}, "notes": "fragile"}') AS a \gset
SELECT FROM orderdb.transition_order(:a, 'confirmed', 1);
SELECT is(pg_temp.commands(:a), '', 'confirmed: nothing queued');
SELECT FROM orderdb.transition_order(:a, 'dispatched', 2);
SELECT is(pg_temp.commands(:a), 'create:pending', 'dispatched: a create, in the same transaction');
SELECT is((SELECT payload - 'order_no' FROM orderdb.wms_commands WHERE order_id = :a),
          jsonb_build_object('order_id', :a, 'warehouse_id', 7742001, 'customer_id', 99742001,
                             'priority', 'normal', 'promised_ship_at', NULL,
                             'promised_delivery_at', NULL,
                             'ship_to', '{"name": "Li Lei", "line1": "1 Jiefang Rd", "city": "Wuhan", "postcode": "430000", "phone": "+8613800138000", "country": "CN"}'::jsonb,
                             'currency', 'CNY', 'shipping_fee', 0,
                             'items', '[{"sku": "WQ-A", "quantity": 2, "unit_price": 9.90}]'::jsonb,
                             'notes', 'fragile'),
          'the create carries the order document (full phone, notes)');

SELECT FROM orderdb.amend_order(:a, 3, '{"priority": "express"}');
SELECT is(pg_temp.commands(:a) || ' ' || (SELECT payload ->> 'priority' FROM orderdb.wms_commands WHERE order_id = :a),
          'create:pending express', 'amended before the create left: the create carries the new document');
SELECT FROM orderdb.amend_order(:a, 4, '{"attributes": {"gift": true}}');
SELECT is(pg_temp.commands(:a), 'create:pending', 'attributes only: nothing more');

-- the create leaves
SELECT FROM orderdb.claim_wms_commands('pgtap', 1000, 60) WHERE order_id = :a;
SELECT is((SELECT orderdb.complete_wms_command(command_id, 'pgtap', 1, 'WMS-A') FROM orderdb.wms_commands WHERE order_id = :a),
          'done', 'the WMS accepted the create');
SELECT is(orderdb.get_order(:a) ->> 'wms_order_id', 'WMS-A', 'get_order shows the WMS''s order id');
SELECT FROM orderdb.amend_order(:a, 5, '{"ship_to": {"line1": "2 Jiefang Rd", "city": "Wuhan"}}');
SELECT FROM orderdb.amend_order(:a, 6, '{"priority": "normal"}');
SELECT is(pg_temp.commands(:a), 'create:done update:pending',
          'amended after: one update, carrying the newest document');
SELECT is((SELECT payload -> 'ship_to' ->> 'line1' || ' ' || (payload ->> 'priority')
             FROM orderdb.wms_commands WHERE order_id = :a AND kind = 'update'),
          '2 Jiefang Rd normal', 'the update has both amendments');
SELECT FROM orderdb.transition_order(:a, 'cancelled', 7, 'shop', 'customer changed mind');
SELECT is(pg_temp.commands(:a), 'create:done update:skipped cancel:pending',
          'cancelled after the create left: the unsent update is skipped, a cancel follows');
SELECT is((SELECT payload FROM orderdb.wms_commands WHERE order_id = :a AND kind = 'cancel'),
          jsonb_build_object('order_id', :a, 'order_no', (SELECT order_no FROM orderdb.orders WHERE order_id = :a),
                             'reason', 'customer changed mind'), 'the cancel says which order and why');

-- cancelled before the create left: nothing is sent
SELECT pg_temp.new_order(7742001) AS b \gset
SELECT FROM orderdb.transition_order(:b, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:b, 'dispatched', 2);
SELECT FROM orderdb.transition_order(:b, 'cancelled', 3);
SELECT is(pg_temp.commands(:b), 'create:skipped', 'cancelled before the create left: skipped, no cancel');

-- no connector: nothing
SELECT pg_temp.new_order(7742002) AS c \gset
SELECT FROM orderdb.transition_order(:c, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:c, 'dispatched', 2);
SELECT FROM orderdb.amend_order(:c, 3, '{"priority": "express"}');
SELECT FROM orderdb.transition_order(:c, 'cancelled', 4);
SELECT is(pg_temp.commands(:c), '', 'a warehouse without a connector queues nothing');

-- the WMS moved the order itself (PICKED on a confirmed order walks through dispatched)
SELECT pg_temp.new_order(7742001) AS d \gset
SELECT FROM orderdb.transition_order(:d, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('wq-7742001-d', :d, 'PICKED');
SELECT is(pg_temp.commands(:d), '', 'dispatched by the WMS''s own callback: no create');

UPDATE orderdb.wms_commands w SET next_attempt_at = h.next_attempt_at FROM held h WHERE w.command_id = h.command_id;
SELECT * FROM finish();
ROLLBACK;
