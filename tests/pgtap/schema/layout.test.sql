-- The schemas, core tables and the public API functions exist after `orderdb migrate`.
BEGIN;
SELECT plan(6);

SELECT has_schema('orderdb', 'schema orderdb exists');
SELECT has_schema('orderdb_ops', 'schema orderdb_ops exists');
SELECT has_table('orderdb', 'orders', 'table orders exists');
SELECT has_table('orderdb', 'outbox', 'table outbox exists');
SELECT has_function('orderdb', 'create_order',
                    ARRAY['bigint', 'integer', 'jsonb', 'text', 'text', 'jsonb'],
                    'create_order has the contract signature');
SELECT has_view('orderdb_ops', 'inventory_drift', 'view inventory_drift exists');

SELECT * FROM finish();
ROLLBACK;
