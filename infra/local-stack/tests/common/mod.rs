//! What the local stack's tests share.

use std::path::PathBuf;
use std::process::Command;

/// The function binaries: `cargo test --workspace` builds them next to this test
/// (each function crate has an integration test of its own binary); built here
/// when this test runs alone.
pub fn function_binaries() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>")
        .to_path_buf();
    let missing = local_stack::functions::FUNCTIONS
        .iter()
        .any(|f| !profile_dir.join(f).exists());
    if missing {
        let target_dir = profile_dir.parent().expect("target").to_path_buf();
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--quiet", "--target-dir"])
            .arg(&target_dir);
        for name in local_stack::functions::FUNCTIONS {
            build.args(["-p", name]);
        }
        let status = build
            .current_dir(local_stack::repo_root())
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the functions failed");
    }
    profile_dir
}
