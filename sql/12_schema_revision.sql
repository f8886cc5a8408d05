-- The schema revision: which migrations this database has, for the clients' check on connect.

-- schema_revision: the newest migration id applied to this database (yoyo's table
-- orderdb._yoyo_migration, written by `orderdb migrate`), NULL when none is. Migration ids start
-- with a zero-padded number that only grows, so the greatest id is the newest. A client needs at
-- least the newest migration it ships with and otherwise says "run orderdb migrate".
-- Reads one small table; takes no lock beyond it.
CREATE OR REPLACE FUNCTION orderdb.schema_revision()
RETURNS text
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT max(migration_id COLLATE "C") FROM orderdb._yoyo_migration;
$$;
COMMENT ON FUNCTION orderdb.schema_revision() IS
    'The newest migration id applied to this database (NULL: none); clients check it on connect.';
