//! Errors at the crate boundary.

/// Everything loadgen can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// A setting is out of its documented range (not retryable: fix the config).
    #[error("invalid loadgen config: {0}")]
    Config(String),
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A record file is not in the expected format.
    #[error("bad record file: {0}")]
    BadFile(String),
    /// Writing an MMDB file failed.
    #[error("mmdb writer: {0}")]
    Mmdb(String),
}
