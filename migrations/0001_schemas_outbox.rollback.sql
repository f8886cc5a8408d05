-- Rollback of 0001_schemas_outbox: the last step back removes orderdb entirely, including the
-- repeatable definitions of sql/ that live in these schemas. yoyo's bookkeeping tables live in
-- schema orderdb too (and yoyo records this very rollback in them): they are set aside while the
-- schema is dropped and put back into a new, empty schema orderdb.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
-- squawk-ignore ban-drop-schema
DROP SCHEMA IF EXISTS orderdb_ops CASCADE;
DO $keep_yoyo$
DECLARE
    v_table text;
    v_kept  text[] := '{}';
BEGIN
    FOR v_table IN
        SELECT c.relname
          FROM pg_catalog.pg_class c
         WHERE c.relnamespace = to_regnamespace('orderdb')
           AND c.relkind = 'r'
           AND c.relname IN ('_yoyo_migration', '_yoyo_log', '_yoyo_version', 'yoyo_lock')
    LOOP
        IF cardinality(v_kept) = 0 THEN
            CREATE SCHEMA orderdb_yoyo_kept;
        END IF;
        EXECUTE format('ALTER TABLE orderdb.%I SET SCHEMA orderdb_yoyo_kept', v_table);
        v_kept := v_kept || v_table;
    END LOOP;
    DROP SCHEMA IF EXISTS orderdb CASCADE;
    IF cardinality(v_kept) > 0 THEN
        CREATE SCHEMA orderdb;
        FOREACH v_table IN ARRAY v_kept LOOP
            EXECUTE format('ALTER TABLE orderdb_yoyo_kept.%I SET SCHEMA orderdb', v_table);
        END LOOP;
        DROP SCHEMA orderdb_yoyo_kept;
    END IF;
END
$keep_yoyo$;
