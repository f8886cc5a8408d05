-- Rollback of 0017_create_order_indexes: the unique constraint on order_directory (order_no) of
-- 0002_core again, without the CHECK that ties the number to the order id.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX IF NOT EXISTS order_directory_order_no_key
    ON orderdb.order_directory (order_no);
DO $constraints$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c
                    WHERE c.conrelid = 'orderdb.order_directory'::regclass
                      AND c.conname = 'order_directory_order_no_key') THEN
        ALTER TABLE orderdb.order_directory
            ADD CONSTRAINT order_directory_order_no_key UNIQUE USING INDEX order_directory_order_no_key;
    END IF;
END;
$constraints$;
-- squawk-ignore ban-drop-constraint
ALTER TABLE orderdb.order_directory DROP CONSTRAINT IF EXISTS order_directory_order_no_id;
COMMENT ON TABLE orderdb.order_directory IS
    'order_id -> warehouse_id lookup (orders can move between warehouses), globally unique '
    'order_no and idempotency_key; request_hash is sha256 of the normalised create request.';
