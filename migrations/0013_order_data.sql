-- depends: 0010_ops_tracking_partitions 0010_ops_outbox_partitions 0011_customer_texts 0011_effective_times 0011_sla_late_delivery 0011_wms_event_source 0012_webhook_attempt_details
--
-- Order data: the recipient and address, priority, currency, shipping fee and promised times of
-- an order (create_order's p_options, validated by orderdb._order_data in sql/15_checks.sql),
-- its totals, its amendments (orderdb.amend_order), a customer's orders (orderdb.customer_orders)
-- and customer texts in Chinese.
--
-- Storage (the hot path stays as it was): the few things that are queried or summed get columns
-- of orderdb.orders — currency, priority, items_total, shipping_fee — written once by
-- create_order (priority also by amend_order); everything else (ship_to, promised times,
-- attributes) stays in the options jsonb, validated and normalised. The new columns have constant
-- defaults (no table rewrite) and their CHECK constraints are NOT VALID (no scan: rows written
-- before this migration hold the defaults, and create_order validates what it writes).
-- items_total is NULL for orders created before this migration: the readers then sum the order's
-- lines (orderdb._order_totals).
--
-- Index orders_customer (customer_id, order_id DESC): orderdb.customer_orders, newest first with
-- keyset pagination. customer_id never changes, so status changes stay HOT; the price is one
-- index entry per created order (docs/benchmarks.md, "Order data"). Not CONCURRENTLY, for the
-- reason migrations/0007_ops_indexes.sql gives (build it CONCURRENTLY beforehand on a large live
-- database: CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer
--   ON orderdb.orders (customer_id, order_id DESC); this migration then finds it).
--
-- orderdb.order_amendments: one row per amend_order call (append-only): the order's version it
-- produced, its status then, actor, reason and every changed key's old and new value.
-- orderdb.order_history lists them beside the status changes (source 'amendment').
--
-- orderdb.currencies / orderdb.countries: ISO 4217 codes (circulating currencies and funds; no
-- metals or test codes) and ISO 3166-1 alpha-2 codes (from the iso-codes data). A shop adds a
-- code with one INSERT.
--
-- couriers.phone: a courier's phone, normalised like ship_to.phone (orderdb._normalize_phone);
-- customers only ever see it masked (order_timeline).
--
-- customer_texts: kind 'page' (the wording of the tracking page and of `orderdb track`: labels),
-- and 'zh-CN' for every 'en' text.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- ---------------------------------------------------------------------------------------------
-- Orders: the queried order data as columns
-- ---------------------------------------------------------------------------------------------

-- squawk-ignore adding-required-field
ALTER TABLE orderdb.orders
    ADD COLUMN IF NOT EXISTS currency text NOT NULL DEFAULT 'CNY',
    ADD COLUMN IF NOT EXISTS priority text NOT NULL DEFAULT 'normal',
    ADD COLUMN IF NOT EXISTS items_total numeric,
    ADD COLUMN IF NOT EXISTS shipping_fee numeric NOT NULL DEFAULT 0;

DO $constraints$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c
                    WHERE c.conrelid = 'orderdb.orders'::regclass
                      AND c.conname = 'orders_order_data_check') THEN
        ALTER TABLE orderdb.orders
            ADD CONSTRAINT orders_order_data_check
            CHECK (currency ~ '^[A-Z]{3}$' AND priority IN ('normal', 'express')
                   AND items_total >= 0 AND shipping_fee >= 0) NOT VALID;
    END IF;
END;
$constraints$;

COMMENT ON COLUMN orderdb.orders.currency IS
    'ISO 4217 code of the order''s prices (options.currency, default CNY).';
COMMENT ON COLUMN orderdb.orders.priority IS
    'normal or express (options.priority; amend_order may change it until shipped).';
COMMENT ON COLUMN orderdb.orders.items_total IS
    'sum(quantity x unit_price) of the lines as ordered (a line without a price counts 0); NULL '
    'for orders created before order data existed (then summed from order_lines when read).';
COMMENT ON COLUMN orderdb.orders.shipping_fee IS
    'options.shipping_fee (default 0), in the order''s currency.';

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS orders_customer ON orderdb.orders (customer_id, order_id DESC);

