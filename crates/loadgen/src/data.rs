//! Static tables the synthetic world and traffic are drawn from: countries and
//! their weights, well-known ASNs, CISA sectors, services, IDS rules.
//!
//! Shapes follow public darknet reports (NICTER, GreyNoise-style summaries):
//! China, India and the United States lead origins; telnet (23/TCP) leads ports.

/// Countries with an explicit share of attack traffic, in percent.
pub(crate) const TOP_COUNTRIES: &[(&str, f64)] = &[
    ("CN", 38.0),
    ("IN", 10.0),
    ("US", 8.0),
    ("RU", 3.5),
    ("BR", 3.2),
    ("VN", 2.4),
    ("KR", 2.0),
    ("TW", 1.8),
    ("DE", 1.4),
    ("NL", 1.3),
    ("ID", 1.2),
    ("IR", 1.1),
    ("TH", 1.0),
    ("GB", 0.9),
    ("FR", 0.9),
    ("HK", 0.9),
    ("SG", 0.8),
    ("MX", 0.7),
    ("TR", 0.7),
    ("JP", 0.7),
    ("AR", 0.6),
    ("EG", 0.6),
    ("PK", 0.5),
    ("BD", 0.5),
    ("UA", 0.5),
    ("CO", 0.45),
    ("PH", 0.45),
    ("ZA", 0.4),
    ("IT", 0.4),
    ("CA", 0.4),
];

/// The long tail: they share what the top countries leave, Zipf-like in this order.
pub(crate) const TAIL_COUNTRIES: &[&str] = &[
    "ES", "PL", "RO", "BG", "SE", "CH", "AT", "BE", "CZ", "HU", "GR", "PT", "IE", "DK", "FI", "NO",
    "SK", "SI", "HR", "RS", "BA", "MK", "AL", "ME", "LT", "LV", "EE", "BY", "MD", "GE", "AM", "AZ",
    "KZ", "UZ", "KG", "TJ", "TM", "MN", "NP", "LK", "MM", "KH", "LA", "MY", "BN", "AU", "NZ", "FJ",
    "PG", "CL", "PE", "VE", "EC", "BO", "PY", "UY", "CR", "PA", "GT", "HN", "SV", "NI", "DO", "CU",
    "JM", "TT", "PR", "HT", "BS", "BB", "BZ", "SR", "GY", "NG", "KE", "GH", "ET", "TZ", "UG", "DZ",
    "MA", "TN", "LY", "SD", "SN", "CI", "CM", "AO", "MZ", "ZW", "ZM", "MW", "MG", "BW", "NA", "RW",
    "BJ", "BF", "ML", "NE", "TD", "GA", "CG", "CD", "GN", "SL", "LR", "TG", "GM", "MR", "SO", "DJ",
    "ER", "SS", "CF", "GQ", "CV", "SC", "MU", "KM", "SA", "AE", "IL", "IQ", "SY", "JO", "LB", "KW",
    "QA", "BH", "OM", "YE", "PS", "AF", "CY", "MT", "LU", "IS", "LI", "MC", "AD", "SM", "BT", "MV",
    "TL", "MO", "NC", "PF", "GU", "RE", "GP", "MQ", "BM", "KY", "AW", "CW", "GL", "FO", "GI", "JE",
];

