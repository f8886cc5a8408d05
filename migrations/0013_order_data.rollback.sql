-- Rolls back 0013_order_data: the order-data columns and index of orders, the amendments (with
-- their history), the code lists, couriers.phone, the 'page' and 'zh-CN' customer texts and the
-- kind 'page'. Orders keep their options (ship_to, promised times, attributes stay in them).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DELETE FROM orderdb.customer_texts WHERE kind = 'page' OR locale = 'zh-CN';
-- squawk-ignore ban-drop-constraint
ALTER TABLE orderdb.customer_texts DROP CONSTRAINT IF EXISTS customer_texts_kind_check;
ALTER TABLE orderdb.customer_texts
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT customer_texts_kind_check
    CHECK (kind IN ('status', 'exception', 'carrier', 'change'));

-- squawk-ignore ban-drop-constraint
ALTER TABLE orderdb.couriers DROP CONSTRAINT IF EXISTS couriers_phone_check;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.couriers DROP COLUMN IF EXISTS phone;

-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.countries;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.currencies;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.order_amendments;

-- squawk-ignore require-concurrent-index-deletion
DROP INDEX IF EXISTS orderdb.orders_customer;
-- squawk-ignore ban-drop-constraint
ALTER TABLE orderdb.orders DROP CONSTRAINT IF EXISTS orders_order_data_check;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.orders DROP COLUMN IF EXISTS currency;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.orders DROP COLUMN IF EXISTS priority;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.orders DROP COLUMN IF EXISTS items_total;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.orders DROP COLUMN IF EXISTS shipping_fee;
