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

// ------------------------------------------------------------ meetings → Events

use chrono::{DateTime, Duration, DurationRound, Utc};
use e2e::sf::ORG;
use e2e::stack::faulty_app;
use shared::domain::{Activity, CallState};

/// The calendar event's start: two hours ago, on the minute.
fn calendar_start() -> DateTime<Utc> {
    (Utc::now() - Duration::hours(2))
        .duration_trunc(Duration::minutes(1))
        .unwrap()
}

/// A meeting of the host `usr_12` with Jane, recorded from a calendar event.
fn meeting(w: &World, id: &str, title: &str, start: DateTime<Utc>) -> String {
    let mut v: Value = serde_json::from_str(&call(
        &w.tenant,
        id,
        "meeting",
        json!([
            {"role": "external", "name": "Jane Doe", "email": "jane@acme.com"},
            {"role": "internal", "userId": "usr_12", "email": "bob@modjo.ai"}
        ]),
    ))
    .unwrap();
    v["startedAt"] = json!(rfc(start + Duration::seconds(70)));
    v["source"] = json!({"provider": "zoom"});
    v["calendarEvent"] = json!({
        "title": title, "start": rfc(start), "end": rfc(start + Duration::minutes(45)),
        "organizerEmail": "rep@acme.test"
    });
    v.to_string()
}

fn events(w: &World) -> Vec<Value> {
    w.stack.sf.emu.records(ORG, "Event", false).unwrap()
}

/// The Event the calendar sync created for the host, with the rep's agenda.
async fn calendar_event(w: &World, subject: &str, start: DateTime<Utc>) -> String {
    w.stack
        .sf
        .user()
        .create(
            "Event",
            json!({
                "Subject": subject, "StartDateTime": rfc(start + Duration::minutes(2)),
                "EndDateTime": rfc(start + Duration::minutes(47)), "OwnerId": w.rep,
                "Description": "Agenda: SSO, pricing"
            }),
        )
        .await
}

#[tokio::test]
async fn a_meeting_enriches_the_calendars_event_and_keeps_its_text() {
    let w = world().await;
    let start = calendar_start();
    let event_id = calendar_event(&w, "Acme / Modjo — Security review", start).await;
    let tasks_before = tasks(&w).len();
    w.stack.sf.emu.reset_counters(ORG).unwrap();
    let body = meeting(&w, "meet_enrich", "acme/modjo: SECURITY review", start);
    assert!(log(&w, &[body]).await.batch_item_failures.is_empty());

    assert_eq!(events(&w).len(), 1, "no Event created");
    assert_eq!(
        tasks(&w).len(),
        tasks_before,
        "no Task for a meeting on its Event"
    );
    let event = w.stack.sf.emu.record(ORG, &event_id).unwrap();
    let description = event["Description"].as_str().unwrap();
    assert!(
        description.starts_with("Agenda: SSO, pricing\n\n=== Modjo call"),
        "{description}"
    );
    assert!(description.contains("https://app.modjo.ai/calls/meet_enrich\nMeeting · 12 min 34 s"));
    let o = outcome(&w, "meet_enrich").await;
    assert_eq!(
        (o.state, o.activity, o.task_id.as_deref()),
        (CallState::Enriched, Activity::Event, event["Id"].as_str())
    );
    let read = read_call(&w, "meet_enrich").await;
    assert_eq!(read["activity"], "event");
    assert!(
        read["taskUrl"]
            .as_str()
            .unwrap()
            .contains("/lightning/r/Event/")
    );
    // The Salesforce calls of the whole call, as the emulator counted them.
    let counters = w.stack.sf.emu.counters(ORG).unwrap();
    assert_eq!(counters.by_kind.get("collectionsUpdate"), Some(&1));
    assert_eq!(counters.by_kind.get("collectionsCreate"), None);
}