-- ---------------------------------------------------------------------------------------------
-- Amendments
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS orderdb.order_amendments (
    warehouse_id integer NOT NULL,
    order_id     bigint NOT NULL,
    version      integer NOT NULL CHECK (version >= 2),
    status       text NOT NULL,
    actor        text CHECK (length(actor) <= 1000),
    reason       text CHECK (length(reason) <= 1000),
    changes      jsonb NOT NULL CHECK (jsonb_typeof(changes) = 'object'),
    changed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (warehouse_id, order_id, version)
) WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05);

COMMENT ON TABLE orderdb.order_amendments IS
    'Append-only: one row per orderdb.amend_order call: the version it produced, the order''s '
    'status then, actor, reason and changes {"key": {"old": value, "new": value}}.';

-- the 'address fixed' alerts (orderdb._alerts) read the recent ship_to amendments
CREATE INDEX IF NOT EXISTS order_amendments_ship_to
    ON orderdb.order_amendments (changed_at) WHERE changes ? 'ship_to';

-- ---------------------------------------------------------------------------------------------
-- Code lists
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS orderdb.currencies (
    code text PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200)
);

COMMENT ON TABLE orderdb.currencies IS
    'ISO 4217 currency codes that options.currency accepts (add a row to accept another).';

CREATE TABLE IF NOT EXISTS orderdb.countries (
    code text PRIMARY KEY CHECK (code ~ '^[A-Z]{2}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200)
);

COMMENT ON TABLE orderdb.countries IS
    'ISO 3166-1 alpha-2 country codes that options.ship_to.country accepts.';

INSERT INTO orderdb.currencies (code, name) VALUES
    ('AED', 'UAE Dirham'),
    ('AFN', 'Afghani'),
    ('ALL', 'Lek'),
    ('AMD', 'Armenian Dram'),
    ('ANG', 'Netherlands Antillean Guilder'),
    ('AOA', 'Kwanza'),
    ('ARS', 'Argentine Peso'),
    ('AUD', 'Australian Dollar'),
    ('AWG', 'Aruban Florin'),
    ('AZN', 'Azerbaijan Manat'),
    ('BAM', 'Convertible Mark'),
    ('BBD', 'Barbados Dollar'),
    ('BDT', 'Taka'),
    ('BGN', 'Bulgarian Lev'),
    ('BHD', 'Bahraini Dinar'),
    ('BIF', 'Burundi Franc'),
    ('BMD', 'Bermudian Dollar'),
    ('BND', 'Brunei Dollar'),
    ('BOB', 'Boliviano'),
    ('BOV', 'Mvdol'),
    ('BRL', 'Brazilian Real'),
    ('BSD', 'Bahamian Dollar'),
    ('BTN', 'Ngultrum'),
    ('BWP', 'Pula'),
    ('BYN', 'Belarusian Ruble'),
    ('BZD', 'Belize Dollar'),
    ('CAD', 'Canadian Dollar'),
    ('CDF', 'Congolese Franc'),
    ('CHE', 'WIR Euro'),
    ('CHF', 'Swiss Franc'),
    ('CHW', 'WIR Franc'),
    ('CLF', 'Unidad de Fomento'),
    ('CLP', 'Chilean Peso'),
    ('CNY', 'Yuan Renminbi'),
    ('COP', 'Colombian Peso'),
    ('COU', 'Unidad de Valor Real'),
    ('CRC', 'Costa Rican Colon'),
    ('CUC', 'Peso Convertible'),
    ('CUP', 'Cuban Peso'),
    ('CVE', 'Cabo Verde Escudo'),
    ('CZK', 'Czech Koruna'),
    ('DJF', 'Djibouti Franc'),
    ('DKK', 'Danish Krone'),
    ('DOP', 'Dominican Peso'),
    ('DZD', 'Algerian Dinar'),
    ('EGP', 'Egyptian Pound'),
    ('ERN', 'Nakfa'),
    ('ETB', 'Ethiopian Birr'),
    ('EUR', 'Euro'),
    ('FJD', 'Fiji Dollar'),
    ('FKP', 'Falkland Islands Pound'),
    ('GBP', 'Pound Sterling'),
    ('GEL', 'Lari'),
    ('GHS', 'Ghana Cedi'),
    ('GIP', 'Gibraltar Pound'),
    ('GMD', 'Dalasi'),
    ('GNF', 'Guinean Franc'),
    ('GTQ', 'Quetzal'),
    ('GYD', 'Guyana Dollar'),
    ('HKD', 'Hong Kong Dollar'),
    ('HNL', 'Lempira'),
    ('HRK', 'Kuna'),
    ('HTG', 'Gourde'),
    ('HUF', 'Forint'),
    ('IDR', 'Rupiah'),
    ('ILS', 'New Israeli Sheqel'),
    ('INR', 'Indian Rupee'),
    ('IQD', 'Iraqi Dinar'),
    ('IRR', 'Iranian Rial'),
    ('ISK', 'Iceland Krona'),
    ('JMD', 'Jamaican Dollar'),
    ('JOD', 'Jordanian Dinar'),
    ('JPY', 'Yen'),
    ('KES', 'Kenyan Shilling'),
    ('KGS', 'Som'),
    ('KHR', 'Riel'),
    ('KMF', 'Comorian Franc'),
    ('KPW', 'North Korean Won'),
    ('KRW', 'Won'),
    ('KWD', 'Kuwaiti Dinar'),
    ('KYD', 'Cayman Islands Dollar'),
    ('KZT', 'Tenge'),
    ('LAK', 'Lao Kip'),
    ('LBP', 'Lebanese Pound'),
    ('LKR', 'Sri Lanka Rupee'),
    ('LRD', 'Liberian Dollar'),
    ('LSL', 'Loti'),
    ('LYD', 'Libyan Dinar'),
    ('MAD', 'Moroccan Dirham'),
    ('MDL', 'Moldovan Leu'),
    ('MGA', 'Malagasy Ariary'),
    ('MKD', 'Denar'),
    ('MMK', 'Kyat'),
    ('MNT', 'Tugrik'),
    ('MOP', 'Pataca'),
    ('MRU', 'Ouguiya'),
    ('MUR', 'Mauritius Rupee'),
    ('MVR', 'Rufiyaa'),
    ('MWK', 'Malawi Kwacha'),
    ('MXN', 'Mexican Peso'),
    ('MXV', 'Mexican Unidad de Inversion (UDI)'),
    ('MYR', 'Malaysian Ringgit'),
    ('MZN', 'Mozambique Metical'),
    ('NAD', 'Namibia Dollar'),
    ('NGN', 'Naira'),
    ('NIO', 'Cordoba Oro'),
    ('NOK', 'Norwegian Krone'),
    ('NPR', 'Nepalese Rupee'),
    ('NZD', 'New Zealand Dollar'),
    ('OMR', 'Rial Omani'),
    ('PAB', 'Balboa'),
    ('PEN', 'Sol'),
    ('PGK', 'Kina'),
    ('PHP', 'Philippine Peso'),
    ('PKR', 'Pakistan Rupee'),
    ('PLN', 'Zloty'),
    ('PYG', 'Guarani'),
    ('QAR', 'Qatari Rial'),
    ('RON', 'Romanian Leu'),
    ('RSD', 'Serbian Dinar'),
    ('RUB', 'Russian Ruble'),
    ('RWF', 'Rwanda Franc'),
    ('SAR', 'Saudi Riyal'),
    ('SBD', 'Solomon Islands Dollar'),
    ('SCR', 'Seychelles Rupee'),
    ('SDG', 'Sudanese Pound'),
    ('SEK', 'Swedish Krona'),
    ('SGD', 'Singapore Dollar'),
    ('SHP', 'Saint Helena Pound'),
    ('SLE', 'Leone'),
    ('SLL', 'Leone'),
    ('SOS', 'Somali Shilling'),
    ('SRD', 'Surinam Dollar'),
    ('SSP', 'South Sudanese Pound'),
    ('STN', 'Dobra'),
    ('SVC', 'El Salvador Colon'),
    ('SYP', 'Syrian Pound'),
    ('SZL', 'Lilangeni'),
    ('THB', 'Baht'),
    ('TJS', 'Somoni'),
    ('TMT', 'Turkmenistan New Manat'),
    ('TND', 'Tunisian Dinar'),
    ('TOP', 'Pa’anga'),
    ('TRY', 'Turkish Lira'),
    ('TTD', 'Trinidad and Tobago Dollar'),
    ('TWD', 'New Taiwan Dollar'),
    ('TZS', 'Tanzanian Shilling'),
    ('UAH', 'Hryvnia'),
    ('UGX', 'Uganda Shilling'),
    ('USD', 'US Dollar'),
    ('USN', 'US Dollar (Next day)'),
    ('UYI', 'Uruguay Peso en Unidades Indexadas (UI)'),
    ('UYU', 'Peso Uruguayo'),
    ('UYW', 'Unidad Previsional'),
    ('UZS', 'Uzbekistan Sum'),
    ('VED', 'Bolívar Soberano'),
    ('VES', 'Bolívar Soberano'),
    ('VND', 'Dong'),
    ('VUV', 'Vatu'),
    ('WST', 'Tala'),
    ('XAF', 'CFA Franc BEAC'),
    ('XCD', 'East Caribbean Dollar'),
    ('XOF', 'CFA Franc BCEAO'),
    ('XPF', 'CFP Franc'),
    ('YER', 'Yemeni Rial'),
    ('ZAR', 'Rand'),
    ('ZMW', 'Zambian Kwacha'),
    ('ZWL', 'Zimbabwe Dollar')
ON CONFLICT (code) DO NOTHING;

INSERT INTO orderdb.countries (code, name) VALUES
    ('AD', 'Andorra'),
    ('AE', 'United Arab Emirates'),
    ('AF', 'Afghanistan'),
    ('AG', 'Antigua and Barbuda'),
    ('AI', 'Anguilla'),
    ('AL', 'Albania'),
    ('AM', 'Armenia'),
    ('AO', 'Angola'),
    ('AQ', 'Antarctica'),
    ('AR', 'Argentina'),
    ('AS', 'American Samoa'),
    ('AT', 'Austria'),
    ('AU', 'Australia'),
    ('AW', 'Aruba'),
    ('AX', 'Åland Islands'),
    ('AZ', 'Azerbaijan'),
    ('BA', 'Bosnia and Herzegovina'),
    ('BB', 'Barbados'),
    ('BD', 'Bangladesh'),
    ('BE', 'Belgium'),
    ('BF', 'Burkina Faso'),
    ('BG', 'Bulgaria'),
    ('BH', 'Bahrain'),
    ('BI', 'Burundi'),
    ('BJ', 'Benin'),
    ('BL', 'Saint Barthélemy'),
    ('BM', 'Bermuda'),
    ('BN', 'Brunei Darussalam'),
    ('BO', 'Bolivia, Plurinational State of'),
    ('BQ', 'Bonaire, Sint Eustatius and Saba'),
    ('BR', 'Brazil'),
    ('BS', 'Bahamas'),
    ('BT', 'Bhutan'),
    ('BV', 'Bouvet Island'),
    ('BW', 'Botswana'),
    ('BY', 'Belarus'),
    ('BZ', 'Belize'),
    ('CA', 'Canada'),
    ('CC', 'Cocos (Keeling) Islands'),
    ('CD', 'Congo, The Democratic Republic of the'),
    ('CF', 'Central African Republic'),
    ('CG', 'Congo'),
    ('CH', 'Switzerland'),
    ('CI', 'Côte d''Ivoire'),
    ('CK', 'Cook Islands'),
    ('CL', 'Chile'),
    ('CM', 'Cameroon'),
    ('CN', 'China'),
    ('CO', 'Colombia'),
    ('CR', 'Costa Rica'),
    ('CU', 'Cuba'),
    ('CV', 'Cabo Verde'),
    ('CW', 'Curaçao'),
    ('CX', 'Christmas Island'),
    ('CY', 'Cyprus'),
    ('CZ', 'Czechia'),
    ('DE', 'Germany'),
    ('DJ', 'Djibouti'),
    ('DK', 'Denmark'),
    ('DM', 'Dominica'),
    ('DO', 'Dominican Republic'),
    ('DZ', 'Algeria'),
    ('EC', 'Ecuador'),
    ('EE', 'Estonia'),
    ('EG', 'Egypt'),
    ('EH', 'Western Sahara'),
    ('ER', 'Eritrea'),
    ('ES', 'Spain'),
    ('ET', 'Ethiopia'),
    ('FI', 'Finland'),
    ('FJ', 'Fiji'),
    ('FK', 'Falkland Islands (Malvinas)'),
    ('FM', 'Micronesia, Federated States of'),
    ('FO', 'Faroe Islands'),
    ('FR', 'France'),
    ('GA', 'Gabon'),
    ('GB', 'United Kingdom'),
    ('GD', 'Grenada'),
    ('GE', 'Georgia'),
    ('GF', 'French Guiana'),
    ('GG', 'Guernsey'),
    ('GH', 'Ghana'),
    ('GI', 'Gibraltar'),
    ('GL', 'Greenland'),
    ('GM', 'Gambia'),
    ('GN', 'Guinea'),
    ('GP', 'Guadeloupe'),
    ('GQ', 'Equatorial Guinea'),
    ('GR', 'Greece'),
    ('GS', 'South Georgia and the South Sandwich Islands'),
    ('GT', 'Guatemala'),
    ('GU', 'Guam'),
    ('GW', 'Guinea-Bissau'),
    ('GY', 'Guyana'),
    ('HK', 'Hong Kong'),
    ('HM', 'Heard Island and McDonald Islands'),
    ('HN', 'Honduras'),
    ('HR', 'Croatia'),
    ('HT', 'Haiti'),
    ('HU', 'Hungary'),
    ('ID', 'Indonesia'),
    ('IE', 'Ireland'),
    ('IL', 'Israel'),
    ('IM', 'Isle of Man'),
    ('IN', 'India'),
    ('IO', 'British Indian Ocean Territory'),
    ('IQ', 'Iraq'),
    ('IR', 'Iran, Islamic Republic of'),
    ('IS', 'Iceland'),
    ('IT', 'Italy'),
    ('JE', 'Jersey'),
    ('JM', 'Jamaica'),
    ('JO', 'Jordan'),
    ('JP', 'Japan'),
    ('KE', 'Kenya'),
    ('KG', 'Kyrgyzstan'),
    ('KH', 'Cambodia'),
    ('KI', 'Kiribati'),
    ('KM', 'Comoros'),
    ('KN', 'Saint Kitts and Nevis'),
    ('KP', 'Korea, Democratic People''s Republic of'),
    ('KR', 'Korea, Republic of'),
    ('KW', 'Kuwait'),
    ('KY', 'Cayman Islands'),
    ('KZ', 'Kazakhstan'),
    ('LA', 'Lao People''s Democratic Republic'),
    ('LB', 'Lebanon'),
    ('LC', 'Saint Lucia'),
    ('LI', 'Liechtenstein'),
    ('LK', 'Sri Lanka'),
    ('LR', 'Liberia'),
    ('LS', 'Lesotho'),
    ('LT', 'Lithuania'),
    ('LU', 'Luxembourg'),
    ('LV', 'Latvia'),
    ('LY', 'Libya'),
    ('MA', 'Morocco'),
    ('MC', 'Monaco'),
    ('MD', 'Moldova, Republic of'),
    ('ME', 'Montenegro'),
    ('MF', 'Saint Martin (French part)'),
    ('MG', 'Madagascar'),
    ('MH', 'Marshall Islands'),
    ('MK', 'North Macedonia'),
    ('ML', 'Mali'),
    ('MM', 'Myanmar'),
    ('MN', 'Mongolia'),
    ('MO', 'Macao'),
    ('MP', 'Northern Mariana Islands'),
    ('MQ', 'Martinique'),
    ('MR', 'Mauritania'),
    ('MS', 'Montserrat'),
    ('MT', 'Malta'),
    ('MU', 'Mauritius'),
    ('MV', 'Maldives'),
    ('MW', 'Malawi'),
    ('MX', 'Mexico'),
    ('MY', 'Malaysia'),
    ('MZ', 'Mozambique'),
    ('NA', 'Namibia'),
    ('NC', 'New Caledonia'),
    ('NE', 'Niger'),
    ('NF', 'Norfolk Island'),
    ('NG', 'Nigeria'),
    ('NI', 'Nicaragua'),
    ('NL', 'Netherlands'),
    ('NO', 'Norway'),
    ('NP', 'Nepal'),
    ('NR', 'Nauru'),
    ('NU', 'Niue'),
    ('NZ', 'New Zealand'),
    ('OM', 'Oman'),
    ('PA', 'Panama'),
    ('PE', 'Peru'),
    ('PF', 'French Polynesia'),
    ('PG', 'Papua New Guinea'),
    ('PH', 'Philippines'),
    ('PK', 'Pakistan'),
    ('PL', 'Poland'),
    ('PM', 'Saint Pierre and Miquelon'),
    ('PN', 'Pitcairn'),
    ('PR', 'Puerto Rico'),
    ('PS', 'Palestine, State of'),
    ('PT', 'Portugal'),
    ('PW', 'Palau'),
    ('PY', 'Paraguay'),
    ('QA', 'Qatar'),
    ('RE', 'Réunion'),
    ('RO', 'Romania'),
    ('RS', 'Serbia'),
    ('RU', 'Russian Federation'),
    ('RW', 'Rwanda'),
    ('SA', 'Saudi Arabia'),
    ('SB', 'Solomon Islands'),
    ('SC', 'Seychelles'),
    ('SD', 'Sudan'),
    ('SE', 'Sweden'),
    ('SG', 'Singapore'),
    ('SH', 'Saint Helena, Ascension and Tristan da Cunha'),
    ('SI', 'Slovenia'),
    ('SJ', 'Svalbard and Jan Mayen'),
    ('SK', 'Slovakia'),
    ('SL', 'Sierra Leone'),
    ('SM', 'San Marino'),
    ('SN', 'Senegal'),
    ('SO', 'Somalia'),
    ('SR', 'Suriname'),
    ('SS', 'South Sudan'),
    ('ST', 'Sao Tome and Principe'),
    ('SV', 'El Salvador'),
    ('SX', 'Sint Maarten (Dutch part)'),
    ('SY', 'Syrian Arab Republic'),
    ('SZ', 'Eswatini'),
    ('TC', 'Turks and Caicos Islands'),
    ('TD', 'Chad'),
    ('TF', 'French Southern Territories'),
    ('TG', 'Togo'),
    ('TH', 'Thailand'),
    ('TJ', 'Tajikistan'),
    ('TK', 'Tokelau'),
    ('TL', 'Timor-Leste'),
    ('TM', 'Turkmenistan'),
    ('TN', 'Tunisia'),
    ('TO', 'Tonga'),
    ('TR', 'Türkiye'),
    ('TT', 'Trinidad and Tobago'),
    ('TV', 'Tuvalu'),
    ('TW', 'Taiwan, Province of China'),
    ('TZ', 'Tanzania, United Republic of'),
    ('UA', 'Ukraine'),
    ('UG', 'Uganda'),
    ('UM', 'United States Minor Outlying Islands'),
    ('US', 'United States'),
    ('UY', 'Uruguay'),
    ('UZ', 'Uzbekistan'),
    ('VA', 'Holy See (Vatican City State)'),
    ('VC', 'Saint Vincent and the Grenadines'),
    ('VE', 'Venezuela, Bolivarian Republic of'),
    ('VG', 'Virgin Islands, British'),
    ('VI', 'Virgin Islands, U.S.'),
    ('VN', 'Viet Nam'),
    ('VU', 'Vanuatu'),
    ('WF', 'Wallis and Futuna'),
    ('WS', 'Samoa'),
    ('YE', 'Yemen'),
    ('YT', 'Mayotte'),
    ('ZA', 'South Africa'),
    ('ZM', 'Zambia'),
    ('ZW', 'Zimbabwe')
ON CONFLICT (code) DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- Couriers: a phone
-- ---------------------------------------------------------------------------------------------

ALTER TABLE orderdb.couriers ADD COLUMN IF NOT EXISTS phone text;

DO $constraints$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c
                    WHERE c.conrelid = 'orderdb.couriers'::regclass
                      AND c.conname = 'couriers_phone_check') THEN
        ALTER TABLE orderdb.couriers
            ADD CONSTRAINT couriers_phone_check CHECK (length(phone) BETWEEN 1 AND 40) NOT VALID;
    END IF;
