-- Rolls back 0016_wms_commands: drops the triggers that queue commands, the queue's functions
-- and view, then its tables (get_order's wms_order_id and the alerts' dead letters read them:
-- those functions are dropped too and come back, without the queue, when the SQL files of the
-- older release are applied).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DROP TRIGGER IF EXISTS wms_commands_on_status_change ON orderdb.order_status_history;
DROP TRIGGER IF EXISTS wms_commands_on_amendment ON orderdb.order_amendments;
DROP TRIGGER IF EXISTS wms_commands_on_lines_released ON orderdb.order_lines;
-- squawk-ignore ban-drop-view
DROP VIEW IF EXISTS orderdb_ops.wms_backlog;
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._wms_on_status_change();
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._wms_on_amendment();
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._wms_on_lines_released();
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._wms_send_document(integer, bigint, integer);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._wms_order_payload(integer, bigint, text);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._wms_order_carrier(jsonb, text);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._wms_live_create(integer, bigint);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._wms_queue_create(integer, bigint, integer);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._wms_queue_cancel(bigint, integer, text, integer);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._wms_queue_waybill(integer, bigint, integer, jsonb);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._wms_backoff(integer, numeric, numeric);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._wms_dead_letter_alerts();
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb.set_warehouse_wms(integer, text, text, text, text, jsonb);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb.claim_wms_commands(text, integer, integer);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._wms_leased(bigint, text, integer);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb.complete_wms_command(bigint, text, integer, text, text, jsonb);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb.fail_wms_command(bigint, text, integer, text, boolean, jsonb, numeric, numeric, integer,
                                                 numeric);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb.retry_wms_command(bigint);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb.release_wms_commands(text, bigint[]);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._order_wms_order_id(integer, bigint);
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.wms_commands;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.warehouse_wms;
