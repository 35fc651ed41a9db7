//! COUNT(), aggregates, date literals and parent-to-child subqueries over
//! REST, in Salesforce's result shapes.

// Test code: unwrap on fixtures is the assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn count_answers_total_size_without_records() {
    let env = env().await;
    env.contacts(2500);
    let at = env.token().await;
    let (s, body) = env.query(&at, "SELECT COUNT() FROM Contact").await;
    assert_eq!(s, 200);
    assert_eq!(
        body,
        json!({"totalSize": 2500, "done": true, "records": []})
    );
    let (_, body) = env
        .query(
            &at,
            "SELECT COUNT() FROM Contact WHERE LastName LIKE 'Contact 0000%'",
        )
        .await;
    assert_eq!(body["totalSize"], 10);
}

#[tokio::test]
async fn count_of_a_field_is_an_aggregate_result() {
    let env = env().await;
    env.seed(vec![
        ("Contact", "", json!({"LastName": "A", "Email": "a@x.test"})),
        ("Contact", "", json!({"LastName": "B"})),
    ]);
    let at = env.token().await;
    let r = env
        .http
        .get(env.url(&format!("{V}/query")))
        .query(&[("q", "SELECT COUNT(Id), COUNT(Email) withEmail FROM Contact")])
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    let raw = r.text().await.unwrap();
    assert_eq!(
        raw,
        r#"{"totalSize":1,"done":true,"records":[{"attributes":{"type":"AggregateResult"},"expr0":2,"withEmail":1}]}"#
    );
}

#[tokio::test]
async fn date_literals_filter_on_the_emulated_clock() {
    let env = env().await;
    env.emu.set_time_ms(1_780_000_000_000); // Thursday 2026-05-28
    env.emu.freeze_clock(true);
    env.seed(vec![
        (
            "Contact",
            "",
            json!({"LastName": "Today", "LastModifiedDate": "$now-1h"}),
        ),
        (
            "Contact",
            "",
            json!({"LastName": "LastWeek", "LastModifiedDate": "$now-7d"}),
        ),
        (
            "Contact",
            "",
            json!({"LastName": "Old", "LastModifiedDate": "$now-40d"}),
        ),
    ]);
    let at = env.token().await;
    let last_names = |body: &Value| -> Vec<String> {
        let mut v: Vec<String> = body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["LastName"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let (_, body) = env
        .query(
            &at,
            "SELECT LastName FROM Contact WHERE LastModifiedDate = TODAY",
        )
        .await;
    assert_eq!(last_names(&body), vec!["Today"]);
    let (_, body) = env
        .query(
            &at,
            "SELECT LastName FROM Contact WHERE LastModifiedDate = LAST_N_DAYS:7",
        )
        .await;
    assert_eq!(last_names(&body), vec!["LastWeek", "Today"]);
    let (_, body) = env
        .query(
            &at,
            "SELECT LastName FROM Contact WHERE LastModifiedDate < LAST_MONTH",
        )
        .await;
    assert!(last_names(&body).is_empty(), "April 18 is in LAST_MONTH");
    let (_, body) = env
        .query(
            &at,
            "SELECT LastName FROM Contact WHERE LastModifiedDate = LAST_MONTH",
        )
        .await;
    assert_eq!(last_names(&body), vec!["Old"]);
    let (s, body) = env
        .query(
            &at,
            "SELECT LastName FROM Contact WHERE LastModifiedDate = THIS_FISCAL_YEAR",
        )
        .await;
    assert_eq!((s, error_code(&body)), (400, "MALFORMED_QUERY"));
}

/// `SELECT Id, (SELECT ContactId, Role FROM OpportunityContactRoles) FROM
/// Opportunity`: a nested query result per parent, or null when empty.
#[tokio::test]
async fn parent_to_child_subqueries_nest_a_query_result_or_null() {
    let env = env().await;
    let ids = env.seed(vec![
        ("Contact", "ann", json!({"LastName": "Ann"})),
        ("Contact", "bob", json!({"LastName": "Bob"})),
        (
            "Opportunity",
            "big",
            json!({"Name": "Big", "StageName": "Prospecting", "CloseDate": "$today+10d"}),
        ),
        (
            "Opportunity",
            "none",
            json!({"Name": "None", "StageName": "Prospecting", "CloseDate": "$today+10d"}),
        ),
        (
            "OpportunityContactRole",
            "",
            json!({"OpportunityId": "@big", "ContactId": "@ann", "Role": "Decision Maker"}),
        ),
        (
            "OpportunityContactRole",
            "",
            json!({"OpportunityId": "@big", "ContactId": "@bob", "Role": "Evaluator"}),
        ),
    ]);
    let at = env.token().await;
    let r = env
        .http
        .get(env.url("/services/data/v68.0/query"))
        .query(&[(
            "q",
            "SELECT Id, Name, (SELECT ContactId, Role FROM OpportunityContactRoles ORDER BY Role) FROM Opportunity ORDER BY Name",
        )])
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    let raw = r.text().await.unwrap();
    assert_key_order(
        &raw,
        &[
            "totalSize",
            "done",
            "records",
            "attributes",
            "Id",
            "Name",
            "OpportunityContactRoles",
            "totalSize",
            "done",
            "records",
            "attributes",
            "ContactId",
            "Role",
        ],
    );
    let body: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(body["totalSize"], 2);
    let big = &body["records"][0];
    assert_eq!(big["Name"], "Big");
    let roles = &big["OpportunityContactRoles"];
    assert_eq!(roles["totalSize"], 2);
    assert_eq!(roles["done"], true);
    let first = &roles["records"][0];
    assert_eq!(first["attributes"]["type"], "OpportunityContactRole");
    assert!(
        first["attributes"]["url"]
            .as_str()
            .unwrap()
            .starts_with("/services/data/v68.0/sobjects/OpportunityContactRole/00K")
    );
    assert_eq!(first["ContactId"], ids[0].as_str());
    assert_eq!(first["Role"], "Decision Maker");
    assert_eq!(roles["records"][1]["Role"], "Evaluator");
    assert_eq!(body["records"][1]["Name"], "None");
    assert_eq!(body["records"][1]["OpportunityContactRoles"], Value::Null);
}
