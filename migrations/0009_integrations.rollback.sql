-- Rollback of 0009_integrations. The functions of sql/35_*.sql stay defined but unusable until
-- `orderdb migrate`.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
DELETE FROM orderdb.carrier_status_map WHERE carrier = 'SIM';
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.shipment_polls;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.carrier_polling;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.integrations;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.warehouse_priority;
