-- Rollback of 0011_wms_event_source: the primary key of orderdb.wms_events back to (event_id)
-- and the column source dropped. Refused (nothing changes) when two sources used the same event
-- id: one of those callbacks would have to be deleted first.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DO $$
DECLARE
    v_event_id text;
BEGIN
    SELECT w.event_id INTO v_event_id
      FROM orderdb.wms_events w
     GROUP BY w.event_id
    HAVING count(*) > 1
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = '55000',
            MESSAGE = format('cannot roll back 0011_wms_event_source: WMS event id %L is used by '
                             'several sources', v_event_id),
            HINT = 'Delete the callbacks of the other sources from orderdb.wms_events first.';
    END IF;
END;
$$;

-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX IF NOT EXISTS wms_events_event_key ON orderdb.wms_events (event_id);
-- the new key's unique index is built above; the next statement makes it the primary key
-- squawk-ignore ban-drop-constraint
ALTER TABLE orderdb.wms_events DROP CONSTRAINT IF EXISTS wms_events_pkey;
ALTER TABLE orderdb.wms_events
    ADD CONSTRAINT wms_events_pkey PRIMARY KEY USING INDEX wms_events_event_key;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.wms_events DROP COLUMN IF EXISTS source;
COMMENT ON TABLE orderdb.wms_events IS
    'Every WMS callback, late ones included, deduplicated by event_id; outcome tells what it did.';
