-- Rolls back 0012_webhook_attempt_details: drops the response columns of webhook_attempts and
-- restores the table comments of 0003_events.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.webhook_attempts DROP COLUMN IF EXISTS response_headers;
-- squawk-ignore ban-drop-column
ALTER TABLE orderdb.webhook_attempts DROP COLUMN IF EXISTS response_body;

COMMENT ON TABLE orderdb.webhook_attempts IS
    'Every webhook delivery attempt: HTTP status code or error, when, how long it took.';

COMMENT ON TABLE orderdb.webhook_subscriptions IS
    'Webhook endpoints: events whose type is in event_types (NULL: all) are POSTed to url, signed '
    'with secret (X-Orderdb-Signature: sha256=<hex HMAC of the body>); dead-lettered after '
    'max_attempts failed attempts.';
