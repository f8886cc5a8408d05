-- plan_routes names what is missing: a warehouse that does not exist is "not found" (OD004), not a
-- warehouse "without location"; an existing warehouse without a location keeps its own message.
BEGIN;
SELECT plan(4);

-- a warehouse id no one uses (the largest integer), and one that exists without a location
SELECT FROM orderdb.receive_stock(2147480431, 'RT-UNKNOWN-WH', 1);

SELECT throws_ok(
    $$SELECT * FROM orderdb.plan_routes(2147480437)$$,
    'OD004', 'warehouse 2147480437 not found',
    'a warehouse that does not exist: OD004 not found');
SELECT throws_like(
    $$SELECT * FROM orderdb.plan_routes(2147480437)$$,
    '%not found%',
    'the message does not claim the warehouse exists without a location');
SELECT throws_ok(
    $$SELECT * FROM orderdb.plan_routes(2147480431)$$,
    'OD004', 'warehouse 2147480431 has no location',
    'an existing warehouse without a location: OD004 has no location');
SELECT throws_ok(
    $$SELECT * FROM orderdb.plan_routes(0)$$,
    '22023', NULL,
    'a warehouse id that is not positive: 22023');

SELECT * FROM finish();
ROLLBACK;
