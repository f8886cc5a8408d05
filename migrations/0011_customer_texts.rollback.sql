-- Rollback of 0011_customer_texts: the table of customer texts goes (with any texts operators
-- added). order_timeline needs it: `orderdb migrate` re-applies the migration and its 'en' texts.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.customer_texts;
