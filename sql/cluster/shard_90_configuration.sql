-- Cluster-wide configuration written through the proxy (docs/scaling.md "Reference data").
-- orderdb.create_webhook_subscription on the proxy creates a subscription on shard 0 (its id and
-- its secret) and copies it to every other shard with these functions, so that a delivery from
-- any shard's relay is signed with the one secret the customer was given. The other cluster-wide
-- owner functions (set_integration, set_carrier_polling) are upserts run on every shard by
-- their generated wrappers (orderdb.cluster.routing).

-- put_webhook_subscription: stores the subscription p_subscription_id with these values: creates
-- it with that id (an id of shard 0's id space, which no other shard hands out) or sets an
-- existing one to them, so that running it again changes nothing. Returns one row: NULLs, or
-- the error (as data, nothing written: the proxy raises it). Locks the subscription's row.
CREATE OR REPLACE FUNCTION orderdb_shard.put_webhook_subscription(
    p_subscription_id bigint, p_url text, p_event_types text[], p_secret text,
    p_max_attempts integer, p_description text, p_active boolean)
RETURNS TABLE (err_sqlstate text, err_message text, err_detail text, err_hint text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    INSERT INTO orderdb.webhook_subscriptions AS s
           (subscription_id, url, event_types, secret, active, max_attempts, description)
    OVERRIDING SYSTEM VALUE
    VALUES (p_subscription_id, p_url, p_event_types, p_secret, coalesce(p_active, true),
            p_max_attempts, p_description)
    ON CONFLICT (subscription_id) DO UPDATE
       SET url = excluded.url, event_types = excluded.event_types, secret = excluded.secret,
           active = excluded.active, max_attempts = excluded.max_attempts,
           description = excluded.description, updated_at = now()
     WHERE (s.url, s.event_types, s.secret, s.active, s.max_attempts, s.description)
           IS DISTINCT FROM (excluded.url, excluded.event_types, excluded.secret,
                             excluded.active, excluded.max_attempts, excluded.description);
    RETURN QUERY SELECT NULL::text, NULL::text, NULL::text, NULL::text;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    RETURN QUERY SELECT v_sqlstate, v_message, nullif(v_detail, ''), nullif(v_hint, '');
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.put_webhook_subscription(bigint, text, text[], text, integer,
                                                              text, boolean) FROM PUBLIC;

-- drop_webhook_subscription: deletes subscription p_subscription_id (and its deliveries) from
-- this shard: the proxy undoes a create_webhook_subscription that could not reach every shard.
-- Returns whether it was there. Locks the subscription's row.
CREATE OR REPLACE FUNCTION orderdb_shard.drop_webhook_subscription(p_subscription_id bigint)
RETURNS boolean
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH d AS (DELETE FROM orderdb.webhook_subscriptions s
                WHERE s.subscription_id = p_subscription_id RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM d)
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.drop_webhook_subscription(bigint) FROM PUBLIC;

-- remove_integration: deletes integration p_name from this shard (`orderdb integrations remove`
-- through the proxy runs it on every shard). Returns whether it was there. Locks its row.
CREATE OR REPLACE FUNCTION orderdb_shard.remove_integration(p_name text)
RETURNS boolean
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH d AS (DELETE FROM orderdb.integrations i WHERE i.name = p_name RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM d)
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.remove_integration(text) FROM PUBLIC;

-- integration_rows, warehouse_wms_rows: this shard's integrations and its warehouses' WMS
-- connections, without their secrets, for `orderdb integrations list` and
-- `orderdb warehouses list` through the proxy. Locks nothing.
CREATE OR REPLACE FUNCTION orderdb_shard.integration_rows()
RETURNS TABLE (name text, kind text, rate numeric, burst integer, enabled boolean,
               updated_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT i.name, i.kind, i.rate, i.burst, i.enabled, i.updated_at FROM orderdb.integrations i
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.integration_rows() FROM PUBLIC;

CREATE OR REPLACE FUNCTION orderdb_shard.warehouse_wms_rows()
RETURNS TABLE (warehouse_id integer, connector text, url text, carrier text, settings jsonb,
               has_secret boolean, updated_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT w.warehouse_id, w.connector, w.url, w.carrier, w.settings, w.secret IS NOT NULL,
           w.updated_at
      FROM orderdb.warehouse_wms w
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.warehouse_wms_rows() FROM PUBLIC;
