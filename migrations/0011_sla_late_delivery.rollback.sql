-- Rollback of 0011_sla_late_delivery: the carrier-alert index, the late_delivery rule (and what
-- sla_check recorded for it) and the CHECK on rule names go. orderdb._sla_breaches still has a
-- late_delivery branch, which finds no rule row and reports nothing.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- squawk-ignore require-concurrent-index-deletion
DROP INDEX IF EXISTS orderdb.tracking_events_problem;
DELETE FROM orderdb.sla_escalations WHERE rule = 'late_delivery';
DELETE FROM orderdb.sla_rules WHERE rule = 'late_delivery';
-- squawk-ignore ban-drop-constraint
ALTER TABLE orderdb.sla_rules DROP CONSTRAINT IF EXISTS sla_rules_known_rule;
