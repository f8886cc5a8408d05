-- Rollback of 0006_roles: this database stops granting anything to the orderdb roles, but the
-- roles themselves are NOT dropped. Roles are cluster-wide: other databases on the same server may
-- still grant to them (and DROP ROLE fails while any database does), and logins created as their
-- members would lose their privileges everywhere. A DBA who retires orderdb from the whole server
-- drops them by hand once no database uses them:
--   DROP OWNED BY orderdb_app, orderdb_ingest, orderdb_ops;  -- in every database using them
--   DROP ROLE orderdb_app, orderdb_ingest, orderdb_ops;
-- `orderdb migrate` re-applies 0006 (the roles exist: nothing to create) and sql/90_grants.sql.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DO $revoke$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['orderdb_app', 'orderdb_ingest', 'orderdb_ops'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = v_role);
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'orderdb') THEN
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA orderdb FROM %I', v_role);
            EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA orderdb FROM %I', v_role);
            EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA orderdb FROM %I', v_role);
            EXECUTE format('REVOKE ALL ON SCHEMA orderdb FROM %I', v_role);
        END IF;
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'orderdb_ops') THEN
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA orderdb_ops FROM %I', v_role);
            EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA orderdb_ops FROM %I', v_role);
            EXECUTE format('REVOKE ALL ON SCHEMA orderdb_ops FROM %I', v_role);
        END IF;
    END LOOP;
END;
$revoke$;
