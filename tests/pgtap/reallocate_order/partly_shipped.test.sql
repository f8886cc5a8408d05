-- An order of which part has shipped (a partial WMS SHIPPED leaves it packed with consumed
-- units and a shipment in the old warehouse) does not move: OD003, nothing changes.
BEGIN;
SELECT plan(3);

SELECT FROM orderdb.receive_stock(3541, 'RP-A', 10);
SELECT FROM orderdb.receive_stock(3541, 'RP-B', 10);
SELECT FROM orderdb.receive_stock(3542, 'RP-A', 10);
SELECT FROM orderdb.receive_stock(3542, 'RP-B', 10);
CREATE TEMP TABLE o AS
    SELECT * FROM orderdb.create_order(1, 3541, '[{"sku": "RP-A", "quantity": 2}, {"sku": "RP-B", "quantity": 2}]');
SELECT FROM (VALUES ('confirmed', 1), ('dispatched', 2), ('picked', 3), ('packed', 4)) s(status, v),
       LATERAL orderdb.transition_order((SELECT order_id FROM o), s.status, s.v);
SELECT FROM orderdb.wms_callback('rp-ship-1', (SELECT order_id FROM o), 'SHIPPED',
                                 '{"carrier": "SF", "tracking_number": "SF3541000001", "lines": [{"sku": "RP-A", "quantity": 2}]}');
CREATE TEMP TABLE before AS
    SELECT o.status, o.version, (SELECT array_agg(reserved ORDER BY warehouse_id, sku) FROM orderdb.inventory
                                   WHERE warehouse_id IN (3541, 3542)) AS reserved
      FROM orderdb.orders o WHERE o.order_id = (SELECT order_id FROM o);

SELECT throws_ok(format('SELECT orderdb.reallocate_order(%s, 3542, %s)', (SELECT order_id FROM o),
                        (SELECT version FROM before)),
                 'OD003', NULL, 'a partly shipped order does not move');
SELECT is((SELECT warehouse_id FROM orderdb.order_directory WHERE order_id = (SELECT order_id FROM o)), 3541,
          'it stays in its warehouse');
SELECT is((SELECT array_agg(reserved ORDER BY warehouse_id, sku) FROM orderdb.inventory WHERE warehouse_id IN (3541, 3542)),
          (SELECT reserved FROM before), 'no reservation moved');

SELECT * FROM finish();
ROLLBACK;
