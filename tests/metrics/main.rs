//! Metrics and operator tooling: a real Prometheus scraping a running
//! `rampart run` (`prometheus`), and `deploy/` checked with promtool, YAML
//! parsers and `rampart check-config`, plus the endpoints without a broker
//! (`tooling`). promtool and prometheus come from Debian's `prometheus`
//! package (`scripts/setup` installs it); these tests fail, not skip, when it
//! is missing.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod deploy_secured;
mod prometheus;
mod tooling;

use std::path::{Path, PathBuf};

/// The repository's `deploy/` directory.
pub fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}
