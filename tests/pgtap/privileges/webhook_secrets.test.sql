-- Webhook secrets (orderdb.webhook_subscriptions.secret) are readable by the owner only: no
-- orderdb role may read the table or the column, execute a function that returns secrets, or
-- find a secret column in an ops view.
BEGIN;
SELECT plan(14);

SELECT column_privs_are('orderdb', 'webhook_subscriptions', 'secret', r.role, ARRAY[]::name[],
                        format('%s may not read webhook_subscriptions.secret', r.role))
  FROM unnest(ARRAY['orderdb_app', 'orderdb_ingest', 'orderdb_ops']::name[]) AS r(role);

SELECT table_privs_are('orderdb', 'webhook_subscriptions', r.role, ARRAY[]::name[],
                       format('%s has no privilege on webhook_subscriptions', r.role))
  FROM unnest(ARRAY['orderdb_app', 'orderdb_ingest', 'orderdb_ops']::name[]) AS r(role);

SELECT function_privs_are('orderdb', '_webhook_claim', ARRAY['integer', 'interval'], r.role,
                          ARRAY[]::name[],
                          format('%s may not claim webhook deliveries (they carry the secret)',
                                 r.role))
  FROM unnest(ARRAY['orderdb_app', 'orderdb_ingest', 'orderdb_ops']::name[]) AS r(role);

SELECT function_privs_are('orderdb', 'create_webhook_subscription',
                          ARRAY['text', 'text[]', 'text', 'integer', 'text'], r.role,
                          ARRAY[]::name[],
                          format('%s may not create webhook subscriptions (returns the secret)',
                                 r.role))
  FROM unnest(ARRAY['orderdb_app', 'orderdb_ingest', 'orderdb_ops']::name[]) AS r(role);

SELECT is((SELECT count(*)::integer
             FROM pg_catalog.pg_attribute a
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
            WHERE c.relnamespace = 'orderdb_ops'::regnamespace AND a.attnum > 0
              AND NOT a.attisdropped AND a.attname ~* 'secret'),
          0, 'no view of orderdb_ops has a secret column');

SELECT ok(pg_catalog.has_column_privilege('orderdb.webhook_subscriptions', 'secret', 'SELECT'),
          'the owner reads the secret');

SELECT * FROM finish();
ROLLBACK;
