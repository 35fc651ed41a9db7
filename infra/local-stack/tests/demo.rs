//! README command 1, as a test: the whole stack (moto, the emulator with the demo
//! org, the five function binaries behind the local Runtime API, the HTTP API
//! with its JWT check, the schedule and the queue pollers) plays the seed's story.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use local_stack::stack::{AwsTarget, LocalStack, Options, SalesforceTarget};

/// The function binaries: `cargo test --workspace` builds them next to this test
/// (each function crate has an integration test of its own binary); built here
/// when this test runs alone.
fn function_binaries() -> PathBuf {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_plays_the_whole_story() {
    let root = local_stack::repo_root();
    let log_dir = std::env::temp_dir().join(format!("modjo-demo-logs-{}", std::process::id()));
    let stack = LocalStack::start(Options {
        port: 0,
        schedule_every: Duration::from_secs(3600),
        bin_dir: function_binaries(),
        log_dir,
        salesforce: SalesforceTarget::Emulator {
            seed: root.join("infra/sf-emulator/demo-org.json"),
        },
        aws: AwsTarget::Moto,
    })
    .await
    .expect("stack starts");

    // An admin route is never open, not even locally.
    let http = reqwest::Client::new();
    let status_url = format!("{}/integrations/salesforce/status", stack.api_url());
    assert_eq!(http.get(&status_url).send().await.unwrap().status(), 401);
    let forged = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    assert_eq!(
        http.get(&status_url)
            .bearer_auth(forged)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let report = local_stack::demo::run(&stack, &root).await;
    stack.shutdown().await;
    let report = report.expect("the demo completes");

    assert!(report.connected);
    assert_eq!(report.synced.get("Contact"), Some(&121));
    assert_eq!(report.synced.len(), 9);
    let state = |id: &str| report.calls.get(id).map(String::as_str);
    for enriched in ["demo_call_01", "demo_call_02"] {
        assert_eq!(
            state(enriched),
            Some("enriched"),
            "{enriched}: the dialer's Task"
        );
    }
    for created in [
        "demo_call_03",
        "demo_call_04",
        "demo_call_05",
        "demo_call_06",
        "demo_call_08",
        "demo_call_09",
        "demo_call_10",
        "demo_call_12",
    ] {
        assert_eq!(state(created), Some("created"), "{created}");
    }
    for unmatched in ["demo_call_07", "demo_call_11"] {
        assert_eq!(state(unmatched), Some("unmatched"), "{unmatched}");
    }
    assert_eq!(report.tasks_with_block, 10);
    assert_eq!(report.comments_shown, 2);
    // Frugal: the sync's 9 first pages, the reads of the admin flow, and per
    // batch of calls one lookup and at most one create and one update.
    assert!(
        report.api_calls <= 30,
        "{} API calls: {:?}",
        report.api_calls,
        report.api_calls_by_kind
    );
}
