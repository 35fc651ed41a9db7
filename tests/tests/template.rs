//! `template.yaml` passes cfn-lint, the offline SAM transform and the project's
//! invariants (infra/scripts/check_template.py), and the checker is shown to
//! reject templates that break them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e::{repo_root, unique};

/// The project venv's python, created by infra/scripts/bootstrap.sh (a no-op
/// when the venv already matches infra/requirements.txt).
fn venv_python() -> PathBuf {
    let root = repo_root();
    let status = Command::new(root.join("infra/scripts/bootstrap.sh"))
        .status()
        .expect("running infra/scripts/bootstrap.sh");
    assert!(status.success(), "infra/scripts/bootstrap.sh failed");
    root.join(".venv/bin/python")
}

fn check(template: Option<&Path>) -> Output {
    let root = repo_root();
    let mut cmd = Command::new(venv_python());
    cmd.arg(root.join("infra/scripts/check_template.py"))
        .current_dir(&root);
    if let Some(path) = template {
        cmd.arg(path);
    }
    cmd.output().expect("running check_template.py")
}

fn report(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes the real template with `from` replaced by `to` (which must occur) to a
/// temporary file, runs the checker on it and returns its output.
fn check_broken(what: &str, from: &str, to: &str) -> Output {
    let original =
        std::fs::read_to_string(repo_root().join("template.yaml")).expect("read template.yaml");
    assert!(
        original.contains(from),
        "{what}: the text to break is no longer in template.yaml; update this test:\n{from}"
    );
    let broken = original.replacen(from, to, 1);
    let path = std::env::temp_dir().join(format!("{}.yaml", unique(what)));
    std::fs::write(&path, broken).expect("write broken template");
    let out = check(Some(&path));
    let _ = std::fs::remove_file(&path);
    out
}

#[test]
fn template_passes_cfn_lint_sam_transform_and_invariants() {
    let out = check(None);
    let text = report(&out);
    assert!(out.status.success(), "template.yaml check failed\n{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for stage in ["ok   cfn-lint", "ok   SAM transform", "ok   invariants"] {
        assert!(stdout.contains(stage), "missing {stage:?} in\n{text}");
    }
}

#[test]
fn checker_rejects_a_queue_without_dlq() {
    let out = check_broken(
        "no-dlq",
        "      RedrivePolicy:\n        deadLetterTargetArn: !GetAtt CallEventsDlq.Arn\n        maxReceiveCount: 5\n",
        "",
    );
    let text = report(&out);
    assert!(!out.status.success(), "a queue without DLQ passed\n{text}");
    assert!(
        text.contains("CallEventsQueue: work queue without RedrivePolicy/DLQ"),
        "the failure does not name the queue\n{text}"
    );
}

#[test]
fn checker_rejects_an_iam_wildcard_resource() {
    let out = check_broken(
        "iam-star",
        "                Action: sqs:SendMessage\n                Resource: !GetAtt CallEventsQueue.Arn\n",
        "                Action: sqs:SendMessage\n                Resource: \"*\"\n",
    );
    let text = report(&out);
    assert!(
        !out.status.success(),
        "an IAM Resource \"*\" passed\n{text}"
    );
    assert!(
        text.contains("Resource \"*\" for ['sqs:SendMessage']"),
        "the failure does not name the wildcard\n{text}"
    );
}

#[test]
fn checker_rejects_a_public_admin_route_and_a_short_visibility_timeout() {
    // The admin routes lose the JWT authorizer; the call queue's visibility
    // drops below 6 x call-logger's timeout.
    let out = check_broken(
        "public-admin",
        "            Path: /integrations/salesforce/{proxy+}\n            Method: ANY\n",
        "            Path: /integrations/salesforce/{proxy+}\n            Method: ANY\n            Auth:\n              Authorizer: NONE\n",
    );
    let text = report(&out);
    assert!(!out.status.success(), "a public admin route passed\n{text}");
    assert!(
        text.contains("must require the ModjoJwt authorizer"),
        "{text}"
    );

    let out = check_broken(
        "short-visibility",
        "VisibilityTimeout: 900\n",
        "VisibilityTimeout: 300\n",
    );
    let text = report(&out);
    assert!(
        !out.status.success(),
        "a short visibility timeout passed\n{text}"
    );
    assert!(
        text.contains("CallEventsQueue: VisibilityTimeout 300s < 6 x"),
        "{text}"
    );
}

#[test]
fn checker_allows_only_the_settings_page_without_the_authorizer() {
    // The page's route left to the JWT authorizer: a browser could not load it.
    let out = check_broken(
        "console-behind-jwt",
        "            Path: /integrations/salesforce/console\n            Method: GET\n            Auth:\n              Authorizer: NONE\n",
        "            Path: /integrations/salesforce/console\n            Method: GET\n",
    );
    let text = report(&out);
    assert!(
        !out.status.success(),
        "a console route behind the JWT passed\n{text}"
    );
    assert!(
        text.contains("the settings page must load without a JWT"),
        "{text}"
    );

    // Any other public route is refused.
    let out = check_broken(
        "public-extra",
        "            Path: /integrations/salesforce/console/{asset}\n",
        "            Path: /integrations/salesforce/console-data/{asset}\n",
    );
    let text = report(&out);
    assert!(!out.status.success(), "another public route passed\n{text}");
    assert!(
        text.contains("GET /integrations/salesforce/console-data/{asset}: must require the ModjoJwt authorizer"),
        "{text}"
    );
}
