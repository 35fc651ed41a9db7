//! The sample events in events/ (used by `sam local invoke -e` and the local stack)
//! have the exact shapes Lambda delivers: each parses into its event type.

use std::path::PathBuf;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use e2e::repo_root;
use serde_json::Value;

fn read(relative: &str) -> Value {
    let path: PathBuf = repo_root().join("events").join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn sqs_events_parse_and_carry_versioned_json_bodies() {
    for file in [
        "call-logger/call-event.json",
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
