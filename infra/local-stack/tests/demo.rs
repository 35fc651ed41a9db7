//! README command 1, as a test: the whole stack (moto, the emulator with the demo
//! org, the five function binaries behind the local Runtime API, the HTTP API
//! with its JWT check, the schedule and the queue pollers) plays the seed's story.

use std::time::Duration;

use local_stack::stack::{AwsTarget, LocalStack, Options, SalesforceTarget};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_plays_the_whole_story() {
    let root = local_stack::repo_root();
    let log_dir = std::env::temp_dir().join(format!("modjo-demo-logs-{}", std::process::id()));
    let stack = LocalStack::start(Options {
        schedule_every: Duration::from_secs(3600),
        ..Options::new(
            0,
            local_stack::functions::built_for_tests(),
            log_dir,
            SalesforceTarget::Emulator {
                seed: root.join("infra/sf-emulator/demo-org.json"),
            },
            AwsTarget::Moto,
        )
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
    assert_eq!(report.synced.len(), 10);
    let state = |id: &str| report.calls.get(id).map(String::as_str);
    for enriched in ["demo_call_01", "demo_call_02"] {
        assert_eq!(
            state(enriched),
            Some("enriched"),
            "{enriched}: the dialer's Task"
        );
    }
    assert_eq!(
        state("demo_call_08"),
        Some("enriched"),
        "the meeting on its calendar's Event"
    );
    assert_eq!(report.meetings_on_calendar_events, 1);
    assert!(
        report.notes_on_opportunities >= 1,
        "a call's summary as a Note on its opportunity"
    );
    assert!(report.permissions_told_then_cleared);
    for created in [
        "demo_call_03",
        "demo_call_04",
        "demo_call_05",
        "demo_call_06",
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
    assert_eq!(
        report.rematched,
        Some(("demo_call_07".to_string(), "created".to_string())),
        "the unmatched call is logged once its contact exists"
    );
    assert_eq!(report.comments_shown, 2);
    // Frugal: the sync's 10 first pages, the reads of the admin flow, three
    // permissions checks, and per batch of calls one lookup (and one for the
    // meetings' Events) and at most one create and one update of each.
    assert!(
        report.api_calls <= 30,
        "{} API calls: {:?}",
        report.api_calls,
        report.api_calls_by_kind
    );
}
