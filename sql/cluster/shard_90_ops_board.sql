-- The operations board through the proxy (docs/scaling.md "Operations"; the proxy side is
-- sql/cluster/proxy_90_ops_board.sql).

-- ops_board_snapshot: this shard's orderdb_ops.board_snapshot(p_warehouse_id, p_carrier,
-- p_per_lane, p_limit) and this shard's number; an error (22023 for a bad argument) comes back as
-- data (err_* columns), as the generated wrappers of orderdb.cluster.routing do. It runs with its
-- owner's rights (the proxy's role is not in orderdb_ops, whose board_snapshot is); only the
-- proxy's role may execute it (orderdb cluster init grants it, as the ops_<view> functions).
-- Raises nothing. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb_shard.ops_board_snapshot(p_warehouse_id integer,
                                                            p_carrier text,
                                                            p_per_lane integer,
                                                            p_limit integer)
RETURNS TABLE (snapshot jsonb, shard integer, err_sqlstate text, err_message text,
               err_detail text, err_hint text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    RETURN QUERY
    SELECT orderdb_ops.board_snapshot(p_warehouse_id, p_carrier, p_per_lane, p_limit), i.shard,
           NULL::text, NULL::text, NULL::text, NULL::text
      FROM orderdb_shard.shard_identity i;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    RETURN QUERY SELECT NULL::jsonb, (SELECT i.shard FROM orderdb_shard.shard_identity i),
                        v_sqlstate, v_message, nullif(v_detail, ''), nullif(v_hint, '');
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.ops_board_snapshot(integer, text, integer, integer)
    FROM PUBLIC;
