-- An order on hold for ADDRESS_INCOMPLETE (a WMS exception of its current hold) whose ship_to is
-- amended shows in orderdb_ops.alerts (source 'hold', 'address fixed: ready to resume') until it
-- leaves on_hold; a hold for another reason, or an amendment of something else, shows nothing.
BEGIN;
SELECT plan(5);

SELECT FROM orderdb.receive_stock(7716005, 'ODH-A', 100);
SELECT order_id AS o, order_no AS ono FROM orderdb.create_order(99716005, 7716005, '[{"sku": "ODH-A", "quantity": 1}]',
       NULL, NULL, '{"ship_to": {"line1": "somewhere"}}') \gset
SELECT order_id AS other, order_no AS other_no FROM orderdb.create_order(99716005, 7716005, '[{"sku": "ODH-A", "quantity": 1}]',
       NULL, NULL, '{"ship_to": {"line1": "elsewhere"}}') \gset
SELECT FROM orderdb.transition_order(:o, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:other, 'confirmed', 1);
SELECT FROM orderdb.wms_callback('odh-7716005-1', :o, 'EXCEPTION', '{"exception_type": "ADDRESS_INCOMPLETE"}');
SELECT FROM orderdb.wms_callback('odh-7716005-2', :other, 'EXCEPTION', '{"exception_type": "DAMAGED_GOODS"}');

SELECT is((SELECT count(*)::integer FROM orderdb_ops.alerts WHERE source = 'hold' AND subject IN (:'ono', :'other_no')),
          0, 'on hold, address not fixed yet: no alert');
SELECT FROM orderdb.amend_order(:o, 3, '{"attributes": {"x": 1}}');
SELECT FROM orderdb.amend_order(:other, 3, '{"ship_to": {"line1": "better"}}');
SELECT is((SELECT count(*)::integer FROM orderdb_ops.alerts WHERE source = 'hold' AND subject IN (:'ono', :'other_no')),
          0, 'another key amended, or another hold reason: no alert');

SELECT FROM orderdb.amend_order(:o, 4, '{"ship_to": {"line1": "Building 3, Room 502"}}', 'cs-9');
SELECT is((SELECT row(level, message LIKE 'address fixed: ready to resume%', message LIKE '%by cs-9%')::text
             FROM orderdb_ops.alerts WHERE source = 'hold' AND subject = :'ono'),
          row('warning', true, true)::text, 'address fixed: the alert says the order can resume');
SELECT is((SELECT count(*)::integer FROM orderdb_ops.alerts WHERE source = 'hold' AND subject = :'other_no'), 0,
          'the other order still has none');

SELECT FROM orderdb.transition_order(:o, 'confirmed', 5);
SELECT is((SELECT count(*)::integer FROM orderdb_ops.alerts WHERE source = 'hold' AND subject = :'ono'), 0,
          'resumed: the alert is gone');

SELECT * FROM finish();
ROLLBACK;
