-- Rollback of 0004_fulfilment. Views of sql/ that read these tables are dropped first; the
-- functions of sql/40_fulfillment.sql and sql/45_tracking.sql stay defined but unusable until
-- `orderdb migrate` (which also restores the placeholder orderdb._order_shipments only if
-- 40_fulfillment.sql is removed).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
-- squawk-ignore ban-drop-view
DROP VIEW IF EXISTS orderdb_ops.unknown_carrier_codes;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.route_stops;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.routes;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.couriers;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.warehouse_locations;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.order_returns;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.tracking_events;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.carrier_status_map;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.tracking_statuses;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.order_hold_reasons;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.wms_events;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.tracking_numbers;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.shipment_lines;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.shipments;