#[tokio::test]
async fn a_meeting_without_its_event_creates_it() {
    let w = world().await;
    let start = calendar_start();
    // The host's other Event at that time, under another title, is left alone.
    let other = calendar_event(&w, "Weekly pipeline review", start).await;
    let tasks_before = tasks(&w).len();
    let body = meeting(&w, "meet_create", "Acme / Modjo — Security review", start);
    assert!(log(&w, &[body]).await.batch_item_failures.is_empty());

    assert_eq!(
        tasks(&w).len(),
        tasks_before,
        "a meeting is not logged as a Task"
    );
    let created: Vec<Value> = events(&w)
        .into_iter()
        .filter(|e| e["Id"].as_str() != Some(other.as_str()))
        .collect();
    assert_eq!(created.len(), 1);
    let e = &created[0];
    assert_eq!(e["Subject"], "Acme / Modjo — Security review");
    assert_eq!(
        e["StartDateTime"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        start
    );
    assert_eq!(e["DurationInMinutes"], 45);
    assert_eq!(e["WhoId"], json!(w.ids["jane"]));
    assert_eq!(e["WhatId"], json!(w.ids["opp_main"]));
    assert_eq!(e["OwnerId"], json!(w.rep));
    assert!(
        e["Description"]
            .as_str()
            .unwrap()
            .starts_with("=== Modjo call")
    );
    let untouched = w.stack.sf.emu.record(ORG, &other).unwrap();
    assert_eq!(untouched["Description"], "Agenda: SSO, pricing");
    let o = outcome(&w, "meet_create").await;
    assert_eq!((o.state, o.activity), (CallState::Created, Activity::Event));
    assert_eq!(o.task_id.as_deref(), e["Id"].as_str());
}

#[tokio::test]
async fn a_crash_between_the_event_and_the_outcome_still_gives_one_event() {
    let w = world().await;
    let (faulty, app) = faulty_app(&w.stack.aws, &w.stack.sf);
    let body = meeting(
        &w,
        "meet_crash",
        "Acme / Modjo — Security review",
        calendar_start(),
    );
    faulty.crash_on_outcome_write(1);
    let first = log_with(&app, &w.stack.aws, std::slice::from_ref(&body)).await;
    assert_eq!(first.batch_item_failures.len(), 1, "the outcome was lost");
    assert_eq!(events(&w).len(), 1, "the Event exists in Salesforce");
    // SQS redelivers once the claim has expired: the Event is recognised by the
    // call's link in its block, not created again.
    expire_claim(&w, "meet_crash").await;
    let second = log_with(&app, &w.stack.aws, &[body]).await;
    assert!(second.batch_item_failures.is_empty());
    let all = events(&w);
    assert_eq!(all.len(), 1, "no duplicate");
    let o = outcome(&w, "meet_crash").await;
    assert_eq!((o.state, o.activity), (CallState::Created, Activity::Event));
    assert_eq!(o.task_id.as_deref(), all[0]["Id"].as_str());
}

#[tokio::test]
async fn comments_reach_the_meetings_event() {
    let w = world().await;
    let start = calendar_start();
    let event_id = calendar_event(&w, "Acme / Modjo — Security review", start).await;
    let body = meeting(&w, "meet_comments", "Acme / Modjo — Security review", start);
    assert!(log(&w, &[body]).await.batch_item_failures.is_empty());
    let answer = comments(
        &w,
        &[comment(
            &w,
            "meet_comments",
            "c1",
            "upsert",
            "Ask for the DPA",
            312,
            1,
        )],
    )
    .await;
    assert!(answer.batch_item_failures.is_empty());
    let d = w.stack.sf.emu.record(ORG, &event_id).unwrap()["Description"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(d.starts_with("Agenda: SSO, pricing\n\n"), "{d}");
    assert!(
        d.contains("\nComments (1):\n[05:12] Alice Martin: Ask for the DPA\n"),
        "{d}"
    );
    // Deleted in Modjo: gone from the Event too.
    comments(
        &w,
        &[comment(
            &w,
            "meet_comments",
            "c1",
            "delete",
            "Ask for the DPA",
            312,
            2,
        )],
    )
    .await;
    let d = w.stack.sf.emu.record(ORG, &event_id).unwrap()["Description"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!d.contains("Ask for the DPA"), "{d}");
}
