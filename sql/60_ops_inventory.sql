-- Operator view: inventory counters that disagree with the ledgers.

-- inventory_drift: every (warehouse_id, sku) whose counters in orderdb.inventory disagree with
-- the ledgers. Empty when they agree. Two checks:
--   reserved = sum of held reservations (orderdb.order_lines.qty_held)
--   on_hand  = received (orderdb.stock_receipts) - consumed (shipped and not returned; a line's
--              returned units were consumed first and are back on the shelf)
-- counter_reserved / ledger_reserved are the contract's leading columns; counter_on_hand /
-- ledger_on_hand follow. A row means a bug or a manual write: stop writes to that sku, compare the
-- held lines with the orders' statuses and the receipts with the shipments, then correct the
-- counter in one transaction.
CREATE OR REPLACE VIEW orderdb_ops.inventory_drift AS
SELECT coalesce(i.warehouse_id, l.warehouse_id, r.warehouse_id) AS warehouse_id,
       coalesce(i.sku, l.sku, r.sku) AS sku,
       coalesce(i.reserved, 0) AS counter_reserved,
       coalesce(l.held, 0)::integer AS ledger_reserved,
       coalesce(i.on_hand, 0) AS counter_on_hand,
       coalesce(r.received, 0) - coalesce(l.consumed, 0) AS ledger_on_hand
  FROM orderdb.inventory_levels i  -- inventory row + stock buckets (sql/25_stock_buckets.sql)
  FULL JOIN (
        SELECT ol.warehouse_id, ol.sku,
               sum(ol.qty_held)::bigint AS held,
               sum(ol.qty_consumed)::bigint AS consumed
          FROM orderdb.order_lines ol
         WHERE ol.qty_held > 0 OR ol.qty_consumed > 0
         GROUP BY ol.warehouse_id, ol.sku
       ) l ON l.warehouse_id = i.warehouse_id AND l.sku = i.sku
  FULL JOIN (
        SELECT sr.warehouse_id, sr.sku, sum(sr.quantity)::bigint AS received
          FROM orderdb.stock_receipts sr
         GROUP BY sr.warehouse_id, sr.sku
       ) r ON r.warehouse_id = coalesce(i.warehouse_id, l.warehouse_id)
          AND r.sku = coalesce(i.sku, l.sku)
 WHERE coalesce(i.reserved, 0) <> coalesce(l.held, 0)
    OR coalesce(i.on_hand, 0) <> coalesce(r.received, 0) - coalesce(l.consumed, 0);

COMMENT ON VIEW orderdb_ops.inventory_drift IS
    'Inventory rows whose counters (reserved, on_hand) differ from the ledgers (held reservations; '
    'receipts - consumed); empty = consistent.';
