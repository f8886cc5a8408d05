-- _webhook_record: a failed attempt is retried after the exponential backoff plus 0..25 % random
-- jitter (never earlier than the plain backoff, and not at one instant for every delivery that
-- failed together; the cap applies before the jitter); the attempt keeps the response headers
-- and the first 4096 characters of the body; headers that are not a JSON object, or over 16 kB,
-- are 22023 and record nothing. Uses its own subscription and deliveries only.
BEGIN;
SELECT plan(12);

CREATE TEMP TABLE t_sub ON COMMIT DROP AS
SELECT s.subscription_id
  FROM orderdb.create_webhook_subscription('https://example.invalid/pgtap-jitter',
                                           ARRAY['pgtap.jitter'], NULL, 10) s;

INSERT INTO orderdb.webhook_deliveries
       (subscription_id, event_id, event_tx_id, event_type, order_id, payload, event_created_at)
SELECT t.subscription_id, 987654321000 + g, pg_current_xact_id(), 'pgtap.jitter', NULL, '{}',
       now()
  FROM t_sub t, generate_series(1, 20) g;

CREATE TEMP VIEW t_deliveries AS
SELECT d.*
  FROM orderdb.webhook_deliveries d
  JOIN t_sub USING (subscription_id);

CREATE TEMP VIEW t_attempts AS
SELECT a.*
  FROM orderdb.webhook_attempts a
  JOIN t_deliveries d USING (delivery_id);

SELECT is((SELECT count(*)::integer FROM t_deliveries d
            WHERE orderdb._webhook_record(d.delivery_id, 1, 500, 'HTTP 500 Internal Server Error',
                                          12, '10 seconds', '1 hour',
                                          '{"x-a": "1", "retry-after": "0"}',
                                          repeat('b', 5000)) = 'pending'),
          20, 'twenty failed first attempts: all pending again');

SELECT ok((SELECT bool_and(next_attempt_at - now() BETWEEN interval '10 seconds'
                                                   AND interval '12.5 seconds')
             FROM t_deliveries),
          'each retry is due after 10 s (the backoff) plus at most 25 % jitter');

SELECT cmp_ok((SELECT count(DISTINCT next_attempt_at)::integer FROM t_deliveries), '>', 1,
              'the retries of deliveries that failed together are spread out');

SELECT results_eq(
    $$ SELECT DISTINCT status_code::integer, error, duration_ms::integer, response_headers,
              length(response_body)
         FROM t_attempts $$,
    $$ VALUES (500, 'HTTP 500 Internal Server Error', 12,
               '{"x-a": "1", "retry-after": "0"}'::jsonb, 4096) $$,
    'each attempt keeps status, error, duration, response headers and 4096 characters of body');

-- the second attempt of one delivery: 10 s * 2
SELECT is(orderdb._webhook_record((SELECT min(delivery_id) FROM t_deliveries), 2, 502, NULL, 5,
                                  '10 seconds', '1 hour'),
          'pending', 'a second failed attempt');
SELECT ok((SELECT next_attempt_at - now() BETWEEN interval '20 seconds' AND interval '25 seconds'
             FROM t_deliveries WHERE delivery_id = (SELECT min(delivery_id) FROM t_deliveries)),
          'the second retry waits 20 s plus at most 25 %');
SELECT ok((SELECT response_headers IS NULL AND response_body IS NULL
             FROM t_attempts WHERE attempt = 2),
          'no headers or body given: NULL (no HTTP answer)');

-- the cap comes before the jitter
SELECT is(orderdb._webhook_record((SELECT max(delivery_id) FROM t_deliveries), 2, 503, NULL, 5,
                                  '1 hour', '90 minutes'),
          'pending', 'a second failed attempt with a large base');
SELECT ok((SELECT next_attempt_at - now() BETWEEN interval '90 minutes'
                                             AND interval '112.5 minutes'
             FROM t_deliveries WHERE delivery_id = (SELECT max(delivery_id) FROM t_deliveries)),
          'capped at backoff_max, plus at most 25 %');

SELECT throws_ok(
    format($$ SELECT orderdb._webhook_record(%s, 3, 500, NULL, 1, '1 second', '1 hour',
                                             '["not", "an object"]') $$,
           (SELECT min(delivery_id) FROM t_deliveries)),
    '22023', 'response_headers must be a JSON object of at most 16384 bytes',
    'headers that are not a JSON object are 22023');
SELECT throws_ok(
    format($$ SELECT orderdb._webhook_record(%s, 3, 500, NULL, 1, '1 second', '1 hour',
                                             jsonb_build_object('x-big', repeat('h', 17000))) $$,
           (SELECT min(delivery_id) FROM t_deliveries)),
    '22023', 'response_headers must be a JSON object of at most 16384 bytes',
    'headers over 16 kB are 22023');
SELECT is((SELECT count(*)::integer FROM t_attempts), 22,
          'the refused attempts recorded nothing');

SELECT * FROM finish();
ROLLBACK;