END;
$constraints$;

COMMENT ON COLUMN orderdb.couriers.phone IS
    'The courier''s phone, normalised (orderdb._normalize_phone); customers see it masked.';

-- ---------------------------------------------------------------------------------------------
-- Customer texts: page wording, and Chinese
-- ---------------------------------------------------------------------------------------------

-- kind 'page': the labels of the tracking page and of `orderdb track` (a tiny table: the CHECK is
-- validated at once)
-- squawk-ignore ban-drop-constraint
ALTER TABLE orderdb.customer_texts DROP CONSTRAINT IF EXISTS customer_texts_kind_check;
ALTER TABLE orderdb.customer_texts
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT customer_texts_kind_check
    CHECK (kind IN ('status', 'exception', 'carrier', 'change', 'page'));

INSERT INTO orderdb.customer_texts (locale, kind, code, text) VALUES
    ('en', 'page', 'order',              'Order'),
    ('en', 'page', 'status',             'Status'),
    ('en', 'page', 'estimated_delivery', 'Estimated delivery'),
    ('en', 'page', 'current_location',   'Current location'),
    ('en', 'page', 'recipient',          'Recipient'),
    ('en', 'page', 'courier',            'Your courier'),
    ('en', 'page', 'phone',              'Phone'),
    ('en', 'page', 'shipments',          'Parcels'),
    ('en', 'page', 'carrier',            'Carrier'),
    ('en', 'page', 'tracking_number',    'Tracking number'),
    ('en', 'page', 'timeline',           'Tracking history'),
    ('en', 'page', 'no_estimate',        'We will show the delivery date once the parcel is on its way'),
    ('en', 'page', 'not_found',          'Order not found'),
    ('en', 'page', 'time_zone',          'Times shown in'),
    ('zh-CN', 'page', 'order',              '订单'),
    ('zh-CN', 'page', 'status',             '状态'),
    ('zh-CN', 'page', 'estimated_delivery', '预计送达'),
    ('zh-CN', 'page', 'current_location',   '当前位置'),
    ('zh-CN', 'page', 'recipient',          '收件人'),
    ('zh-CN', 'page', 'courier',            '配送员'),
    ('zh-CN', 'page', 'phone',              '电话'),
    ('zh-CN', 'page', 'shipments',          '包裹'),
    ('zh-CN', 'page', 'carrier',            '快递公司'),
    ('zh-CN', 'page', 'tracking_number',    '运单号'),
    ('zh-CN', 'page', 'timeline',           '物流详情'),
    ('zh-CN', 'page', 'no_estimate',        '包裹发出后将显示预计送达时间'),
    ('zh-CN', 'page', 'not_found',          '未找到订单'),
    ('zh-CN', 'page', 'time_zone',          '时间显示时区'),
    ('zh-CN', 'status', 'pending',          '已下单'),
    ('zh-CN', 'status', 'confirmed',        '已确认'),
    ('zh-CN', 'status', 'dispatched',       '仓库处理中'),
    ('zh-CN', 'status', 'picked',           '已拣货'),
    ('zh-CN', 'status', 'packed',           '已打包'),
    ('zh-CN', 'status', 'shipped',          '已发货，已交给快递公司'),
    ('zh-CN', 'status', 'delivering',       '运输中'),
    ('zh-CN', 'status', 'delivered',        '已签收'),
    ('zh-CN', 'status', 'completed',        '订单已完成'),
    ('zh-CN', 'status', 'cancelled',        '订单已取消'),
    ('zh-CN', 'status', 'on_hold',          '暂停处理：我们正在核实您的订单'),
    ('zh-CN', 'status', 'delivery_failed',  '派送未成功'),
    ('zh-CN', 'status', 'return_requested', '已申请退货'),
    ('zh-CN', 'status', 'returning',        '退货正在寄回仓库'),
    ('zh-CN', 'status', 'returned',         '仓库已收到退货'),
    ('zh-CN', 'status', '*',                '订单已更新'),
    ('zh-CN', 'exception', 'OUT_OF_STOCK',
        '暂停处理：有商品暂时缺货，到货后我们会尽快为您发货'),
    ('zh-CN', 'exception', 'DAMAGED_GOODS',
        '暂停处理：有商品正在更换，更换后即为您发货'),
    ('zh-CN', 'exception', 'ADDRESS_INCOMPLETE',
        '暂停处理：请补充您的收货地址信息'),
    ('zh-CN', 'exception', 'ADDRESS_INVALID',
        '暂停处理：我们需要核实您的收货地址'),
    ('zh-CN', 'exception', 'PAYMENT_ISSUE',
        '暂停处理：我们正在核实您的付款'),
    ('zh-CN', 'exception', '*',
        '暂停处理：仓库正在核实您的订单'),
    ('zh-CN', 'carrier', 'info_received',        '快递公司已收到包裹信息'),
    ('zh-CN', 'carrier', 'in_transit',           '运输中'),
    ('zh-CN', 'carrier', 'out_for_delivery',     '派送中'),
    ('zh-CN', 'carrier', 'failed_attempt',       '派送未成功'),
    ('zh-CN', 'carrier', 'available_for_pickup', '包裹已到达自提点，请取件'),
    ('zh-CN', 'carrier', 'delivered',            '已签收'),
    ('zh-CN', 'carrier', 'exception',            '快递公司报告延误'),
    ('zh-CN', 'carrier', 'returned_to_sender',   '包裹正在退回寄件人'),
    ('zh-CN', 'carrier', '*',                    '物流更新'),
    ('zh-CN', 'change', 'reallocation',          '订单已转至其他仓库发货')
ON CONFLICT (locale, kind, code) DO NOTHING;
