-- The automatic warehouse choice across shards (create_order with p_warehouse_id NULL on the
-- proxy; docs/scaling.md): every shard offers its best candidate, ranked as one database ranks
-- them (orderdb._warehouse_candidates, strategy in sql/35_reallocation.sql); the proxy takes the
-- best of the offers and lets that shard's create_order choose (the same warehouse, unless the
-- stock changed meanwhile: then its own choice, or OD001 as on one database).

-- best_warehouse: this shard's best candidate for the order lines p_items, with this shard's
-- number; no row when p_items is not valid lines (the order's shard then refuses them as
-- create_order does) or no warehouse here takes part. Reads inventory by primary key. Locks
-- nothing.
CREATE OR REPLACE FUNCTION orderdb_shard.best_warehouse(p_items jsonb)
RETURNS TABLE (shard integer, warehouse_id integer, serves_all boolean, lines_served integer,
               priority integer, total_available bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_skus text[];
    v_quantities integer[];
BEGIN
    BEGIN
        SELECT p.skus, p.quantities INTO v_skus, v_quantities
          FROM orderdb._parse_items(p_items) p;
    EXCEPTION WHEN data_exception THEN
        RETURN;
    END;
    RETURN QUERY
        SELECT i.shard, c.warehouse_id, c.serves_all, c.lines_served, c.priority,
               c.total_available
          FROM orderdb._warehouse_candidates(v_skus, v_quantities) c
         CROSS JOIN orderdb_shard.shard_identity i
         ORDER BY c.serves_all DESC, c.lines_served DESC, c.priority, c.total_available DESC,
                  c.warehouse_id
         LIMIT 1;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.best_warehouse(jsonb) FROM PUBLIC;
