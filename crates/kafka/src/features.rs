//! What the linked librdkafka was built with.
//!
//! rampart links librdkafka statically (rdkafka-sys builds it from source); which protocols and
//! codecs it supports depends on the cargo features and system libraries at build time. A build
//! without OpenSSL or zstd still compiles and only fails when a secured broker or a zstd batch
//! shows up, so [`missing_features`] lets tests and `check-config` catch it early.

use crate::Error;

/// `builtin.features` rampart needs: TLS, SASL (PLAIN, SCRAM, OAUTHBEARER) and every codec
/// Kafka producers may use (`gzip`, `snappy`, `lz4`, `zstd`).
pub const REQUIRED_FEATURES: &[&str] = &[
    "ssl",
    "sasl_plain",
    "sasl_scram",
    "sasl_oauthbearer",
    "gzip",
    "snappy",
    "lz4",
    "zstd",
];

/// librdkafka's version string, e.g. `2.12.1`.
pub fn librdkafka_version() -> String {
    rdkafka::util::get_rdkafka_version().1
}

/// librdkafka's `builtin.features`, e.g. `["gzip", "snappy", "ssl", ...]`.
pub fn builtin_features() -> Result<Vec<String>, Error> {
    let native = rdkafka::ClientConfig::new()
        .create_native_config()
        .map_err(|e| Error::client("read builtin.features", e))?;
    let features = native
        .get("builtin.features")
        .map_err(|e| Error::client("read builtin.features", e))?;
    Ok(features
        .split(',')
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .collect())
}

/// The [`REQUIRED_FEATURES`] this build of librdkafka lacks (empty when all are there).
pub fn missing_features() -> Result<Vec<&'static str>, Error> {
    let have = builtin_features()?;
    Ok(REQUIRED_FEATURES
        .iter()
        .copied()
        .filter(|f| !have.iter().any(|h| h == f))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A build regression (a dropped cargo feature, a missing -dev package that made
    /// librdkafka's configure skip OpenSSL or zstd) fails here.
    #[test]
    fn librdkafka_has_tls_sasl_and_every_codec() {
        let have = builtin_features().unwrap();
        for f in ["ssl", "sasl_scram", "sasl_plain", "sasl_oauthbearer"] {
            assert!(have.iter().any(|h| h == f), "no {f} in {have:?}");
        }
        for f in ["gzip", "snappy", "lz4", "zstd"] {
            assert!(have.iter().any(|h| h == f), "no {f} in {have:?}");
        }
        assert_eq!(missing_features().unwrap(), Vec::<&str>::new());
        // The version rdkafka-sys 4.10 bundles.
        assert!(
            librdkafka_version().starts_with("2."),
            "{}",
            librdkafka_version()
        );
    }

    #[test]
    fn gssapi_is_present_exactly_when_its_feature_is_on() {
        let have = builtin_features().unwrap();
        assert_eq!(
            have.iter().any(|h| h == "sasl_gssapi"),
            cfg!(feature = "gssapi"),
            "{have:?}"
        );
    }
}
