//! rampart-enrich: Origin (country, ASN) from MaxMind-format MMDB files and target sector from a CIDR asset table
