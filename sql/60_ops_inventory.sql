-- Operator view: inventory counters that disagree with the reservation ledger.

-- inventory_drift: every (warehouse_id, sku) whose reserved counter (orderdb.inventory.reserved)
-- differs from the sum of held reservations (orderdb.order_lines.qty_held). Empty when they agree.
-- A row means a bug or a manual write: stop writes to that sku, compare the held lines with the
-- orders' statuses, then correct the counter in one transaction.
CREATE OR REPLACE VIEW orderdb_ops.inventory_drift AS
SELECT coalesce(i.warehouse_id, l.warehouse_id) AS warehouse_id,
       coalesce(i.sku, l.sku) AS sku,
       coalesce(i.reserved, 0) AS counter_reserved,
       coalesce(l.held, 0) AS ledger_reserved
  FROM orderdb.inventory i
  FULL JOIN (
        SELECT ol.warehouse_id, ol.sku, sum(ol.qty_held)::integer AS held
          FROM orderdb.order_lines ol
         WHERE ol.qty_held > 0
         GROUP BY ol.warehouse_id, ol.sku
       ) l ON l.warehouse_id = i.warehouse_id AND l.sku = i.sku
 WHERE coalesce(i.reserved, 0) <> coalesce(l.held, 0);

COMMENT ON VIEW orderdb_ops.inventory_drift IS
    'Inventory rows whose reserved counter differs from the sum of held reservations (empty = consistent).';
