-- Rollback of 0016_carrier_kuaidi100: the KUAIDI100 rows it added (the basic states of
-- 0004_fulfilment stay).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
DELETE FROM orderdb.carrier_status_map
 WHERE carrier = 'KUAIDI100'
   AND carrier_status IN ('101', '102', '103', '1001', '1002', '1003', '501', '301', '302', '303',
                          '304', '401', '201', '202', '203', '204', '205', '206', '207', '208',
                          '209', '210', '8', '10', '11', '12', '13');
