//! Issue 20 through the call logger's handler, against the emulator and moto:
//! the call's insights in its activity.

use e2e::scenario::*;
use serde_json::{Value, json};

/// A call to Jane (by email) with every optional field of the contract.
fn with_insights(w: &World, id: &str) -> String {
    let mut v: Value = serde_json::from_str(&call(
        &w.tenant,
        id,
        "outbound",
        json!([{"role": "external", "email": "jane@acme.com"}]),
    ))
    .unwrap();
    v["topics"] = json!(["Pricing", "Security\u{202E}"]);
    v["highlights"] = json!([
        {"atSecond": 1980, "text": "Legal sends the DPA by Friday"},
        {"atSecond": 312, "text": "SSO is a must-have"}
    ]);
    v["tags"] = json!(["pilot"]);
    v["notes"] = json!("Send the SOC 2 report.\n=== end of Modjo call ===");
    v.to_string()
}

#[tokio::test]
async fn the_activity_carries_the_calls_insights_in_order() {
    let w = world().await;
    let id = "call_insights";
    let body = with_insights(&w, id);
    let started: chrono::DateTime<chrono::Utc> =
        serde_json::from_str::<Value>(&body).unwrap()["startedAt"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    assert!(log(&w, &[body]).await.batch_item_failures.is_empty());
    let task = &task_by_call_object(&w, id)[0];
    let description = task["Description"].as_str().unwrap();
    let url = format!("https://app.modjo.ai/calls/{id}");
    let expected = format!(
        "Outbound call · 12 min 34 s · {} · via aircall\n\
         With: jane@acme.com\n\
         \nSummary:\nPricing and next steps.\n\
         \nTopics: Pricing, Security\n\
         \nHighlights (2):\n\
         [05:12] SSO is a must-have {url}?t=312\n\
         [33:00] Legal sends the DPA by Friday {url}?t=1980\n\
         \nTags: pilot\n\
         \nRep's notes:\nSend the SOC 2 report.\n= = = end of Modjo call = = =\n\
         === end of Modjo call ===",
        started.format("%d %b %Y %H:%M UTC")
    );
    assert!(description.ends_with(&expected), "{description}");
    assert_eq!(description.matches("=== end of Modjo call ===").count(), 1);
}

#[tokio::test]
async fn a_comment_keeps_the_insights_in_the_activity() {
    let w = world().await;
    let id = "call_insights_comment";
    log(&w, &[with_insights(&w, id)]).await;
    let task = task_by_call_object(&w, id)[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = comments(&w, &[comment(&w, id, "c1", "upsert", "Nice", 300, 1)]).await;
    assert!(answer.batch_item_failures.is_empty());
    let d = description(&w, &task);
    assert!(d.contains("\nTags: pilot\n\nRep's notes:\n"), "{d}");
    assert!(
        d.contains("\nComments (1):\n[05:00] Alice Martin: Nice\n"),
        "{d}"
    );
}

/// The emulator's Event is as strict as Salesforce's: an end or a duration,
/// both only when they agree, no more than 14 days; and it fills the other.
#[tokio::test]
async fn the_emulator_refuses_events_salesforce_refuses() {
    let stack = e2e::stack::Stack::start(e2e::sf::WorldOptions::default()).await;
    let base = format!("{}/services/data/v62.0", stack.sf.base_url());
    let (_, token) = stack.sf.mint_refresh_token();
    let token = token.unwrap();
    let http = reqwest::Client::new();
    let create = |fields: Value| {
        let mut record = fields;
        record["attributes"] = json!({"type": "Event"});
        http.post(format!("{base}/composite/sobjects"))
            .bearer_auth(&token)
            .json(&json!({"records": [record]}))
            .send()
    };
    let start = "2026-11-28T14:00:00.000+0000";
    let refused = [
        (
            json!({"Subject": "no end", "StartDateTime": start}),
            "REQUIRED_FIELD_MISSING",
        ),
        (
            json!({"Subject": "no start", "DurationInMinutes": 30}),
            "REQUIRED_FIELD_MISSING",
        ),
        (
            json!({"Subject": "disagree", "StartDateTime": start, "EndDateTime": "2026-11-28T15:00:00.000+0000", "DurationInMinutes": 30}),
            "FIELD_INTEGRITY_EXCEPTION",
        ),
        (
            json!({"Subject": "backwards", "StartDateTime": start, "EndDateTime": "2026-11-28T13:00:00.000+0000"}),
            "FIELD_INTEGRITY_EXCEPTION",
        ),
        (
            json!({"Subject": "too long", "StartDateTime": start, "DurationInMinutes": 14 * 24 * 60 + 1}),
            "FIELD_INTEGRITY_EXCEPTION",
        ),
    ];
    for (fields, code) in refused {
        let answer: Value = create(fields.clone()).await.unwrap().json().await.unwrap();
        assert_eq!(answer[0]["success"], false, "{fields}");
        assert_eq!(
            answer[0]["errors"][0]["statusCode"], code,
            "{fields}: {answer}"
        );
    }
    let answer: Value = create(
        json!({"Subject": "14 days", "StartDateTime": start, "DurationInMinutes": 14 * 24 * 60}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(answer[0]["success"], true, "{answer}");
    let answer: Value = create(json!({"Subject": "by end", "StartDateTime": start, "EndDateTime": "2026-11-28T14:45:00.000+0000"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event = stack
        .sf
        .emu
        .record(e2e::sf::ORG, answer[0]["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(event["DurationInMinutes"], 45);
    assert_eq!(event["ActivityDate"], "2026-11-28");
    assert_eq!(event["IsAllDayEvent"], false);
}
