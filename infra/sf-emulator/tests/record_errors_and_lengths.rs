//! Text lengths in UTF-16 code units with Salesforce's STRING_TOO_LONG, and
//! permanent per-record failures injected through the control API, in every
//! shape Salesforce answers them: sObject Collections results (`statusCode`,
//! HTTP 200), single-row error arrays (`errorCode`) and composite subresponses.

// Test code: unwrap on fixtures is the assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use sf_emulator::{Fault, RecordFault, WriteOp};

async fn post(env: &Env, at: &str, path: &str, body: Value) -> (u16, Value) {
    let r = env.send(at, Method::POST, path, body).await;
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

async fn tasks(env: &Env, at: &str, subjects: &[&str]) -> (u16, Value) {
    let records: Vec<Value> = subjects
        .iter()
        .map(|s| json!({"attributes": {"type": "Task"}, "Subject": s, "TaskSubtype": "Call"}))
        .collect();
    post(
        env,
        at,
        &format!("{V}/composite/sobjects"),
        json!({"allOrNone": false, "records": records}),
    )
    .await
}

fn task_subjects(env: &Env) -> Vec<String> {
    let mut v: Vec<String> = env
        .emu
        .records("acme", "Task", false)
        .unwrap()
        .iter()
        .map(|t| t["Subject"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn lengths_are_counted_in_utf16_code_units() {
    let env = env().await;
    let at = env.token().await;
    // 127 emoji (2 units each) + 1 = 255 units: the limit, accepted.
    let fits = format!("{}x", "😀".repeat(127));
    let (s, _) = post(
        &env,
        &at,
        &format!("{V}/sobjects/Task"),
        json!({"Subject": fits}),
    )
    .await;
    assert_eq!(s, 201);
    // 128 emoji: 128 characters but 256 units.
    let long = "😀".repeat(128);
    let (s, body) = post(
        &env,
        &at,
        &format!("{V}/sobjects/Task"),
        json!({"Subject": long}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        body,
        json!([{
            "message": format!("Subject: data value too large: {long} (max length=255)"),
            "errorCode": "STRING_TOO_LONG",
            "fields": ["Subject"]
        }])
    );
    // Task.Description: 32,000 units.
    let desc = format!("{}{}", "é".repeat(31_998), "😀");
    let (s, _) = post(
        &env,
        &at,
        &format!("{V}/sobjects/Task"),
        json!({"Description": desc}),
    )
    .await;
    assert_eq!(s, 201, "31,998 + 2 units");
    let (s, body) = post(
        &env,
        &at,
        &format!("{V}/sobjects/Task"),
        json!({"Description": format!("{desc}a")}),
    )
    .await;
    assert_eq!((s, error_code(&body)), (400, "STRING_TOO_LONG"));
    // In a collection: per record, with statusCode.
    let (s, body) = tasks(&env, &at, &["ok", &long]).await;
    assert_eq!(s, 200);
    assert_eq!(body[0]["success"], true);
    assert_eq!(body[1]["errors"][0]["statusCode"], "STRING_TOO_LONG");
    assert_eq!(body[1]["errors"][0]["fields"], json!(["Subject"]));
}

/// A WHERE string holds at most 4,000 UTF-16 units. (Sent in a composite
/// subrequest: 2,000 emoji percent-encoded are 24,000 bytes, over the URI
/// limit of a GET.)
#[tokio::test]
async fn soql_string_limits_count_utf16_code_units() {
    let env = env().await;
    let at = env.token().await;
    let fits = "😀".repeat(2_000);
    let q = |s: &str| {
        json!({
            "method": "GET",
            "url": format!(
                "{V}/query?q={}",
                url::form_urlencoded::byte_serialize(
                    format!("SELECT Id FROM Contact WHERE LastName = '{s}'").as_bytes()
                )
                .collect::<String>()
            ),
            "referenceId": "q"
        })
    };
    for (s, status) in [(fits.clone(), 200), (format!("{fits}x"), 400)] {
        let (_, body) = post(
            &env,
            &at,
            &format!("{V}/composite"),
            json!({"compositeRequest": [q(&s)]}),
        )
        .await;
        let sub = &body["compositeResponse"][0];
        assert_eq!(sub["httpStatusCode"], status, "{}", sub["body"]);
        if status == 400 {
            assert_eq!(sub["body"][0]["errorCode"], "MALFORMED_QUERY");
        }
    }
}

/// One Task of a batch fails a validation rule: the others are created.
#[tokio::test]
async fn one_record_of_a_collection_fails_a_validation_rule() {
    let env = env().await;
    let at = env.token().await;
    // Through the HTTP control API (the fields a test or the local stack send).
    let r = env
        .http
        .post(env.url("/__emulator/orgs/acme/faults"))
        .json(&json!({
            "fault": "record_error",
            "object": "Task",
            "operation": "create",
            "field": "Subject",
            "contains": "#2",
            "status_code": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "Calls cannot be logged on closed opportunities"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (s, body) = tasks(&env, &at, &["call #1", "call #2", "call #3"]).await;
    assert_eq!(s, 200);
    assert_eq!(body[0]["success"], true);
    assert_eq!(
        body[1],
        json!({"success": false, "errors": [{
            "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "Calls cannot be logged on closed opportunities",
            "fields": []
        }]})
    );
    assert_eq!(body[2]["success"], true);
    assert_eq!(task_subjects(&env), vec!["call #1", "call #3"]);
    // A single-row insert: the error array, HTTP 400.
    let (s, body) = post(
        &env,
        &at,
        &format!("{V}/sobjects/Task"),
        json!({"Subject": "call #2 again"}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        body,
        json!([{
            "message": "Calls cannot be logged on closed opportunities",
            "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "fields": []
        }])
    );
    // allOrNone: the others are rolled back.
    let (_, body) = post(
        &env,
        &at,
        &format!("{V}/composite/sobjects"),
        json!({"allOrNone": true, "records": [
            {"attributes": {"type": "Task"}, "Subject": "call #4"},
            {"attributes": {"type": "Task"}, "Subject": "call #2 bis"}
        ]}),
    )
    .await;
    assert_eq!(
        body[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(task_subjects(&env), vec!["call #1", "call #3"]);
}

#[tokio::test]
async fn the_documented_permanent_failures_in_each_shape() {
    let env = env().await;
    let at = env.token().await;
    let ids = env.seed(vec![
        ("Contact", "gone", json!({"LastName": "Gone"})),
        ("Contact", "kept", json!({"LastName": "Kept"})),
        ("Task", "locked", json!({"Subject": "locked"})),
        ("Task", "removed", json!({"Subject": "removed"})),
    ]);
    let (gone, kept, locked, removed) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let inject = |f: RecordFault| env.emu.inject("acme", Fault::RecordError(f)).unwrap();
    inject(RecordFault {
        object: "Task".into(),
        operation: WriteOp::Create,
        field: Some("WhoId".into()),
        equals: Some(json!(gone)),
        status_code: "INVALID_CROSS_REFERENCE_KEY".into(),
        ..Default::default()
    });
    inject(RecordFault {
        object: "Task".into(),
        operation: WriteOp::Update,
        record_id: Some(removed[..15].to_string()),
        status_code: "ENTITY_IS_DELETED".into(),
        ..Default::default()
    });
    inject(RecordFault {
        object: "Task".into(),
        operation: WriteOp::Any,
        record_id: Some(locked.clone()),
        status_code: "INSUFFICIENT_ACCESS_OR_READONLY".into(),
        ..Default::default()
    });
    // INVALID_CROSS_REFERENCE_KEY on the WhoId, in a collection.
    let (_, body) = post(
        &env,
        &at,
        &format!("{V}/composite/sobjects"),
        json!({"records": [
            {"attributes": {"type": "Task"}, "Subject": "a", "WhoId": gone},
            {"attributes": {"type": "Task"}, "Subject": "b", "WhoId": kept}
        ]}),
    )
    .await;
    assert_eq!(
        body[0]["errors"],
        json!([{"statusCode": "INVALID_CROSS_REFERENCE_KEY", "message": "invalid cross reference id", "fields": ["WhoId"]}])
    );
    assert_eq!(body[1]["success"], true);
    // ENTITY_IS_DELETED on an update: 404 for a single row, as for a deleted record.
    let r = env
        .send(
            &at,
            Method::PATCH,
            &format!("{V}/sobjects/Task/{removed}"),
            json!({"Subject": "x"}),
        )
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!([{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}])
    );
    // INSUFFICIENT_ACCESS_OR_READONLY on a delete and in a collection update.
    let r = env
        .send(
            &at,
            Method::DELETE,
            &format!("{V}/sobjects/Task/{locked}"),
            json!(null),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!([{"message": "insufficient access rights on object id", "errorCode": "INSUFFICIENT_ACCESS_OR_READONLY", "fields": []}])
    );
    let r = env
        .send(
            &at,
            Method::PATCH,
            &format!("{V}/composite/sobjects"),
            json!({"records": [
                {"attributes": {"type": "Task"}, "id": locked, "Subject": "y"},
                {"attributes": {"type": "Task"}, "id": removed, "Subject": "y"}
            ]}),
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body[0]["errors"][0]["statusCode"],
        "INSUFFICIENT_ACCESS_OR_READONLY"
    );
    assert_eq!(body[1]["errors"][0]["statusCode"], "ENTITY_IS_DELETED");
    // In a composite subrequest: the single-row shape inside compositeResponse.
    let (_, body) = post(
        &env,
        &at,
        &format!("{V}/composite"),
        json!({"compositeRequest": [
            {"method": "PATCH", "url": format!("{V}/sobjects/Task/{locked}"), "referenceId": "t", "body": {"Subject": "z"}}
        ]}),
    )
    .await;
    let sub = &body["compositeResponse"][0];
    assert_eq!(sub["httpStatusCode"], 400);
    assert_eq!(
        sub["body"][0]["errorCode"],
        "INSUFFICIENT_ACCESS_OR_READONLY"
    );
    assert_eq!(env.emu.record("acme", locked).unwrap()["Subject"], "locked");
}

#[tokio::test]
async fn a_failure_can_fire_a_limited_number_of_times() {
    let env = env().await;
    let at = env.token().await;
    env.emu
        .inject(
            "acme",
            Fault::RecordError(RecordFault {
                object: "Task".into(),
                status_code: "UNABLE_TO_LOCK_ROW".into(),
                times: Some(1),
                ..Default::default()
            }),
        )
        .unwrap();
    let (s, _) = post(
        &env,
        &at,
        &format!("{V}/sobjects/Task"),
        json!({"Subject": "first"}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = post(
        &env,
        &at,
        &format!("{V}/sobjects/Task"),
        json!({"Subject": "second"}),
    )
    .await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn bad_record_faults_are_refused() {
    let env = env().await;
    for body in [
        json!({"fault": "record_error", "object": "Task", "status_code": "NOT_A_CODE"}),
        json!({"fault": "record_error", "object": "Widget", "status_code": "ENTITY_IS_DELETED"}),
        json!({"fault": "record_error", "object": "Task", "field": "Nope", "status_code": "ENTITY_IS_DELETED"}),
        json!({"fault": "record_error", "object": "Task", "equals": "x", "status_code": "ENTITY_IS_DELETED"}),
        json!({"fault": "record_error", "object": "Task", "statusCode": "ENTITY_IS_DELETED"}),
        json!({"fault": "record_error", "object": "Task", "record_id": "001000000000000AAA", "status_code": "ENTITY_IS_DELETED"}),
    ] {
        let r = env
            .http
            .post(env.url("/__emulator/orgs/acme/faults"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
    }
}

#[tokio::test]
async fn seeds_are_never_refused_by_injected_failures() {
    let env = env().await;
    env.emu
        .inject(
            "acme",
            Fault::RecordError(RecordFault {
                object: "Contact".into(),
                status_code: "FIELD_CUSTOM_VALIDATION_EXCEPTION".into(),
                ..Default::default()
            }),
        )
        .unwrap();
    assert_eq!(
        env.seed(vec![("Contact", "", json!({"LastName": "Seeded"}))])
            .len(),
        1
    );
}
