-- The operations board through the proxy (docs/scaling.md "Operations"; the shard side is
-- sql/cluster/shard_90_ops_board.sql).

CREATE SCHEMA IF NOT EXISTS orderdb_ops;

-- ops_board_snapshot: every shard's board snapshot (one row each, with its shard).
CREATE OR REPLACE FUNCTION orderdb_cluster.ops_board_snapshot(p_warehouse_id integer,
                                                              p_carrier text,
                                                              p_per_lane integer,
                                                              p_limit integer)
RETURNS TABLE (snapshot jsonb, shard integer, err_sqlstate text, err_message text,
               err_detail text, err_hint text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER 'orderdb_cluster';
    RUN ON ALL;
    SELECT * FROM orderdb_shard.ops_board_snapshot(p_warehouse_id, p_carrier, p_per_lane,
                                                   p_limit);
$fn$;
REVOKE ALL ON FUNCTION orderdb_cluster.ops_board_snapshot(integer, text, integer, integer)
    FROM PUBLIC;

-- board_snapshot: the operations board's snapshot of the whole cluster, with the signature and
-- the document of one database's (sql/70_web.sql), made of every shard's snapshot for the same
-- filters:
--   lanes       per status (lifecycle order): orders, critical and warning summed over the
--               shards; top: the shards' top orders merged, the p_per_lane oldest (by creation,
--               then order id, as on one database)
--   breaches    the shards' lists merged, the p_limit oldest (breached_since, order id, rule)
--   warehouses, carriers   the union of the shards' (sorted)
--   read_at     the latest of the shards' reads; horizon_start the earliest
-- A bad argument is refused as on one database (22023 from the shards). Every shard is read
-- (RUN ON ALL), also with a warehouse filter. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb_ops.board_snapshot(p_warehouse_id integer DEFAULT NULL,
                                                      p_carrier text DEFAULT NULL,
                                                      p_per_lane integer DEFAULT 20,
                                                      p_limit integer DEFAULT 50)
RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_parts jsonb[] := '{}'::jsonb[];
    v_doc jsonb;
    r record;
BEGIN
    -- errors first (every shard refuses bad arguments alike)
    FOR r IN SELECT *
               FROM orderdb_cluster.ops_board_snapshot(p_warehouse_id, p_carrier, p_per_lane,
                                                       p_limit) x
              ORDER BY (x.err_sqlstate IS NULL), x.shard LOOP
        IF r.err_sqlstate IS NOT NULL THEN
            PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message, r.err_detail,
                                           r.err_hint);
        END IF;
        v_parts := v_parts || r.snapshot;
    END LOOP;

    WITH parts AS (
        SELECT p.doc FROM unnest(v_parts) AS p(doc)
    ), lane_rows AS (
        SELECT l.lane
          FROM parts, jsonb_array_elements(parts.doc -> 'lanes') AS l(lane)
    ), counts AS (
        SELECT lr.lane ->> 'status' AS status, (lr.lane ->> 'position')::integer AS position,
               sum((lr.lane ->> 'orders')::bigint)::bigint AS orders,
               sum((lr.lane ->> 'critical')::bigint)::bigint AS critical,
               sum((lr.lane ->> 'warning')::bigint)::bigint AS warning
          FROM lane_rows lr
         GROUP BY 1, 2
    ), tops AS (
        SELECT lr.lane ->> 'status' AS status, t.o,
               row_number() OVER (PARTITION BY lr.lane ->> 'status'
                                  ORDER BY (t.o ->> 'created_at')::timestamptz,
                                           (t.o ->> 'order_id')::bigint) AS rn
          FROM lane_rows lr, jsonb_array_elements(lr.lane -> 'top') AS t(o)
    ), lanes AS (
        SELECT c.position,
               jsonb_build_object(
                   'status', c.status, 'position', c.position, 'orders', c.orders,
                   'critical', c.critical, 'warning', c.warning,
                   'top', coalesce((SELECT jsonb_agg(t.o ORDER BY t.rn)
                                      FROM tops t
                                     WHERE t.status = c.status AND t.rn <= p_per_lane),
                                   '[]'::jsonb)) AS lane
          FROM counts c
    ), breaches AS (
        SELECT b.b
          FROM parts, jsonb_array_elements(parts.doc -> 'breaches') AS b(b)
         ORDER BY (b.b ->> 'breached_since')::timestamptz, (b.b ->> 'order_id')::bigint,
                  b.b ->> 'rule'
         LIMIT p_limit
    )
    SELECT jsonb_build_object(
               'read_at', (SELECT max((p.doc ->> 'read_at')::timestamptz) FROM parts p),
               'horizon_start', (SELECT min((p.doc ->> 'horizon_start')::timestamptz)
                                   FROM parts p),
               'warehouse_id', p_warehouse_id,
               'carrier', p_carrier,
               'per_lane', p_per_lane,
               'lanes', coalesce((SELECT jsonb_agg(l.lane ORDER BY l.position) FROM lanes l),
                                 '[]'::jsonb),
               'breaches', coalesce((SELECT jsonb_agg(b.b ORDER BY
                                                      (b.b ->> 'breached_since')::timestamptz,
                                                      (b.b ->> 'order_id')::bigint,
                                                      b.b ->> 'rule')
                                       FROM breaches b), '[]'::jsonb),
               'warehouses', coalesce((SELECT jsonb_agg(w.id ORDER BY w.id)
                                         FROM (SELECT DISTINCT w.value::integer AS id
                                                 FROM parts,
                                                      jsonb_array_elements_text(
                                                          parts.doc -> 'warehouses') AS w(value)
                                              ) w), '[]'::jsonb),
               'carriers', coalesce((SELECT jsonb_agg(DISTINCT c.value)
                                       FROM parts,
                                            jsonb_array_elements_text(parts.doc -> 'carriers')
                                                AS c(value)), '[]'::jsonb))
      INTO v_doc;
    RETURN v_doc;
END;
$fn$;
COMMENT ON FUNCTION orderdb_ops.board_snapshot(integer, text, integer, integer) IS
    'The operations board''s orders over every shard: lane counts summed, top orders and breaches '
    'merged (oldest first), filter values united (docs/scaling.md).';
REVOKE ALL ON FUNCTION orderdb_ops.board_snapshot(integer, text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb_ops.board_snapshot(integer, text, integer, integer)
    TO orderdb_ops;
