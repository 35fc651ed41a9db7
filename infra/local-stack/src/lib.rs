//! The product on one machine: moto for AWS, the Salesforce emulator, and the
//! five function binaries behind a local Lambda Runtime API.
//!
//! The pieces are also what the end-to-end tests use to stand up AWS on moto.

pub mod demo;
pub mod functions;
pub mod gateway;
pub mod jwt;
pub mod latency;
pub mod moto;
pub mod pollers;
pub mod provision;
pub mod runtime_api;
pub mod stack;

use std::path::PathBuf;

/// The repository root (this crate lives in `<root>/infra/local-stack`).
pub fn repo_root() -> PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| here.to_path_buf())
}
