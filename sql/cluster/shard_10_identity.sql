-- Shard side of a cluster (docs/scaling.md): installed on every shard by `orderdb cluster init`
-- and `orderdb migrate --dsn PROXY`, never by a plain `orderdb migrate` (which applies only the
-- top level of sql/). A shard is an ordinary orderdb database plus schema orderdb_shard: its
-- place in the cluster, and the wrappers through which the proxy calls the public functions
-- (generated from this database's catalog by orderdb.cluster, one per routed function).

CREATE SCHEMA IF NOT EXISTS orderdb_shard;
COMMENT ON SCHEMA orderdb_shard IS
    'orderdb cluster: this shard''s place in the cluster and the wrappers the proxy calls.';
REVOKE ALL ON SCHEMA orderdb_shard FROM PUBLIC;

CREATE TABLE IF NOT EXISTS orderdb_shard.shard_identity (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    shard     integer NOT NULL CHECK (shard >= 0),
    id_stride integer NOT NULL CHECK (id_stride > shard)
);
COMMENT ON TABLE orderdb_shard.shard_identity IS
    'This shard''s position in the cluster (orderdb cluster init --shard order, from 0) and the '
    'id stride: every id this shard hands out is shard + 1 modulo id_stride.';
REVOKE ALL ON orderdb_shard.shard_identity FROM PUBLIC;

-- _id_space_sequences: every sequence of schemas orderdb and orderdb_ops (identities included)
-- with the value its next id must exceed and whether it already follows this shard's id space.
-- Reads the catalog only.
CREATE OR REPLACE FUNCTION orderdb_shard._id_space_sequences()
RETURNS TABLE (sequence_name text, increment_by bigint, last_value bigint, in_id_space boolean)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT format('%I.%I', n.nspname, c.relname),
           s.seqincrement,
           pg_catalog.pg_sequence_last_value(c.oid),
           s.seqincrement = i.id_stride
           AND (coalesce(pg_catalog.pg_sequence_last_value(c.oid), s.seqstart) - 1) % i.id_stride
               = i.shard
      FROM pg_catalog.pg_sequence s
      JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     CROSS JOIN orderdb_shard.shard_identity i
     WHERE n.nspname IN ('orderdb', 'orderdb_ops')
     ORDER BY 1
$fn$;

-- apply_id_space: gives every sequence of orderdb and orderdb_ops this shard's id space
-- (INCREMENT BY id_stride, next value the smallest id above every id handed out so far that is
-- shard + 1 modulo id_stride), so that ids are unique across the cluster and the proxy reads an
-- order's shard from its id. Run after every migration of the shard (a migration that rebuilds
-- a table starts a new identity at 1). Returns how many sequences changed. Raises 55000 when
-- the shard has no identity. Locks: ALTER SEQUENCE on the sequences that change.
CREATE OR REPLACE FUNCTION orderdb_shard.apply_id_space()
RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_identity orderdb_shard.shard_identity;
    v_seq record;
    v_base bigint;
    v_next bigint;
    v_changed integer := 0;
BEGIN
    SELECT * INTO v_identity FROM orderdb_shard.shard_identity;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = '55000',
            MESSAGE = 'this database is not a shard of an orderdb cluster',
            HINT = 'Run orderdb cluster init.';
    END IF;
    FOR v_seq IN SELECT * FROM orderdb_shard._id_space_sequences() WHERE NOT in_id_space LOOP
        v_base := greatest(coalesce(v_seq.last_value, 0), 0);
        v_next := (v_base / v_identity.id_stride) * v_identity.id_stride + v_identity.shard + 1;
        IF v_next <= v_base THEN
            v_next := v_next + v_identity.id_stride;
        END IF;
        EXECUTE format('ALTER SEQUENCE %s INCREMENT BY %s START WITH %s RESTART WITH %s',
                       v_seq.sequence_name, v_identity.id_stride, v_next, v_next);
        v_changed := v_changed + 1;
    END LOOP;
    RETURN v_changed;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.apply_id_space() FROM PUBLIC;
REVOKE ALL ON FUNCTION orderdb_shard._id_space_sequences() FROM PUBLIC;

-- shard_info: what `orderdb cluster status` shows of this shard (called through the proxy, so
-- it also proves the proxy's connection). Reads only.
CREATE OR REPLACE FUNCTION orderdb_shard.shard_info()
RETURNS TABLE (shard integer, id_stride integer, schema_revision text, id_space_ok boolean,
               warehouses integer, orders bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT i.shard, i.id_stride, orderdb.schema_revision(),
           (SELECT coalesce(bool_and(q.in_id_space), true)
              FROM orderdb_shard._id_space_sequences() q),
           (SELECT count(DISTINCT w.warehouse_id)::integer
              FROM (SELECT v.warehouse_id FROM orderdb.inventory v
                    UNION ALL SELECT d.warehouse_id FROM orderdb.order_directory d) w),
           (SELECT count(*) FROM orderdb.order_directory)
      FROM orderdb_shard.shard_identity i
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.shard_info() FROM PUBLIC;

-- warehouse_in_use: whether this shard holds stock or orders of a warehouse (a warehouse with
-- data is not moved by `orderdb cluster map-warehouse`). Reads only.
CREATE OR REPLACE FUNCTION orderdb_shard.warehouse_in_use(p_warehouse_id integer)
RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT EXISTS (SELECT 1 FROM orderdb.inventory v WHERE v.warehouse_id = p_warehouse_id)
        OR EXISTS (SELECT 1 FROM orderdb.order_directory d WHERE d.warehouse_id = p_warehouse_id)
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.warehouse_in_use(integer) FROM PUBLIC;
