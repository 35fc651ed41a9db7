//! The binary wires its configuration before anything else: started without it
//! (as a misconfigured Lambda would be), it stops at init and names what is missing.

use std::process::Command;

fn start(env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_comment-sync"))
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

#[test]
fn refuses_to_start_without_its_configuration() {
    let (ok, text) = start(&[]);
    assert!(!ok);
    assert!(
        text.contains("missing required environment variable TABLE_NAME"),
        "{text}"
    );

    let (ok, text) = start(&[
        ("TABLE_NAME", "modjo-sf"),
        ("SECRET_PREFIX", "modjo/test/salesforce/tenants/"),
    ]);
    assert!(!ok);
    assert!(text.contains("COMMENT_EVENTS_QUEUE_URL"), "{text}");

    let (ok, text) = start(&[("TABLE_NAME", "modjo-sf"), ("SECRET_PREFIX", "bad prefix!")]);
    assert!(!ok);
    assert!(text.contains("SECRET_PREFIX is invalid"), "{text}");
}
