-- depends: 0014_comments 0014_ops_counters 0015_consumer_groups
--
-- Kuaidi100's detailed status codes (高级物流状态, the statusCode of each scan when a query or
-- subscription asks for resultv2=1) in orderdb.carrier_status_map under carrier KUAIDI100, beside
-- the basic states 0..7 and 14 seeded by 0004_fulfilment. The KUAIDI100 carrier plugin
-- (orderdb/integrations/carriers/kuaidi100.py) records each scan with its statusCode; the
-- mapping and its sources are explained in docs/carriers.md. Codes 9 and 15 are not in any
-- Kuaidi100 list found, so they have no row: a scan with one is stored as 'unknown' and shows in
-- orderdb_ops.unknown_carrier_codes. Rows only; existing rows are left as they are.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

INSERT INTO orderdb.carrier_status_map
       (carrier, carrier_status, normalized_status, description, verified, source) VALUES
    ('KUAIDI100', '101', 'info_received', '已下单 / order placed with the carrier', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '102', 'info_received', '待揽收 / waiting for pickup', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '103', 'in_transit', '已揽收 / picked up', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '1001', 'in_transit', '到达派件城市 / arrived in the destination city', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '1002', 'in_transit', '干线 / line haul', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '1003', 'in_transit', '转递 / forwarded to a new address', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '501', 'available_for_pickup', '投柜或驿站 / in a locker or parcel station', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '301', 'delivered', '本人签收 / signed by the recipient', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '302', 'delivered', '派件异常后签收 / signed after a delivery problem', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '303', 'delivered', '代签 / signed by someone else', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '304', 'delivered', '投柜或站签收 / taken from a locker or station', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '401', 'exception', '已销单 / waybill cancelled', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '201', 'exception', '超时未签收 / not signed for a long time after delivery', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '202', 'exception', '超时未更新 / no update for a long time', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '203', 'failed_attempt', '拒收 / refused by the recipient, the sender to confirm', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '204', 'failed_attempt', '派件异常 / delivery problem', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '205', 'exception', '柜或驿站超时未取 / not collected from the locker or station in time', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '206', 'failed_attempt', '无法联系 / recipient unreachable', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '207', 'exception', '超区 / outside the carrier''s service area', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '208', 'exception', '滞留 / held at the outlet, not delivered', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '209', 'exception', '破损 / damaged', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '210', 'exception', '销单 / the sender cancelled the shipment', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '8', 'in_transit', '清关 / customs clearance', true, 'kuaidi100 status table (resultv2), docs/carriers.md'),
    ('KUAIDI100', '10', 'in_transit', '待清关 / waiting for customs clearance', true, 'kuaidi100-api java-demo QueryTrackResp'),
    ('KUAIDI100', '11', 'in_transit', '清关中 / in customs clearance', true, 'kuaidi100-api java-demo QueryTrackResp'),
    ('KUAIDI100', '12', 'in_transit', '已清关 / cleared customs', true, 'kuaidi100-api java-demo QueryTrackResp'),
    ('KUAIDI100', '13', 'exception', '清关异常 / customs problem', true, 'kuaidi100-api java-demo QueryTrackResp')
ON CONFLICT (carrier, carrier_status) DO NOTHING;
