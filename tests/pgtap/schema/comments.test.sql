-- Every schema, table (partitions included), view and materialized view of orderdb and
-- orderdb_ops has a comment, also the partitions that orderdb maintain makes.
BEGIN;
SELECT plan(4);

SELECT is(
    ARRAY(SELECT n.nspname::text
            FROM pg_catalog.pg_namespace n
           WHERE n.nspname IN ('orderdb', 'orderdb_ops')
             AND pg_catalog.obj_description(n.oid, 'pg_namespace') IS NULL
           ORDER BY 1),
    '{}'::text[],
    'schemas orderdb and orderdb_ops have a comment');

SELECT is(
    ARRAY(SELECT format('%I.%I (%s)', n.nspname, c.relname, c.relkind)
            FROM pg_catalog.pg_class c
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname IN ('orderdb', 'orderdb_ops')
             AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
             AND pg_catalog.obj_description(c.oid, 'pg_class') IS NULL
           ORDER BY 1),
    '{}'::text[],
    'every table and view of orderdb and orderdb_ops has a comment');

-- the partitions of this month and the months ahead, made here if missing (rolled back)
SELECT lives_ok(
    $$SELECT count(*) FROM orderdb.maintain_partitions(now())$$,
    'orderdb maintain makes its partitions');

SELECT is(
    ARRAY(SELECT format('%I.%I', n.nspname, c.relname)
            FROM pg_catalog.pg_class c
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'orderdb'
             AND c.relispartition
             AND c.relkind IN ('r', 'p')
             AND pg_catalog.obj_description(c.oid, 'pg_class') IS NULL
           ORDER BY 1),
    '{}'::text[],
    'the partitions orderdb maintain makes have a comment');

SELECT * FROM finish();
ROLLBACK;
