-- depends: 0010_ops_tracking_partitions 0010_ops_outbox_partitions 0011_customer_texts 0011_effective_times 0011_sla_late_delivery 0011_wms_event_source
--
-- Webhook attempts keep what the receiver answered: beside the status code (or error) and the
-- duration, the response's headers (a JSON object: lower-case name -> value, repeated headers
-- joined with ", ") and the start of its body (its first 4096 bytes as text). Both are NULL when
-- no HTTP answer came, and for attempts recorded before this migration.
--
-- Outgoing webhooks follow Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature);
-- the table comments say so. New secrets have the whsec_ form (sql/50_events.sql); existing
-- secrets keep working unchanged.
--
-- The CHECK constraints are on new, all-NULL columns, so checking them reads no row.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

ALTER TABLE orderdb.webhook_attempts
    ADD COLUMN IF NOT EXISTS response_headers jsonb
        CONSTRAINT webhook_attempts_response_headers_check
        CHECK (jsonb_typeof(response_headers) = 'object'
               AND octet_length(response_headers::text) <= 16384),
    ADD COLUMN IF NOT EXISTS response_body text
        CONSTRAINT webhook_attempts_response_body_check
        CHECK (length(response_body) <= 4096);

COMMENT ON COLUMN orderdb.webhook_attempts.response_headers IS
    'The response''s headers (lower-case name -> value; repeated ones joined with ", "), at most '
    '16 kB; NULL when no HTTP answer came.';
COMMENT ON COLUMN orderdb.webhook_attempts.response_body IS
    'The first 4096 bytes of the response body as text (undecodable bytes and NUL replaced); '
    'NULL when no HTTP answer came.';

COMMENT ON TABLE orderdb.webhook_attempts IS
    'Every webhook delivery attempt: HTTP status code or error, when, how long it took, the '
    'response''s headers and the start of its body.';

COMMENT ON TABLE orderdb.webhook_subscriptions IS
    'Webhook endpoints: events whose type is in event_types (NULL: all) are POSTed to url, signed '
    'with secret per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature: '
    'v1,<base64 HMAC-SHA256 of "id.timestamp.body">; the key is the base64 after whsec_, or the '
    'UTF-8 bytes of a secret in another form) and with the deprecated X-Orderdb-Signature: '
    'sha256=<hex HMAC of the body with the secret text>; dead-lettered after max_attempts failed '
    'attempts.';