/// Well-known ASNs (number, organisation) that become the largest ASNs of their country.
pub(crate) const KNOWN_ASNS: &[(&str, u32, &str)] = &[
    ("CN", 4134, "CHINANET-BACKBONE"),
    ("CN", 4837, "CHINA169-BACKBONE CHINA UNICOM"),
    ("CN", 9808, "CHINAMOBILE-CN"),
    ("CN", 4812, "CHINANET-SH-AP"),
    ("CN", 45090, "TENCENT-NET-AP"),
    ("CN", 37963, "Hangzhou Alibaba Advertising Co.,Ltd."),
    ("CN", 56046, "CMNET-JIANGSU-AP"),
    ("IN", 9829, "BSNL-NIB"),
    ("IN", 24560, "Bharti Airtel Ltd."),
    ("IN", 55836, "Reliance Jio Infocomm Limited"),
    ("IN", 45609, "Bharti Airtel Ltd. AS for GPRS Service"),
    ("US", 7922, "COMCAST-7922"),
    ("US", 16509, "AMAZON-02"),
    ("US", 14061, "DIGITALOCEAN-ASN"),
    ("US", 15169, "GOOGLE"),
    ("US", 8075, "MICROSOFT-CORP-MSN-AS-BLOCK"),
    ("US", 701, "UUNET"),
    ("US", 7018, "ATT-INTERNET4"),
    ("US", 20473, "AS-CHOOPA"),
    ("RU", 12389, "Rostelecom"),
    ("RU", 8359, "MTS PJSC"),
    ("RU", 49505, "Selectel"),
    ("BR", 28573, "Claro NXT Telecomunicacoes Ltda"),
    ("BR", 18881, "TELEFONICA BRASIL S.A"),
    ("VN", 7552, "Viettel Group"),
    ("VN", 45899, "VNPT Corp"),
    ("KR", 4766, "Korea Telecom"),
    ("KR", 9318, "SK Broadband Co Ltd"),
    ("TW", 3462, "Data Communication Business Group"),
    ("DE", 3320, "Deutsche Telekom AG"),
    ("DE", 24940, "Hetzner Online GmbH"),
    ("DE", 51167, "Contabo GmbH"),
    ("NL", 1136, "KPN B.V."),
    ("NL", 60781, "LeaseWeb Netherlands B.V."),
    ("GB", 2856, "British Telecommunications PLC"),
    ("FR", 3215, "Orange S.A."),
    ("FR", 16276, "OVH SAS"),
    ("HK", 4760, "HKT Limited"),
    ("SG", 7473, "Singapore Telecommunications Ltd"),
    ("JP", 4713, "NTT Communications Corporation"),
    ("JP", 2516, "KDDI CORPORATION"),
];

/// CISA's 16 critical infrastructure sectors (slug, share of targeted traffic in
/// percent). The remaining [`UNKNOWN_SECTOR_WEIGHT`] percent hits unmatched space.
pub const SECTORS: [(&str, f64); 16] = [
    ("information-technology", 16.0),
    ("communications", 13.0),
    ("financial-services", 11.0),
    ("government-facilities", 10.0),
    ("healthcare-public-health", 8.0),
    ("energy", 7.0),
    ("commercial-facilities", 6.0),
    ("critical-manufacturing", 5.0),
    ("transportation-systems", 4.0),
    ("water-wastewater", 3.0),
    ("chemical", 2.5),
    ("food-agriculture", 2.0),
    ("defense-industrial-base", 2.0),
    ("emergency-services", 1.5),
    ("nuclear", 0.5),
    ("dams", 0.5),
];

/// Share (percent) of traffic aimed at target space no sector claims.
pub const UNKNOWN_SECTOR_WEIGHT: f64 = 8.0;

pub(crate) const TCP: u8 = 6;
pub(crate) const UDP: u8 = 17;
pub(crate) const ICMP: u8 = 1;

/// Services probed by scans: (port, protocol, weight). Port 0 with ICMP is an
/// echo-request sweep. Plus a long tail of random ports (see `SCAN_TAIL_WEIGHT`).
pub(crate) const SCAN_SERVICES: &[(u16, u8, f64)] = &[
    (23, TCP, 27.0),
    (445, TCP, 12.0),
    (22, TCP, 4.5),
    (80, TCP, 6.0),
    (8080, TCP, 4.0),
    (3389, TCP, 3.5),
    (1433, TCP, 2.5),
    (5060, UDP, 2.2),
    (443, TCP, 2.0),
    (2323, TCP, 1.5),
    (81, TCP, 1.2),
    (8443, TCP, 1.0),
    (5555, TCP, 1.0),
    (37215, TCP, 0.8),
    (52869, TCP, 0.7),
    (6379, TCP, 0.7),
    (3306, TCP, 0.7),
    (5900, TCP, 0.7),
    (21, TCP, 0.6),
    (25, TCP, 0.5),
    (123, UDP, 0.6),
    (53, UDP, 0.6),
    (1900, UDP, 0.5),
    (161, UDP, 0.5),
    (11211, UDP, 0.3),
    (9200, TCP, 0.4),
    (7547, TCP, 0.5),
    (8888, TCP, 0.4),
    (5432, TCP, 0.4),
    (139, TCP, 0.5),
    (135, TCP, 0.5),
    (8000, TCP, 0.5),
    (8081, TCP, 0.4),
    (2222, TCP, 0.4),
    (9000, TCP, 0.3),
    (6000, TCP, 0.2),
    (60001, TCP, 0.2),
    (554, TCP, 0.3),
    (111, UDP, 0.2),
    (137, UDP, 0.3),
    (389, UDP, 0.2),
    (1723, TCP, 0.2),
    (3128, TCP, 0.2),
    (5000, TCP, 0.3),
    (10000, TCP, 0.2),
    (27017, TCP, 0.2),
    (502, TCP, 0.2),
    (102, TCP, 0.1),
    (47808, UDP, 0.1),
    (44818, TCP, 0.1),
    (0, ICMP, 5.0),
];

