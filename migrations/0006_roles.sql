-- depends: 0003_events
--
-- Least privilege (DESIGN principle 8): the group roles applications log in through.
--
--   orderdb_app     executes the application API (create_order, transition_order, get_order ...)
--   orderdb_ingest  executes the WMS and carrier entry points only (wms_callback,
--                   record_tracking_event)
--   orderdb_ops     reads the orderdb_ops views (member of pg_monitor, so that the health views see
--                   every session's activity)
--   owner           the role that runs `orderdb migrate`: owns every table, view and function;
--                   the only role that writes a table (directly, or through SECURITY DEFINER
--                   functions)
--
-- The three roles are NOLOGIN groups: logins are created per application and made members
-- (docs/security.md). What each role may do is granted by sql/90_grants.sql on every migrate.
--
-- Roles are cluster-wide while migrations are per database: several databases on one server may
-- run this at the same time (the test suite does). So each role is created only when missing, and
-- a concurrent creator's win (duplicate_object / unique_violation) is taken as success. Only the
-- creator comments on the role (a shared catalog row that concurrent writers would fight over).
-- When a DBA created the roles beforehand, the owner needs no CREATEROLE; when the owner may not
-- grant pg_monitor, a NOTICE says what the DBA has to run.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DO $roles$
DECLARE
    v_role    text;
    v_comment text;
BEGIN
    FOR v_role, v_comment IN
        SELECT r.name, r.note
          FROM (VALUES
                ('orderdb_app', 'orderdb: executes the application API functions'),
                ('orderdb_ingest', 'orderdb: executes the WMS and carrier entry points only'),
                ('orderdb_ops', 'orderdb: reads the orderdb_ops monitoring views')) AS r(name, note)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
                EXECUTE format('COMMENT ON ROLE %I IS %L', v_role, v_comment);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created meanwhile by a migration of another database
            END;
        END IF;
    END LOOP;

    IF NOT pg_catalog.pg_has_role('orderdb_ops', 'pg_monitor', 'MEMBER') THEN
        BEGIN
            GRANT pg_monitor TO orderdb_ops;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL;  -- granted meanwhile by a migration of another database
            WHEN insufficient_privilege THEN
                RAISE NOTICE USING
                    MESSAGE = 'orderdb_ops is not a member of pg_monitor',
                    HINT = 'As a superuser: GRANT pg_monitor TO orderdb_ops; (the health views '
                           'then show every session, not only orderdb_ops'' own).';
        END;
    END IF;
END;
$roles$;
