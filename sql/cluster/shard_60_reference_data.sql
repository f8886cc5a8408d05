-- Reference and configuration data across shards (docs/scaling.md "Reference data"): each shard
-- has its own copy (statuses and transitions, carrier codes, texts, SLA rules and thresholds,
-- countries and currencies, partition and bucket policies, HTTP integrations, webhook
-- subscriptions); a change is written to every shard. `orderdb cluster status` compares the
-- shards' digests and names the tables that differ from shard 0.

-- reference_digests: for every reference table of this shard, its row count and an md5 over its
-- rows (as JSON without the columns that say when a row was written, *_at: the same data seeded
-- at other moments is the same), in a stable order. Reads the tables. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb_shard.reference_digests()
RETURNS TABLE (table_name text, row_count bigint, digest text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_table text;
    v_skip text[];
BEGIN
    FOREACH v_table IN ARRAY ARRAY['carrier_status_map', 'countries', 'currencies',
                                   'customer_texts', 'integrations', 'kpi_thresholds',
                                   'order_statuses', 'order_transitions', 'partition_policy',
                                   'sla_rules', 'stock_bucket_policy', 'tracking_statuses',
                                   'webhook_subscriptions'] LOOP
        CONTINUE WHEN to_regclass('orderdb.' || v_table) IS NULL;
        SELECT coalesce(array_agg(a.attname::text), '{}') INTO v_skip
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = ('orderdb.' || v_table)::regclass AND a.attnum > 0
           AND NOT a.attisdropped AND a.attname ~ '_at$';
        RETURN QUERY EXECUTE format(
            'SELECT %L::text, count(*), md5(coalesce(string_agg(r.j::text, E''\n'' '
            'ORDER BY r.j::text), '''')) '
            'FROM (SELECT to_jsonb(t) - $1 AS j FROM orderdb.%I t) r',
            v_table, v_table) USING v_skip;
    END LOOP;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.reference_digests() FROM PUBLIC;
