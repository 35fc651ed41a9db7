//! The sample events in events/ (used by `sam local invoke -e` and the local stack)
//! have the exact shapes Lambda delivers: each parses into its event type.

use std::path::PathBuf;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use e2e::repo_root;
use serde_json::{Value, json};

fn read(relative: &str) -> Value {
    let path: PathBuf = repo_root().join("events").join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn sqs_events_parse_and_carry_versioned_json_bodies() {
    for file in [
        "call-logger/call-event.json",
        "call-logger/meeting-event.json",
        "comment-sync/comment-event.json",
        "scheduled-sync/sync-job.json",
    ] {
        let event: SqsEvent =
            serde_json::from_value(read(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!event.records.is_empty(), "{file}");
        for record in event.records {
            assert!(record.message_id.is_some(), "{file}");
            let body: Value = serde_json::from_str(record.body.as_deref().unwrap_or_default())
                .unwrap_or_else(|e| panic!("{file}: body: {e}"));
            assert_eq!(body["version"], 1, "{file}");
            assert_eq!(body["tenantId"], "acme", "{file}");
        }
    }
}

/// The contract's documented example (docs/call-event.md) is a valid call event
/// with every optional field, and is the body of the sample meeting event.
#[test]
fn the_documented_meeting_example_parses_with_every_optional_field() {
    let doc = std::fs::read_to_string(repo_root().join("docs/call-event.md")).unwrap();
    let example = doc
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a JSON example in docs/call-event.md");
    let call = shared::domain::call_event::CallEvent::parse(example).unwrap();
    assert!(call.ended_at.is_some());
    assert!(call.calendar_event.is_some());
    assert!(!call.topics.is_empty() && !call.highlights.is_empty() && !call.tags.is_empty());
    assert!(call.notes.is_some());
    let event: SqsEvent = serde_json::from_value(read("call-logger/meeting-event.json")).unwrap();
    let body = event.records[0].body.as_deref().unwrap();
    assert_eq!(
        shared::domain::call_event::CallEvent::parse(body).unwrap(),
        call
    );
}

#[test]
fn schedule_event_parses() {
    let event: EventBridgeEvent<Value> =
        serde_json::from_value(read("scheduled-sync/schedule.json")).unwrap();
    assert_eq!(event.source, "aws.events");
    assert_eq!(event.detail_type, "Scheduled Event");
}

#[test]
fn http_events_parse_as_api_gateway_v2_with_claims_where_routes_are_protected() {
    for (file, protected) in [
        ("integration-api/get-status.json", true),
        ("oauth-callback/callback.json", false),
    ] {
        let request: lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest =
            serde_json::from_value(read(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(request.version.as_deref(), Some("2.0"), "{file}");
        let claims = request
            .request_context
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| jwt.claims.clone())
            .unwrap_or_default();
        assert_eq!(
            claims.get("tenant_id").map(String::as_str),
            protected.then_some("acme"),
            "{file}"
        );
    }
}

/// Every sample event runs through its function's handler, as `sam local invoke -e`
/// would deliver it, against a tenant `acme` connected to the emulator.
#[tokio::test]
async fn every_sample_event_runs_through_its_handler() {
    use e2e::sf::{ORG, WorldOptions};
    use e2e::stack::{Stack, lambda_event};
    use shared::ports::CallStore;
    use std::time::Duration;

    let stack = Stack::start(WorldOptions::default()).await;
    stack.sf.seed(vec![("Contact", json!({"FirstName": "Jane", "LastName": "Doe", "Phone": "06 12 34 56 78", "Email": "cto@acme.com"}))]);
    let tenant = stack.sf.connect_tenant_as(&stack.aws, "acme").await;
    let aws = &stack.aws;
    let jobs = aws.queue(&aws.resources.sync_jobs_queue);
    let syncer = stack.app.syncer(&jobs);

    // scheduled-sync: the schedule fans out; the job syncs.
    let fanned = shared::sync::handler::handle(
        &stack.app,
        &syncer,
        lambda_event(
            read("scheduled-sync/schedule.json"),
            Duration::from_secs(60),
        ),
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(fanned["queued"], 1);
    let job = shared::sync::handler::handle(
        &stack.app,
        &syncer,
        lambda_event(
            read("scheduled-sync/sync-job.json"),
            Duration::from_secs(120),
        ),
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(job["batchItemFailures"], json!([]));

    // call-logger: the sample call is logged on Jane.
    let dlq = aws.queue(&aws.resources.dead_letter_queues[&aws.resources.call_events_queue]);
    let calls = aws.queue(&aws.resources.call_events_queue);
    let logger = stack.app.call_logger(&calls, &dlq);
    let event: SqsEvent = serde_json::from_value(read("call-logger/call-event.json")).unwrap();
    let answer = shared::calls::handler::handle(
        &stack.app,
        &logger,
        &calls,
        lambda_event(event, Duration::from_secs(60)),
    )
    .await;
    assert!(answer.batch_item_failures.is_empty());
    let outcome = stack
        .aws
        .store()
        .get_outcome(&tenant, "call_8f2c")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.state, shared::domain::CallState::Created);

    // comment-sync: the sample comment lands in that call's Task.
    let cdlq = aws.queue(&aws.resources.dead_letter_queues[&aws.resources.comment_events_queue]);
    let comments = aws.queue(&aws.resources.comment_events_queue);
    let sync = stack.app.comment_sync(&cdlq);
    let event: SqsEvent = serde_json::from_value(read("comment-sync/comment-event.json")).unwrap();
    let answer = shared::comments::handler::handle(
        &stack.app,
        &sync,
        &comments,
        lambda_event(event, Duration::from_secs(60)),
    )
    .await;
    assert!(answer.batch_item_failures.is_empty());
    let task = stack
        .sf
        .emu
        .record(ORG, outcome.task_id.as_deref().unwrap())
        .unwrap();
    assert!(
        task["Description"]
            .as_str()
            .unwrap()
            .contains("Great handling of the pricing objection")
    );

    // integration-api: the status of tenant acme, from the sample's claims.
    let request =
        lambda_http::request::from_str(&read("integration-api/get-status.json").to_string())
            .unwrap();
    let response = stack.api(request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(e2e::stack::body_json(&response)["status"], "connected");

    // oauth-callback: the sample's state is not one we signed: refused, redirected.
    let request =
        lambda_http::request::from_str(&read("oauth-callback/callback.json").to_string()).unwrap();
    let response = stack.callback(request).await;
    assert_eq!(response.status(), 302);
    assert!(
        e2e::stack::location(&response)
            .as_str()
            .contains("reason=invalid_state")
    );
}
