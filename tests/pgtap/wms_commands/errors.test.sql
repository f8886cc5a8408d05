-- Bad input is 22023 naming the field and changes nothing; an unknown warehouse or command is
-- OD004; retrying a command that is not dead is OD003; set_warehouse_wms keeps the stored secret
-- when none is given and never returns it.
BEGIN;
SELECT plan(17);

SELECT FROM orderdb.receive_stock(7742201, 'WE-A', 10);

SELECT throws_ok($$SELECT orderdb.set_warehouse_wms(0, 'sim')$$, '22023', NULL, 'warehouse_id not positive');
SELECT throws_ok($$SELECT orderdb.set_warehouse_wms(7742201, 'Not A Name')$$, '22023',
                 'connector must be a connector name (lower-case letters, digits, _ . -; up to 64 characters)', 'a bad connector name');
SELECT throws_ok($$SELECT orderdb.set_warehouse_wms(7742201, 'http', 'ftp://wms.example')$$, '22023',
                 'url must be an http:// or https:// URL of at most 2000 characters', 'a url that is not http(s)');
SELECT throws_ok($$SELECT orderdb.set_warehouse_wms(7742201, 'http', NULL, '')$$, '22023',
                 'secret must be 1 to 1000 characters', 'an empty secret');
SELECT throws_ok($$SELECT orderdb.set_warehouse_wms(7742201, 'http', NULL, NULL, NULL, '[]')$$, '22023', NULL,
                 'settings that are not an object');
SELECT throws_ok($$SELECT orderdb.set_warehouse_wms(7742201, 'http', NULL, NULL, NULL, '{"secret": "x"}')$$, '22023',
                 'settings.secret is not a connector setting', 'the secret in the settings');
SELECT throws_ok($$SELECT orderdb.set_warehouse_wms(7742299, 'sim')$$, 'OD004', 'warehouse 7742299 not found',
                 'an unknown warehouse');
SELECT is((SELECT count(*)::integer FROM orderdb.warehouse_wms WHERE warehouse_id IN (7742201, 7742299)), 0,
          'nothing was stored');

SELECT is((SELECT row(connector, url, has_secret)::text FROM orderdb.set_warehouse_wms(7742201, 'http', 'https://a.example', 'first-secret')),
          row('http', 'https://a.example', true)::text, 'stored; the secret is not returned, only that there is one');
SELECT FROM orderdb.set_warehouse_wms(7742201, 'http', 'https://b.example', NULL, 'SIM');
SELECT is((SELECT row(url, secret, carrier)::text FROM orderdb.warehouse_wms WHERE warehouse_id = 7742201),
          row('https://b.example', 'first-secret', 'SIM')::text, 'no secret given: the stored one stays');

SELECT throws_ok($$SELECT orderdb.retry_wms_command(0)$$, '22023', NULL, 'retry: command_id not positive');
SELECT throws_ok($$SELECT orderdb.retry_wms_command(9223372036854775807)$$, 'OD004',
                 'WMS command 9223372036854775807 not found', 'retry: an unknown command');
SELECT order_id AS a FROM orderdb.create_order(99742201, 7742201, '[{"sku": "WE-A", "quantity": 1}]') \gset
SELECT FROM orderdb.transition_order(:a, 'confirmed', 1);
SELECT FROM orderdb.transition_order(:a, 'dispatched', 2);
SELECT command_id AS create_id FROM orderdb.wms_commands WHERE order_id = :a \gset
SELECT throws_ok(format('SELECT orderdb.retry_wms_command(%s)', :create_id), 'OD003',
                 format('WMS command %s is pending: only a dead command can be sent again', :create_id),
                 'retry: a command that is not dead');

SELECT throws_ok($$SELECT * FROM orderdb.claim_wms_commands('', 10, 60)$$, '22023', NULL, 'claim: an empty worker name');
SELECT throws_ok($$SELECT * FROM orderdb.claim_wms_commands('w', 0, 60)$$, '22023', 'limit must be between 1 and 1000',
                 'claim: limit out of range');
SELECT throws_ok($$SELECT * FROM orderdb.claim_wms_commands('w', 10, 0)$$, '22023', 'lease_seconds must be between 1 and 86400',
                 'claim: lease out of range');
UPDATE orderdb.wms_commands SET status = 'sending', leased_by = 'w', attempts = 1 WHERE command_id = :create_id;
SELECT throws_ok(format('SELECT orderdb.complete_wms_command(%s, %L, 1)', :create_id, 'w'), '22023',
                 'wms_order_id is required to complete a create', 'a create completes with the WMS''s order id');

SELECT * FROM finish();
ROLLBACK;
