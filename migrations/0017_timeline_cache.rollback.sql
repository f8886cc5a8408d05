-- Rollback of 0017_timeline_cache: drops the invalidation triggers and the functions of
-- sql/47_timeline_cache.sql, then the cache, the generation table and the directory column.
-- order_timeline is dropped too and comes back, building its document on every call, when the
-- SQL files of the older release are applied (`orderdb migrate` of that release).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DO $drop$
DECLARE
    v_t record;
BEGIN
    FOR v_t IN
        SELECT t.tgname, t.tgrelid::regclass AS rel
          FROM pg_catalog.pg_trigger t
         WHERE t.tgname LIKE 'timeline\_cache\_%'
           AND t.tgrelid IN (SELECT c.oid FROM pg_catalog.pg_class c
                              WHERE c.relnamespace = 'orderdb'::regnamespace)
           AND NOT t.tgisinternal
           AND t.tgparentid = 0
    LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_t.tgname, v_t.rel);
    END LOOP;
END;
$drop$;

-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb.order_timeline(bigint, bigint, text);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._order_timeline_fill(bigint, bigint, text, text);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._order_timeline_store(bigint, text, text, bigint, bigint, bigint,
                                                      jsonb, text, timestamptz);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._timeline_on_order_row();
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._timeline_on_tracking_event_row();
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._timeline_bump_order(bigint);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._timeline_on_routes();
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._timeline_on_couriers();
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._timeline_on_any();
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._timeline_bump(bigint[]);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS orderdb._timeline_bump_all();
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.order_timeline_cache;
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS orderdb.order_timeline_generation;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.order_directory DROP COLUMN IF EXISTS timeline_generation;
