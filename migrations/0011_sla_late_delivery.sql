-- depends: 0010_ops_tracking_partitions 0010_ops_outbox_partitions
--
-- SLA rule late_delivery, a rules table that accepts only the rules orderdb evaluates, and the
-- index behind the carrier alerts of orderdb_ops.alerts.
--
--   * orderdb.sla_rules: CHECK sla_rules_known_rule — a rule is one of those
--     orderdb._sla_breaches (sql/60_ops_sla.sql) evaluates; a row of any other name was accepted
--     and silently never evaluated. A database holding such rows stops this migration with
--     their names (delete them, then migrate again). Adding a rule is a migration that widens
--     the CHECK and a branch of orderdb._sla_breaches.
--   * late_delivery: shipped and not delivered by options.promised_delivery_at, or 96 hours
--     (4 days) after shipping.
--   * tracking_events_problem: the carrier exceptions and failed delivery attempts by event time
--     (a partial index: a few per cent of the carrier events; the table is insert-only, so no
--     update pays for it). orderdb_ops.alerts reads the recent ones and checks each parcel by
--     its primary key, instead of every open order's parcels.
-- Locks: ACCESS EXCLUSIVE on sla_rules (a few rows); SHARE on tracking_events (all partitions)
-- while the index builds (blocks carrier event inserts). On a large live database build it on
-- each partition beforehand, and CREATE INDEX on the parent then attaches those instead:
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS tracking_events_pYYYYMM_problem
--       ON orderdb.tracking_events_pYYYYMM (event_time)
--       WHERE normalized_status IN ('exception', 'failed_attempt');   -- each partition

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DO $unknown_rules$
DECLARE
    v_unknown text;
BEGIN
    SELECT string_agg(r.rule, ', ' ORDER BY r.rule) INTO v_unknown
      FROM orderdb.sla_rules r
     WHERE r.rule NOT IN ('late_delivery', 'late_shipment', 'no_tracking_update', 'unpaid',
                          'unsigned');
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '23514',
            MESSAGE = format('orderdb.sla_rules holds rules orderdb does not evaluate: %s',
                             v_unknown),
            HINT = 'They never produced a breach. Delete them (DELETE FROM orderdb.sla_rules '
                   'WHERE rule IN (...)) and migrate again.';
    END IF;
END;
$unknown_rules$;

-- a handful of rows: validated at once
ALTER TABLE orderdb.sla_rules
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT sla_rules_known_rule
    CHECK (rule IN ('late_delivery', 'late_shipment', 'no_tracking_update', 'unpaid', 'unsigned'));
COMMENT ON CONSTRAINT sla_rules_known_rule ON orderdb.sla_rules IS
    'Only the rules orderdb_ops.sla_breaches evaluates (orderdb._sla_breaches); any other row '
    'would never be evaluated.';

INSERT INTO orderdb.sla_rules (rule, threshold, action, escalate_after, critical_after, horizon,
                               description) VALUES
    ('late_delivery', interval '96 hours', 'delay_compensation', interval '0',
     interval '2 days', interval '60 days',
     'shipped and not delivered by options.promised_delivery_at, or (without a promise) '
     'threshold after shipping')
ON CONFLICT (rule) DO NOTHING;

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS tracking_events_problem
    ON orderdb.tracking_events (event_time)
    WHERE normalized_status IN ('exception', 'failed_attempt');
