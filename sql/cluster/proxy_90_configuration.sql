-- Cluster-wide configuration through the proxy (docs/scaling.md "Reference data"). The owner
-- functions set_integration and set_carrier_polling are generated (orderdb.cluster.routing: every
-- shard in turn, shard 0 first); a webhook subscription is created here: on shard 0, then copied
-- with its id and secret to every other shard (sql/cluster/shard_90_configuration.sql). Every
-- function here is the owner's.

CREATE OR REPLACE FUNCTION orderdb_cluster.put_webhook_subscription(
    p_shard integer, p_subscription_id bigint, p_url text, p_event_types text[], p_secret text,
    p_max_attempts integer, p_description text, p_active boolean)
RETURNS TABLE (err_sqlstate text, err_message text, err_detail text, err_hint text)
    LANGUAGE plproxy
AS $fn$
    CLUSTER 'orderdb_cluster';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.put_webhook_subscription(p_subscription_id, p_url, p_event_types,
                                                         p_secret, p_max_attempts,
                                                         p_description, p_active);
$fn$;

CREATE OR REPLACE FUNCTION orderdb_cluster.drop_webhook_subscription(p_shard integer,
                                                                     p_subscription_id bigint)
RETURNS boolean
    LANGUAGE plproxy
AS $fn$
    CLUSTER 'orderdb_cluster';
    RUN ON p_shard;
    SELECT orderdb_shard.drop_webhook_subscription(p_subscription_id);
$fn$;

-- remove_integration (for `orderdb integrations remove --dsn PROXY`): deletes the integration on
-- every shard; one row per shard, whether it was there.
CREATE OR REPLACE FUNCTION orderdb_cluster.remove_integration(p_name text)
RETURNS TABLE (removed boolean)
    LANGUAGE plproxy
AS $fn$
    CLUSTER 'orderdb_cluster';
    RUN ON ALL;
    SELECT orderdb_shard.remove_integration(p_name) AS removed;
$fn$;

-- integration_rows, warehouse_wms_rows (for `orderdb integrations list` and
-- `orderdb warehouses list` through the proxy): every shard's rows, without secrets.
CREATE OR REPLACE FUNCTION orderdb_cluster.integration_rows(p_shard integer)
RETURNS TABLE (name text, kind text, rate numeric, burst integer, enabled boolean,
               updated_at timestamptz)
    LANGUAGE plproxy
AS $fn$
    CLUSTER 'orderdb_cluster';
    RUN ON p_shard;
    SELECT * FROM orderdb_shard.integration_rows();
$fn$;

CREATE OR REPLACE FUNCTION orderdb_cluster.warehouse_wms_rows()
RETURNS TABLE (warehouse_id integer, connector text, url text, carrier text, settings jsonb,
               has_secret boolean, updated_at timestamptz)
    LANGUAGE plproxy
AS $fn$
    CLUSTER 'orderdb_cluster';
    RUN ON ALL;
    SELECT * FROM orderdb_shard.warehouse_wms_rows();
$fn$;

-- create_webhook_subscription (public, the owner's as on one database): the subscription is
-- created on shard 0 (which validates the arguments as one database does: its error is raised
-- and nothing is written anywhere; it makes the id and the secret), then copied with that id and
-- secret to every other shard in turn. When a shard cannot take the copy (no two-phase commit),
-- the subscription is deleted again from the shards that have it and the error is raised with
-- a hint saying so: creating it again once the shard answers converges. Returns the id and the
-- secret, as on one database.
CREATE OR REPLACE FUNCTION orderdb.create_webhook_subscription(
    p_url text, p_event_types text[] DEFAULT NULL, p_secret text DEFAULT NULL,
    p_max_attempts integer DEFAULT 8, p_description text DEFAULT NULL)
RETURNS TABLE (subscription_id bigint, secret text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    r record;
    v_shard integer;
    v_undo integer;
    v_done integer[] := ARRAY[0];
    v_left integer[] := '{}';
    v_id bigint;
    v_secret text;
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    FOR r IN SELECT * FROM orderdb_cluster.create_webhook_subscription(
                 0, p_url, p_event_types, p_secret, p_max_attempts, p_description) LOOP
        IF r.err_sqlstate IS NOT NULL THEN
            PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message, r.err_detail,
                                           r.err_hint);
        END IF;
        v_id := r.subscription_id;
        v_secret := r.secret;
    END LOOP;
    FOR v_shard IN SELECT s.shard FROM orderdb_cluster.shards s WHERE s.shard <> 0
                    ORDER BY s.shard LOOP
        BEGIN
            FOR r IN SELECT * FROM orderdb_cluster.put_webhook_subscription(
                         v_shard, v_id, p_url, p_event_types, v_secret, p_max_attempts,
                         p_description, true) LOOP
                IF r.err_sqlstate IS NOT NULL THEN
                    PERFORM orderdb_cluster._raise(r.err_sqlstate, r.err_message,
                                                   r.err_detail, r.err_hint);
                END IF;
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
            FOREACH v_undo IN ARRAY v_done LOOP
                BEGIN
                    PERFORM orderdb_cluster.drop_webhook_subscription(v_undo, v_id);
                EXCEPTION WHEN OTHERS THEN
                    v_left := v_left || v_undo;
                END;
            END LOOP;
            PERFORM orderdb_cluster._raise(
                v_sqlstate, v_message, nullif(v_detail, ''),
                concat_ws(' ', nullif(v_hint, ''),
                          format('Webhook subscription %s could not be copied to shard %s (no '
                                 'two-phase commit) and was not created: create it again when '
                                 'shard %s answers (docs/scaling.md, Reference data).',
                                 v_id, v_shard, v_shard),
                          CASE WHEN cardinality(v_left) > 0 THEN
                              format('It could not be deleted again from shard %s: delete it '
                                     'there (DELETE FROM orderdb.webhook_subscriptions WHERE '
                                     'subscription_id = %s).',
                                     array_to_string(v_left, ', '), v_id)
                          END));
        END;
        v_done := v_done || v_shard;
    END LOOP;
    subscription_id := v_id;
    secret := v_secret;
    RETURN NEXT;
END;
$fn$;

REVOKE ALL ON ALL ROUTINES IN SCHEMA orderdb_cluster FROM PUBLIC;
REVOKE ALL ON FUNCTION orderdb.create_webhook_subscription(text, text[], text, integer, text)
    FROM PUBLIC;
