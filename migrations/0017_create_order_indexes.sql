-- depends: 0016_auto_buckets 0016_carrier_kuaidi100 0016_perf_indexes 0016_wms_commands
--
-- One B-tree entry less per order: the unique index on order_directory (order_no) is replaced by
-- a CHECK constraint that ties the number to the order id.
--
-- An order number is 'ORD' || YYYYMMDD || the order id padded to at least 8 digits
-- (orderdb._order_no; API.md), so the number names its order: two rows with the same number have
-- the same order id, which the primary key already keeps unique. The CHECK makes that a rule of
-- the table (the characters from the 12th on are the padded order id), and the uniqueness of
-- order_no follows from it without an index of its own. The index was an ever-increasing key
-- (every new order went into its right-most leaf, the page all concurrent create_order calls
-- contend for) that only orderdb.order_timeline_by_no read; it now finds the order by the id the
-- number carries (the primary key) and compares the whole number. Measured: docs/benchmarks.md,
-- "What each change measured".
--
-- NOT VALID: no scan (every row written before this migration got its number from
-- orderdb._order_no with its own id); new rows are checked. Dropping the constraint takes an
-- exclusive lock on order_directory for a moment (lock_timeout 5 s).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DO $constraints$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c
                    WHERE c.conrelid = 'orderdb.order_directory'::regclass
                      AND c.conname = 'order_directory_order_no_id') THEN
        ALTER TABLE orderdb.order_directory
            ADD CONSTRAINT order_directory_order_no_id
            CHECK (substr(order_no, 12) = lpad(order_id::text, greatest(8, length(order_id::text)), '0'))
            NOT VALID;
    END IF;
END;
$constraints$;

-- the guarantee it gave (order_no unique) stays: the CHECK above and the primary key
-- squawk-ignore ban-drop-constraint
ALTER TABLE orderdb.order_directory DROP CONSTRAINT IF EXISTS order_directory_order_no_key;

COMMENT ON CONSTRAINT order_directory_order_no_id ON orderdb.order_directory IS
    'The order number carries the order id (from its 12th character, padded to 8 digits): '
    'order_no is unique because order_id is.';
COMMENT ON TABLE orderdb.order_directory IS
    'order_id -> warehouse_id lookup (orders can move between warehouses), order_no (unique: it '
    'carries the order id) and the globally unique idempotency_key; request_hash is sha256 of the '
    'normalised create request.';
