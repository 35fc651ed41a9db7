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
