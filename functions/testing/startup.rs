//! The check every function's `tests/startup.rs` runs (included with `#[path]`,
//! so no crate depends on another for it): the binary wires its configuration
//! before anything else, so started without it (as a misconfigured Lambda would
//! be) it stops at init and names what is missing.

use std::process::Command;

/// Starts `binary` with only `env`; whether it succeeded, and what it printed.
fn start(binary: &str, env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(binary)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `binary` refuses to start without the table, with an invalid secret prefix,
/// and without `own_variable`, the setting only some functions need.
pub fn refuses_to_start_without_its_configuration(binary: &str, own_variable: &str) {
    let (ok, text) = start(binary, &[]);
    assert!(!ok);
    assert!(
        text.contains("missing required environment variable TABLE_NAME"),
        "{text}"
    );

    let (ok, text) = start(
        binary,
        &[
            ("TABLE_NAME", "modjo-sf"),
            ("SECRET_PREFIX", "modjo/test/salesforce/tenants/"),
        ],
    );
    assert!(!ok);
    assert!(text.contains(own_variable), "{text}");

    let (ok, text) = start(
        binary,
        &[("TABLE_NAME", "modjo-sf"), ("SECRET_PREFIX", "bad prefix!")],
    );
    assert!(!ok);
    assert!(text.contains("SECRET_PREFIX is invalid"), "{text}");
}
