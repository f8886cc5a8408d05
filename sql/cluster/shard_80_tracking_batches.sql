-- Batches of carrier events through the proxy (docs/scaling.md "Carrier events"; the proxy side
-- is sql/cluster/proxy_80_tracking_batches.sql).

-- check_tracking_events: runs orderdb.record_tracking_events(p_events) on this shard and undoes
-- it (always: the call's subtransaction is rolled back), returning the error it raised, if any,
-- as data (err_* columns; all NULL when the batch would be recorded here). The proxy uses it to
-- check a whole batch with the rules and messages of one database before it records anything.
-- Raises nothing. Locks what the batch locks, until the subtransaction is undone.
CREATE OR REPLACE FUNCTION orderdb_shard.check_tracking_events(p_events jsonb)
RETURNS TABLE (err_sqlstate text, err_message text, err_detail text, err_hint text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    BEGIN
        PERFORM FROM orderdb.record_tracking_events(p_events);
        -- undo the recorded batch: its own SQLSTATE, caught just below
        RAISE EXCEPTION USING ERRCODE = 'ODCHK', MESSAGE = 'batch checked';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    END;
    -- nothing of the batch is kept: the commit needs no WAL flush
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    IF v_sqlstate = 'ODCHK' THEN
        RETURN QUERY SELECT NULL::text, NULL::text, NULL::text, NULL::text;
    ELSE
        RETURN QUERY SELECT v_sqlstate, v_message, nullif(v_detail, ''), nullif(v_hint, '');
    END IF;
END;
$fn$;
REVOKE ALL ON FUNCTION orderdb_shard.check_tracking_events(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orderdb_shard.check_tracking_events(jsonb) TO orderdb_app;
