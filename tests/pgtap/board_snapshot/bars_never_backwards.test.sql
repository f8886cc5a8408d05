-- board_snapshot: stages start and end at effective times, so a warehouse whose clock is
-- behind never draws a bar that ends before it starts, and stages follow each other.
BEGIN;
SELECT plan(3);

SELECT FROM orderdb.receive_stock(940314, 'BAR-1', 10);
SELECT order_id AS o FROM orderdb.create_order(940314, 940314, '[{"sku": "BAR-1", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('bar-1', :o, 'PICKED',
                                 jsonb_build_object('occurred_at', (now() - interval '10 minutes')::text));

CREATE TEMP TABLE stages AS
    SELECT st.value AS s, st.ordinality AS i
      FROM jsonb_array_elements(orderdb_ops.board_snapshot(940314) -> 'lanes') l,
           jsonb_array_elements(l -> 'top') t,
           jsonb_array_elements(t -> 'stages') WITH ORDINALITY st
     WHERE (t ->> 'order_id')::bigint = :o;

SELECT is((SELECT count(*)::int FROM stages), 4, 'pending, confirmed, dispatched, picked');
SELECT ok((SELECT bool_and((s ->> 'end') IS NULL OR (s ->> 'end')::timestamptz >= (s ->> 'start')::timestamptz) FROM stages),
          'no bar ends before it starts');
SELECT ok((SELECT bool_and((b.s ->> 'start')::timestamptz >= (a.s ->> 'start')::timestamptz)
             FROM stages a JOIN stages b ON b.i = a.i + 1),
          'each stage starts no earlier than the one before');

SELECT * FROM finish();
ROLLBACK;
