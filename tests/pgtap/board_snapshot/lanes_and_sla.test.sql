-- board_snapshot: active orders per status with exact counts, the oldest first, SLA state from
-- orderdb_ops.sla_breaches (red critical, yellow warning, green none), stages from the history,
-- filters by warehouse and carrier; terminal orders are not on the board.
BEGIN;
SELECT plan(12);

SELECT FROM orderdb.receive_stock(711, 'WEB-BD', 50);
SELECT FROM orderdb.receive_stock(712, 'WEB-BD', 50);
SELECT order_id AS green, order_no AS green_no
  FROM orderdb.create_order(81, 711, '[{"sku": "WEB-BD", "quantity": 1}]') \gset
SELECT order_id AS yellow, order_no AS yellow_no
  FROM orderdb.create_order(82, 711, '[{"sku": "WEB-BD", "quantity": 1}]', NULL, NULL,
                            jsonb_build_object('payment_due_by', now() - interval '1 hour')) \gset
SELECT order_id AS red, order_no AS red_no
  FROM orderdb.create_order(83, 711, '[{"sku": "WEB-BD", "quantity": 1}]', NULL, NULL,
                            jsonb_build_object('payment_due_by', now() - interval '3 days')) \gset
SELECT order_id AS other FROM orderdb.create_order(84, 712, '[{"sku": "WEB-BD", "quantity": 1}]') \gset
SELECT order_id AS gone FROM orderdb.create_order(85, 711, '[{"sku": "WEB-BD", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:gone, 'cancelled', 1);
SELECT FROM orderdb.transition_order(:other, 'confirmed', 1);

CREATE TEMP TABLE snap AS SELECT orderdb_ops.board_snapshot(711) AS s;
CREATE TEMP TABLE pending AS
    SELECT t.value AS o, t.ordinality AS pos
      FROM snap, jsonb_array_elements(s -> 'lanes') l,
           jsonb_array_elements(l -> 'top') WITH ORDINALITY t
     WHERE l ->> 'status' = 'pending';

SELECT is((SELECT jsonb_agg(l ->> 'status') FROM snap, jsonb_array_elements(s -> 'lanes') l),
          '["pending"]'::jsonb, 'warehouse 711: one lane, cancelled orders are not on the board');
SELECT is((SELECT (l ->> 'orders')::int FROM snap, jsonb_array_elements(s -> 'lanes') l), 3,
          'exact count');
SELECT is((SELECT array_agg((o ->> 'order_id')::bigint ORDER BY pos) FROM pending),
          ARRAY[:green, :yellow, :red]::bigint[], 'oldest first');
SELECT is((SELECT o ->> 'sla_state' FROM pending WHERE (o ->> 'order_id')::bigint = :green),
          'green', 'no breach: green');
SELECT is((SELECT o ->> 'sla_state' FROM pending WHERE (o ->> 'order_id')::bigint = :yellow),
          'yellow', 'warning breach: yellow');
SELECT is((SELECT o ->> 'sla_state' FROM pending WHERE (o ->> 'order_id')::bigint = :red),
          'red', 'critical breach: red');
SELECT is((SELECT o -> 'sla_rules' FROM pending WHERE (o ->> 'order_id')::bigint = :red),
          '["unpaid"]'::jsonb, 'the breached rule');
SELECT is((SELECT (l ->> 'critical', l ->> 'warning')::text
             FROM snap, jsonb_array_elements(s -> 'lanes') l), '(1,1)', 'lane SLA counts');
SELECT is((SELECT jsonb_agg(b ->> 'order_no' ORDER BY b ->> 'order_no')
             FROM snap, jsonb_array_elements(s -> 'breaches') b),
          jsonb_build_array(:'yellow_no', :'red_no'), 'the breaches of the warehouse');
SELECT is((SELECT l -> 'top' -> 0 -> 'stages'
             FROM jsonb_array_elements(orderdb_ops.board_snapshot(712) -> 'lanes') l),
          (SELECT jsonb_build_array(
                      jsonb_build_object('status', 'pending', 'start', o.created_at,
                                         'end', h.occurred_at),
                      jsonb_build_object('status', 'confirmed', 'start', h.occurred_at,
                                         'end', NULL))
             FROM orderdb.orders o
             JOIN orderdb.order_status_history h USING (warehouse_id, order_id)
            WHERE o.order_id = :other),
          'stages with start and end from the history');
SELECT is(orderdb_ops.board_snapshot(711, 'SF') -> 'lanes', '[]'::jsonb,
          'carrier filter: no order of 711 has an SF shipment');
SELECT is(orderdb_ops.board_snapshot(711, NULL, 1) -> 'lanes' -> 0 -> 'top' -> 0 ->> 'order_id',
          :green::text, 'per_lane limits the listing, the count stays exact');

SELECT * FROM finish();
ROLLBACK;
