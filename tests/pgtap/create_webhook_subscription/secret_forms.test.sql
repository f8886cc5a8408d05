-- create_webhook_subscription: a generated secret has the Standard Webhooks form (whsec_ and the
-- base64 of 32 random bytes), different every time; a given secret is either a well-formed whsec_
-- secret of at least 24 bytes (padded or not) or any other 16..255 characters (the earlier hex
-- secrets); a malformed or too short whsec_ secret is 22023 naming the secret and creates
-- nothing. Uses its own subscriptions only.
BEGIN;
SELECT plan(10);

CREATE TEMP TABLE t_made ON COMMIT DROP AS
SELECT s.subscription_id, s.secret
  FROM orderdb.create_webhook_subscription('https://example.invalid/pgtap-secrets') s;
INSERT INTO t_made
SELECT s.subscription_id, s.secret
  FROM orderdb.create_webhook_subscription('https://example.invalid/pgtap-secrets') s;

SELECT ok((SELECT bool_and(secret ~ '^whsec_[A-Za-z0-9+/]{43}=$') FROM t_made),
          'a generated secret is whsec_ followed by base64');
SELECT is((SELECT min(length(decode(substr(secret, 7), 'base64'))) FROM t_made), 32,
          'of 32 bytes');
SELECT is((SELECT count(DISTINCT secret)::integer FROM t_made), 2,
          'two generated secrets differ');
SELECT is((SELECT count(*)::integer FROM orderdb.webhook_subscriptions w
             JOIN t_made t USING (subscription_id) WHERE w.secret = t.secret), 2,
          'the returned secret is the stored one');

SELECT lives_ok(
    format($$ SELECT orderdb.create_webhook_subscription('https://example.invalid/pgtap-secrets',
                                                         NULL, %L) $$,
           'whsec_' || encode(sha256('pgtap'::bytea), 'base64')),
    'a given whsec_ secret of 32 bytes is accepted');
SELECT lives_ok(
    format($$ SELECT orderdb.create_webhook_subscription('https://example.invalid/pgtap-secrets',
                                                         NULL, %L) $$,
           'whsec_' || rtrim(encode(substr(sha256('pgtap'::bytea), 1, 25), 'base64'), '=')),
    'unpadded base64 is accepted');
SELECT lives_ok(
    $$ SELECT orderdb.create_webhook_subscription('https://example.invalid/pgtap-secrets', NULL,
                                                  repeat('0123456789abcdef', 4)) $$,
    'a 64-hex-character secret (the earlier form) is accepted');

SELECT throws_ok(
    format($$ SELECT orderdb.create_webhook_subscription('https://example.invalid/pgtap-bad',
                                                         NULL, %L) $$,
           'whsec_' || encode(substr(sha256('pgtap'::bytea), 1, 16), 'base64')),
    '22023',
    'secret in the whsec_ form must be whsec_ followed by the base64 of at least 24 bytes',
    'a whsec_ secret of 16 bytes is 22023');
SELECT throws_ok(
    $$ SELECT orderdb.create_webhook_subscription('https://example.invalid/pgtap-bad', NULL,
                                                  'whsec_not base64 at all!!!!') $$,
    '22023',
    'secret in the whsec_ form must be whsec_ followed by the base64 of at least 24 bytes',
    'a whsec_ secret that is not base64 is 22023');
SELECT is((SELECT count(*)::integer FROM orderdb.webhook_subscriptions
            WHERE url = 'https://example.invalid/pgtap-bad'), 0,
          'refused secrets created nothing');

SELECT * FROM finish();
ROLLBACK;