/// Weight of scans at a uniformly random port (1..=65535), 85 % TCP, 15 % UDP.
pub(crate) const SCAN_TAIL_WEIGHT: f64 = 9.0;

/// Services attacked by brute force: (port, protocol, weight).
pub(crate) const BRUTE_FORCE_SERVICES: &[(u16, u8, f64)] = &[
    (22, TCP, 30.0),
    (23, TCP, 35.0),
    (3389, TCP, 12.0),
    (1433, TCP, 5.0),
    (21, TCP, 4.0),
    (3306, TCP, 3.0),
    (5900, TCP, 3.0),
    (445, TCP, 3.0),
    (110, TCP, 1.0),
    (5432, TCP, 1.0),
];

/// Backscatter: the victim's service port (the packet's source port), weight.
/// Port 0 with ICMP stands for ICMP replies.
pub(crate) const BACKSCATTER_SERVICES: &[(u16, u8, f64)] = &[
    (80, TCP, 35.0),
    (443, TCP, 33.0),
    (53, UDP, 10.0),
    (22, TCP, 4.0),
    (25, TCP, 3.0),
    (27015, UDP, 3.0),
    (0, ICMP, 12.0),
];

/// IDS rule catalogue: (rule id, port, protocol, weight). Ids are shaped like
/// Suricata/ET signature ids.
pub(crate) const IDS_RULES: &[(u32, u16, u8, f64)] = &[
    (2_024_792, 23, TCP, 20.0),   // telnet Mirai-style login
    (2_024_218, 445, TCP, 14.0),  // SMB EternalBlue-style probe
    (2_001_219, 22, TCP, 12.0),   // SSH scan
    (2_010_935, 3389, TCP, 9.0),  // RDP traffic on standard port
    (2_010_937, 3306, TCP, 4.0),  // MySQL probe
    (2_023_452, 1433, TCP, 6.0),  // MSSQL probe
    (2_008_578, 5060, UDP, 6.0),  // SIPVicious
    (2_027_973, 52869, TCP, 5.0), // Realtek SDK RCE
    (2_025_883, 37215, TCP, 5.0), // Huawei HG532 RCE
    (2_013_028, 80, TCP, 8.0),    // suspicious HTTP client
    (2_019_401, 8080, TCP, 6.0),  // HTTP proxy probe
    (2_030_092, 7547, TCP, 5.0),  // TR-069 exploit attempt
];

/// Attack kind weights in percent: scan, backscatter, brute force, IDS alert.
pub(crate) const KIND_WEIGHTS: [f64; 4] = [70.0, 12.0, 10.0, 8.0];

/// First 16 bits of the IPv6 /32s source /48s are drawn from (all global unicast,
/// none of 2001:db8::/32, 2002::/16 or the target block).
pub(crate) const V6_SOURCE_HEXTETS: &[u16] = &[
    0x2400, 0x2401, 0x2402, 0x2403, 0x2404, 0x2405, 0x2406, 0x2407, 0x2408, 0x2409, 0x240e, 0x2600,
    0x2601, 0x2602, 0x2603, 0x2604, 0x2605, 0x2606, 0x2607, 0x2800, 0x2801, 0x2803, 0x2a00, 0x2a01,
    0x2a02, 0x2a03, 0x2a04, 0x2a05, 0x2c0f,
];

/// The IPv6 /32 the sensors' IPv6 target ranges live in (first 32 bits).
pub(crate) const V6_TARGET_32: [u8; 4] = [0x2a, 0x0d, 0x8a, 0x00];
