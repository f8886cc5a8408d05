-- depends: 0010_ops_tracking_partitions 0010_ops_outbox_partitions
--
-- orderdb.customer_texts: every sentence a customer's timeline shows for an order step, per
-- language. The reason given to transition_order and a warehouse's exception type are internal
-- (audit, operators); the customer sees the text of the status, or of the exception type (the
-- generic one, code '*', for a type without its own text). Operators edit the rows (docs/
-- tracking.md "Customer texts"); orderdb._customer_text reads them.
--   kind 'status'     an order status (orderdb.order_statuses)
--   kind 'exception'  a warehouse exception type (wms_callback EXCEPTION payload.exception_type)
--   kind 'carrier'    a normalised carrier status (orderdb.tracking_statuses), shown when the
--                     carrier's event has no description of its own
--   kind 'change'     a change that is not a status change (reallocation)
-- locale: a BCP 47 tag ('en', later 'zh-CN'); a text missing in a locale falls back to 'en'.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE IF NOT EXISTS orderdb.customer_texts (
    locale text NOT NULL CHECK (locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
    kind   text NOT NULL CHECK (kind IN ('status', 'exception', 'carrier', 'change')),
    code   text NOT NULL CHECK (length(code) BETWEEN 1 AND 100),
    text   text NOT NULL CHECK (length(text) BETWEEN 1 AND 500),
    PRIMARY KEY (locale, kind, code)
);

COMMENT ON TABLE orderdb.customer_texts IS
    'Customer-safe sentences of the timeline per locale, kind (status, exception, carrier, '
    'change) and code (''*'': the kind''s generic text). Internal reasons are never shown.';

INSERT INTO orderdb.customer_texts (locale, kind, code, text) VALUES
    ('en', 'status', 'pending',          'Order placed'),
    ('en', 'status', 'confirmed',        'Order confirmed'),
    ('en', 'status', 'dispatched',       'Sent to the warehouse'),
    ('en', 'status', 'picked',           'Items picked'),
    ('en', 'status', 'packed',           'Parcel packed'),
    ('en', 'status', 'shipped',          'Handed to the carrier'),
    ('en', 'status', 'delivering',       'On its way'),
    ('en', 'status', 'delivered',        'Delivered'),
    ('en', 'status', 'completed',        'Order completed'),
    ('en', 'status', 'cancelled',        'Order cancelled'),
    ('en', 'status', 'on_hold',          'On hold: we are checking your order'),
    ('en', 'status', 'delivery_failed',  'Delivery attempt failed'),
    ('en', 'status', 'return_requested', 'Return requested'),
    ('en', 'status', 'returning',        'Return on its way to the warehouse'),
    ('en', 'status', 'returned',         'Return received'),
    ('en', 'status', '*',                'Order updated'),
    ('en', 'exception', 'OUT_OF_STOCK',
        'On hold: an item is out of stock; we will ship as soon as it is back'),
    ('en', 'exception', 'DAMAGED_GOODS',
        'On hold: an item is being replaced before your parcel leaves'),
    ('en', 'exception', 'ADDRESS_INCOMPLETE',
        'On hold: we need more details of your delivery address'),
    ('en', 'exception', 'ADDRESS_INVALID',
        'On hold: we need to check your delivery address'),
    ('en', 'exception', 'PAYMENT_ISSUE',
        'On hold: we are checking your payment'),
    ('en', 'exception', '*',
        'On hold: the warehouse is checking your order'),
    ('en', 'carrier', 'info_received',        'The carrier has the parcel''s details'),
    ('en', 'carrier', 'in_transit',           'In transit'),
    ('en', 'carrier', 'out_for_delivery',     'Out for delivery'),
    ('en', 'carrier', 'failed_attempt',       'Delivery attempt failed'),
    ('en', 'carrier', 'available_for_pickup', 'Ready for pickup'),
    ('en', 'carrier', 'delivered',            'Delivered'),
    ('en', 'carrier', 'exception',            'The carrier reports a delay'),
    ('en', 'carrier', 'returned_to_sender',   'On its way back to the sender'),
    ('en', 'carrier', '*',                    'Carrier update'),
    ('en', 'change', 'reallocation',          'Order moved to another warehouse')
ON CONFLICT (locale, kind, code) DO NOTHING;
