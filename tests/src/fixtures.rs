//! Recorded Salesforce bodies, read where they are: `<repo>/../shared/salesforce-fixtures`
//! (`SOURCES.md` there says where each came from), or the directory named by
//! `SALESFORCE_FIXTURES_DIR`. Never copied into the repository.

use std::path::PathBuf;

use serde_json::Value;

/// The fixtures directory; panics with what to do when it is absent.
pub fn dir() -> PathBuf {
    let dir = match std::env::var_os("SALESFORCE_FIXTURES_DIR") {
        Some(d) => PathBuf::from(d),
        None => crate::repo_root().join("../shared/salesforce-fixtures"),
    };
    assert!(
        dir.join("SOURCES.md").is_file(),
        "the recorded Salesforce bodies are not at {}: they live beside the repository \
         (../shared/salesforce-fixtures), or set SALESFORCE_FIXTURES_DIR",
        dir.display()
    );
    dir
}

/// The bytes of `relative` (e.g. `restforce/query_success_response.json`).
pub fn bytes(relative: &str) -> Vec<u8> {
    let path = dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// `relative` parsed as JSON.
pub fn json(relative: &str) -> Value {
    serde_json::from_slice(&bytes(relative))
        .unwrap_or_else(|e| panic!("fixture {relative} is not JSON: {e}"))
}

/// The non-empty lines of a text fixture.
pub fn lines(relative: &str) -> Vec<String> {
    String::from_utf8_lossy(&bytes(relative))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}
