//! `template.yaml` passes cfn-lint, the offline SAM transform and the project's
//! invariants (infra/scripts/check_template.py), the checker is shown to reject
//! templates that break them, and the deploy paths of `samconfig.toml`
//! (infra/scripts/deploy.py) build and deploy the same thing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e::{repo_root, unique};
use serde_json::Value;

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

fn check_with(template: Option<&Path>, samconfig: Option<&Path>) -> Output {
    let root = repo_root();
    let mut cmd = Command::new(venv_python());
    cmd.arg(root.join("infra/scripts/check_template.py"))
        .current_dir(&root);
    if let Some(path) = template {
        cmd.arg(path);
    }
    if let Some(path) = samconfig {
        cmd.arg("--samconfig").arg(path);
    }
    cmd.output().expect("running check_template.py")
}

fn check(template: Option<&Path>) -> Output {
    check_with(template, None)
}

fn report(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The repository's `file` with `from` replaced by `to` (which must occur), in a
/// temporary file that is removed when the guard drops.
struct Broken(PathBuf);

impl Broken {
    fn new(file: &str, what: &str, from: &str, to: &str) -> Self {
        let original = std::fs::read_to_string(repo_root().join(file)).expect("read the file");
        assert!(
            original.contains(from),
            "{what}: the text to break is no longer in {file}; update this test:\n{from}"
        );
        let extension = Path::new(file)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("txt");
        let path = std::env::temp_dir().join(format!("{}.{extension}", unique(what)));
        std::fs::write(&path, original.replacen(from, to, 1)).expect("write the broken copy");
        Self(path)
    }
}

impl Drop for Broken {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the checker on the real template with `from` replaced by `to`.
fn check_broken(what: &str, from: &str, to: &str) -> Output {
    let broken = Broken::new("template.yaml", what, from, to);
    check(Some(&broken.0))
}

fn assert_rejected(out: &Output, what: &str, message: &str) {
    let text = report(out);
    assert!(!out.status.success(), "{what} passed\n{text}");
    assert!(
        text.contains(message),
        "the failure does not say {message:?}\n{text}"
    );
}

#[test]
fn template_passes_cfn_lint_sam_transform_invariants_and_deploy_paths() {
    let out = check(None);
    let text = report(&out);
    assert!(out.status.success(), "template.yaml check failed\n{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for stage in [
        "ok   cfn-lint",
        "ok   SAM transform",
        "ok   invariants",
        "ok   deploy paths: default/arm64, default/x86_64, prod/arm64, prod/x86_64",
    ] {
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
    assert_rejected(
        &out,
        "a queue without DLQ",
        "CallEventsQueue: work queue without RedrivePolicy/DLQ",
    );
}

#[test]
fn checker_rejects_an_iam_wildcard_resource() {
    let out = check_broken(
        "iam-star",
        "                Action: sqs:SendMessage\n                Resource: !GetAtt CallEventsQueue.Arn\n",
        "                Action: sqs:SendMessage\n                Resource: \"*\"\n",
    );
    assert_rejected(
        &out,
        "an IAM Resource \"*\"",
        "Resource \"*\" for ['sqs:SendMessage']",
    );
}

#[test]
fn checker_rejects_a_public_admin_route() {
    let out = check_broken(
        "public-admin",
        "            Path: /integrations/salesforce/{proxy+}\n            Method: GET\n",
        "            Path: /integrations/salesforce/{proxy+}\n            Method: GET\n            Auth:\n              Authorizer: NONE\n",
    );
    assert_rejected(
        &out,
        "a public admin route",
        "GET /integrations/salesforce/{proxy+}: must require the ModjoJwt authorizer",
    );
}

#[test]
fn checker_rejects_a_short_visibility_timeout() {
    let out = check_broken(
        "short-visibility",
        "VisibilityTimeout: 900\n",
        "VisibilityTimeout: 300\n",
    );
    assert_rejected(
        &out,
        "a short visibility timeout",
        "CallEventsQueue: VisibilityTimeout 300s < 6 x",
    );
}

/// An ANY route also matches the browser's preflight OPTIONS request, which
/// carries no JWT: the authorizer answers 401 and the browser gives up.
#[test]
fn checker_rejects_an_any_route_behind_the_authorizer() {
    let out = check_broken(
        "any-route",
        "            Path: /integrations/salesforce/{proxy+}\n            Method: DELETE\n",
        "            Path: /integrations/salesforce/{proxy+}\n            Method: ANY\n",
    );
    assert_rejected(
        &out,
        "an ANY route",
        "a route for ANY or OPTIONS catches CORS preflights",
    );
}

#[test]
fn checker_rejects_a_queue_whose_stall_nobody_would_see() {
    let out = check_broken(
        "no-age-alarm",
        "      MetricName: ApproximateAgeOfOldestMessage\n      Dimensions:\n        - Name: QueueName\n          Value: !GetAtt SyncJobsQueue.QueueName\n",
        "      MetricName: ApproximateAgeOfOldestMessage\n      Dimensions:\n        - Name: QueueName\n          Value: !GetAtt SyncJobsDlq.QueueName\n",
    );
    assert_rejected(
        &out,
        "a work queue without an age alarm",
        "SyncJobsQueue: work queue without an alarm on ApproximateAgeOfOldestMessage",
    );
}

#[test]
fn checker_rejects_a_function_without_an_errors_alarm() {
    let out = check_broken(
        "no-errors-alarm",
        "      MetricName: Errors\n      Dimensions:\n        - Name: FunctionName\n          Value: !Ref CallLoggerFunction\n",
        "      MetricName: Errors\n      Dimensions:\n        - Name: FunctionName\n          Value: !Ref CommentSyncFunction\n",
    );
    assert_rejected(
        &out,
        "a function without an Errors alarm",
        "CallLoggerFunction: no alarm on AWS/Lambda Errors",
    );
}

/// A graph of a metric the code does not emit shows nothing, forever.
#[test]
fn checker_rejects_a_dashboard_metric_the_code_does_not_emit() {
    let out = check_broken(
        "unknown-metric",
        "\"CallsCreated\", \"Function\", \"call-logger\"",
        "\"CallsLogged\", \"Function\", \"call-logger\"",
    );
    assert_rejected(
        &out,
        "an unknown metric",
        "CallsLogged is not a metric shared/src emits",
    );
}

/// EMF metrics exist only with the exact dimension set the code emits.
#[test]
fn checker_rejects_a_dashboard_metric_without_the_stage_dimension() {
    let out = check_broken(
        "missing-dimension",
        "[\"Modjo/Salesforce\", \"SyncJobDuration\", \"Function\", \"scheduled-sync\", \"Stage\", \"${Stage}\", {\"stat\": \"p50\", \"label\": \"p50\"}]",
        "[\"Modjo/Salesforce\", \"SyncJobDuration\", \"Function\", \"scheduled-sync\", {\"stat\": \"p50\", \"label\": \"p50\"}]",
    );
    assert_rejected(
        &out,
        "a metric without its Stage dimension",
        "SyncJobDuration must name exactly the dimensions the code emits",
    );
}

#[test]
fn checker_rejects_a_name_two_stacks_would_share() {
    let out = check_broken(
        "stage-only-name",
        "LogGroupName: !Sub /modjo/${AWS::StackName}/call-logger",
        "LogGroupName: !Sub /modjo/${Stage}/call-logger",
    );
    assert_rejected(
        &out,
        "a log group named after the stage only",
        "CallLoggerLogGroup: LogGroupName must contain the stack name",
    );
}

#[test]
fn checker_rejects_a_callback_output_the_functions_do_not_use() {
    let out = check_broken(
        "callback-output",
        "  CallbackUrl:\n    Description: >-\n      The callback URL to paste into the connected app (OAuth redirect_uri),\n      exactly: the functions send this one to Salesforce.\n    Value: !If\n      - HasCallbackUrl\n      - !Ref ModjoCallbackUrl\n      - !Sub https://${DomainName}/integrations/salesforce/callback\n",
        "  CallbackUrl:\n    Description: The callback\n    Value: !Sub https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/integrations/salesforce/callback\n",
    );
    assert_rejected(
        &out,
        "a callback output other than the functions' redirect_uri",
        "OAUTH_CALLBACK_URL must be exactly the CallbackUrl output",
    );
}

#[test]
fn checker_rejects_the_oauth_callback_deleting_secrets() {
    // Only oauth-callback's tenant-secrets policy ends with the tag condition.
    let out = check_broken(
        "callback-delete",
        "                    aws:TagKeys: [modjo:tenant]\n        - PolicyName: tenant-secrets-write-tokens\n",
        "                    aws:TagKeys: [modjo:tenant]\n              - Effect: Allow\n                Action: secretsmanager:DeleteSecret\n                Resource: !Sub arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:modjo/${AWS::StackName}/tenants/*\n        - PolicyName: tenant-secrets-write-tokens\n",
    );
    assert_rejected(
        &out,
        "a DeleteSecret grant",
        "secretsmanager:DeleteSecret granted",
    );
}

/// A value in samconfig.toml for a parameter only the deployer knows deploys
/// as if it were real: every request 401 with a placeholder issuer.
#[test]
fn checker_rejects_a_placeholder_in_samconfig() {
    let broken = Broken::new(
        "samconfig.toml",
        "placeholder-issuer",
        "parameter_overrides = \"Stage=prod ",
        "parameter_overrides = \"Stage=prod JwtIssuer=https://idp.example.com/modjo ",
    );
    let out = check_with(None, Some(&broken.0));
    assert_rejected(
        &out,
        "a placeholder JwtIssuer",
        "samconfig.toml [prod]: JwtIssuer has a value in the file",
    );
}

// ------------------------------------------------------------------ deploy.py

/// `infra/scripts/deploy.py --plan …`: the commands it would run, as JSON.
fn plan(args: &[&str]) -> (bool, Value) {
    let root = repo_root();
    let out = Command::new(venv_python())
        .arg(root.join("infra/scripts/deploy.py"))
        .arg("--plan")
        .args(args)
        .current_dir(&root)
        .output()
        .expect("running deploy.py");
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("deploy.py --plan printed no JSON ({e})\n{}", report(&out)));
    (out.status.success(), json)
}

/// The parameters one rendered SAM command passes (after --parameter-overrides).
fn overrides(command: &Value) -> Vec<String> {
    let argv: Vec<&str> = command
        .as_array()
        .expect("argv")
        .iter()
        .map(|a| a.as_str().expect("string"))
        .collect();
    let at = argv
        .iter()
        .position(|a| *a == "--parameter-overrides")
        .expect("--parameter-overrides");
    argv[at + 1..]
        .iter()
        .take_while(|a| !a.starts_with("--"))
        .map(|a| a.to_string())
        .collect()
}

/// Issue 18, item 1: the switch to x86_64 reaches `sam build` and `sam deploy`
/// alike, and no parameter of samconfig.toml or of the command line is lost.
#[test]
fn the_architecture_switch_builds_and_deploys_the_same_parameters() {
    let (ok, plan) = plan(&[
        "--config-env",
        "prod",
        "--architecture",
        "x86_64",
        "JwtIssuer=https://idp.example.com/modjo",
        "JwtAudience=modjo-salesforce-api",
        "AlarmEmail=oncall@example.com",
    ]);
    assert!(ok, "{plan:#}");
    let (build, deploy) = (overrides(&plan["build"]), overrides(&plan["deploy"]));
    let expected = [
        "Stage=prod",
        "Architecture=x86_64",
        "JwtIssuer=https://idp.example.com/modjo",
        "JwtAudience=modjo-salesforce-api",
        "ModjoCallbackUrl=https://app.modjo.ai/integrations/salesforce/callback",
        "ModjoReturnUrl=https://app.modjo.ai/settings/integrations/salesforce",
        "ModjoWebOrigin=https://app.modjo.ai",
        "LogLevel=info",
        "LogRetentionDays=90",
        "AlarmEmail=oncall@example.com",
    ];
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!((sorted(&build), sorted(&deploy)), (want.clone(), want));
}

/// Issue 18, item 2: production without the identity provider or anyone to
/// alarm is refused before anything is built.
#[test]
fn a_plain_production_deploy_is_refused_naming_what_it_needs() {
    let (ok, plan) = plan(&["--config-env", "prod"]);
    assert!(!ok, "{plan:#}");
    let problems: Vec<&str> = plan["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().split(':').next().unwrap())
        .collect();
    assert_eq!(
        problems,
        [
            "JwtIssuer",
            "JwtAudience",
            "rule ProductionAlarmsReachSomeone"
        ]
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
