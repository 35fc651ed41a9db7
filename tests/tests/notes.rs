//! Summaries as Notes (issue 20): with the tenant's setting on, a logged
//! call's summary, highlights and rep's notes become a Salesforce Note linked to
//! the call's Who and What; updated when the summary changes, never duplicated,
//! removed when the setting is turned off; and Notes disabled in the org never
//! stop a call from being logged. Against the emulator and moto.

use base64::Engine;
use e2e::scenario::*;
use e2e::sf::{ORG, WorldOptions};
use e2e::stack::{Claims, Stack, api_event, body_json, faulty_app};
use serde_json::{Value, json};
use sf_emulator::access::AccessChange;
use shared::domain::CallState;

/// The tenant's "summaries as Notes" setting.
async fn notes_setting(w: &World, on: bool) {
    shared::work::update_connection(&w.stack.aws.store(), &w.tenant, |c| {
        c.summaries_as_notes = on;
        true
    })
    .await
    .unwrap();
}

/// A call to Jane with a summary, highlights and the rep's notes.
fn with_insights(w: &World, id: &str, summary: &str) -> String {
    let mut v: Value = serde_json::from_str(&phone_call(&w.tenant, id, "+33612345678")).unwrap();
    v["summary"] = json!(summary);
    v["highlights"] =
        json!([{"atSecond": 95, "text": "Budget: 20k€"}, {"atSecond": 12, "text": "Intro"}]);
    v["notes"] = json!("Send the <deck> & pricing\nCall back Tuesday");
    v.to_string()
}

fn notes(w: &World) -> Vec<Value> {
    w.stack.sf.emu.records(ORG, "ContentNote", false).unwrap()
}

fn links_of(w: &World, note: &str) -> Vec<String> {
    let mut linked: Vec<String> = w
        .stack
        .sf
        .emu
        .records(ORG, "ContentDocumentLink", false)
        .unwrap()
        .into_iter()
        .filter(|l| l["ContentDocumentId"] == note)
        .map(|l| l["LinkedEntityId"].as_str().unwrap().to_string())
        .collect();
    linked.sort();
    linked
}

/// The Note's HTML, as Salesforce stores it: its `Content`, base64-decoded.
fn html(note: &Value) -> String {
    let b64 = note["Content"].as_str().expect("content");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

fn jane_and_opportunity(w: &World) -> Vec<String> {
    let mut v = vec![w.ids["jane"].clone(), w.ids["opp_main"].clone()];
    v.sort();
    v
}

#[tokio::test]
async fn a_note_is_created_with_the_call_escaped_and_linked_to_who_and_what() {
    let w = world().await;
    notes_setting(&w, true).await;
    w.stack.sf.emu.reset_counters(ORG).unwrap();
    let hostile = "Pricing <script>alert('x')</script> & \"next\" steps\u{202E}evil";
    let body = with_insights(&w, "call_note", hostile);
    assert!(log(&w, &[body]).await.batch_item_failures.is_empty());

    let all = notes(&w);
    assert_eq!(all.len(), 1);
    let note = &all[0];
    assert_eq!(note["Title"], "Call call_note · Modjo call_note");
    assert_eq!(
        html(note),
        "<p>Summary</p>\
         <p>Pricing &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;next&quot; stepsevil</p>\
         <p>Highlights</p>\
         <p>[00:12] Intro<br>https://app.modjo.ai/calls/call_note?t=12</p>\
         <p>[01:35] Budget: 20k€<br>https://app.modjo.ai/calls/call_note?t=95</p>\
         <p>Rep&#39;s notes</p><p>Send the &lt;deck&gt; &amp; pricing</p><p>Call back Tuesday</p>\
         <p>The call in Modjo: https://app.modjo.ai/calls/call_note</p>"
    );
    let id = note["Id"].as_str().unwrap();
    assert_eq!(links_of(&w, id), jane_and_opportunity(&w));
    let o = outcome(&w, "call_note").await;
    assert_eq!(o.state, CallState::Created);
    assert_eq!(o.note.as_ref().map(|n| n.id.as_str()), Some(id));
    assert_eq!(read_call(&w, "call_note").await["note"]["id"], id);
    // The whole call, as the emulator counted it: 3 API calls, the Note's
    // share being one. The dialer-Task query, the Task's create, then one
    // composite request for the Note and both its links.
    let counters = w.stack.sf.emu.counters(ORG).unwrap();
    assert_eq!(counters.api_used, 3, "{counters:?}");
    assert_eq!(counters.by_kind.get("composite"), Some(&1), "{counters:?}");
}

#[tokio::test]
async fn without_the_setting_no_note_is_written() {
    let w = world().await;
    let body = with_insights(&w, "call_plain", "Pricing");
    assert!(log(&w, &[body]).await.batch_item_failures.is_empty());
    assert_eq!(task_by_call_object(&w, "call_plain").len(), 1);
    assert_eq!(notes(&w), Vec::<Value>::new());
    assert_eq!(outcome(&w, "call_plain").await.note, None);
}

#[tokio::test]
async fn the_note_follows_a_changed_summary_and_is_never_duplicated() {
    let w = world().await;
    notes_setting(&w, true).await;
    let first = with_insights(&w, "call_change", "First summary");
    assert!(
        log(&w, std::slice::from_ref(&first))
            .await
            .batch_item_failures
            .is_empty()
    );
    let id = notes(&w)[0]["Id"].as_str().unwrap().to_string();

    // The same message again: nothing to write.
    w.stack.sf.emu.reset_counters(ORG).unwrap();
    assert!(log(&w, &[first]).await.batch_item_failures.is_empty());
    assert_eq!(w.stack.sf.emu.counters(ORG).unwrap().api_used, 0);

    // A new summary: the same Note, rewritten; one link per record.
    let second = with_insights(&w, "call_change", "Second summary");
    assert!(log(&w, &[second]).await.batch_item_failures.is_empty());
    let all = notes(&w);
    assert_eq!(all.len(), 1, "still one Note");
    assert_eq!(all[0]["Id"], id.as_str());
    assert!(html(&all[0]).starts_with("<p>Summary</p><p>Second summary</p>"));
    assert_eq!(links_of(&w, &id), jane_and_opportunity(&w));
    assert_eq!(task_by_call_object(&w, "call_change").len(), 1);
    let o = outcome(&w, "call_change").await;
    assert_eq!(o.note.map(|n| n.id), Some(id));
    assert!(o.message.unwrap().contains("Second summary"));
}

#[tokio::test]
async fn turning_the_setting_off_removes_the_note_when_the_call_comes_again() {
    let w = world().await;
    notes_setting(&w, true).await;
    let body = with_insights(&w, "call_off", "Summary");
    assert!(
        log(&w, std::slice::from_ref(&body))
            .await
            .batch_item_failures
            .is_empty()
    );
    let id = notes(&w)[0]["Id"].as_str().unwrap().to_string();

    notes_setting(&w, false).await;
    assert!(log(&w, &[body]).await.batch_item_failures.is_empty());
    assert_eq!(notes(&w), Vec::<Value>::new(), "the Note is deleted");
    assert_eq!(links_of(&w, &id), Vec::<String>::new(), "and its links");
    let o = outcome(&w, "call_off").await;
    assert_eq!((o.state, o.note), (CallState::Created, None));
    assert_eq!(
        task_by_call_object(&w, "call_off").len(),
        1,
        "the Task stays"
    );
}

#[tokio::test]
async fn a_crash_between_the_note_and_the_outcome_still_gives_one_note() {
    let w = world().await;
    notes_setting(&w, true).await;
    let (faulty, app) = faulty_app(&w.stack.aws, &w.stack.sf);
    let body = with_insights(&w, "call_crash", "Summary");
    faulty.crash_on_outcome_write(1);
    let first = log_with(&app, &w.stack.aws, std::slice::from_ref(&body)).await;
    assert_eq!(first.batch_item_failures.len(), 1, "the outcome was lost");
    assert_eq!(notes(&w).len(), 1, "the Note exists in Salesforce");

    expire_claim(&w, "call_crash").await;
    let second = log_with(&app, &w.stack.aws, &[body]).await;
    assert!(second.batch_item_failures.is_empty());
    let all = notes(&w);
    assert_eq!(all.len(), 1, "no second Note");
    let id = all[0]["Id"].as_str().unwrap();
    assert_eq!(links_of(&w, id), jane_and_opportunity(&w), "no second link");
    let o = outcome(&w, "call_crash").await;
    assert_eq!(o.note.as_ref().map(|n| n.id.as_str()), Some(id));
}

/// The tenant's status, as the settings page reads it.
async fn status(w: &World) -> Value {
    body_json(
        &w.stack
            .api(api_event(
                "GET",
                "/integrations/salesforce/status",
                None,
                Claims::admin(w.tenant.as_str()),
            ))
            .await,
    )
}

#[tokio::test]
async fn notes_disabled_the_call_is_logged_and_the_status_says_where_to_enable_them() {
    let w = world().await;
    notes_setting(&w, true).await;
    let notes_enabled = |on: bool| AccessChange {
        notes_enabled: Some(on),
        ..Default::default()
    };
    w.stack
        .sf
        .emu
        .set_access(ORG, &notes_enabled(false))
        .unwrap();
    let body = with_insights(&w, "call_nonotes", "Summary");
    assert!(
        log(&w, std::slice::from_ref(&body))
            .await
            .batch_item_failures
            .is_empty()
    );

    assert_eq!(
        task_by_call_object(&w, "call_nonotes").len(),
        1,
        "the call is logged"
    );
    let o = outcome(&w, "call_nonotes").await;
    assert_eq!((o.state, o.note), (CallState::Created, None));
    let expected = "Notes are not enabled in the org: meeting summaries cannot be saved as Notes \
                    (calls are still logged). Guide step 4: Setup → Notes Settings → Enable Notes.";
    assert_eq!(o.note_problem.as_deref(), Some(expected));
    assert_eq!(read_call(&w, "call_nonotes").await["noteProblem"], expected);
    assert_eq!(status(&w).await["notesProblem"], expected);

    // Enabled in Setup: the call's next delivery writes its Note, and the
    // status no longer complains.
    w.stack
        .sf
        .emu
        .set_access(ORG, &notes_enabled(true))
        .unwrap();
    assert!(log(&w, &[body]).await.batch_item_failures.is_empty());
    assert_eq!(notes(&w).len(), 1);
    assert_eq!(outcome(&w, "call_nonotes").await.note_problem, None);
    assert_eq!(status(&w).await["notesProblem"], Value::Null);
}

#[tokio::test]
async fn the_setting_is_saved_and_shown_with_the_settings() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = e2e::unique("acme");
    let save = |extra: Value| {
        let mut body = json!({"consumerKey": "3MVG9key", "consumerSecret": "s3cret",
                              "instanceUrl": "https://acme.my.salesforce.com"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        api_event(
            "PUT",
            "/integrations/salesforce/settings",
            Some(body),
            Claims::admin(&tenant),
        )
    };
    let saved = body_json(&stack.api(save(json!({}))).await);
    assert_eq!(saved["summariesAsNotes"], false, "off by default");
    let saved = body_json(&stack.api(save(json!({"summariesAsNotes": true}))).await);
    assert_eq!(saved["summariesAsNotes"], true);
    // Absent: kept.
    let saved = body_json(&stack.api(save(json!({}))).await);
    assert_eq!(saved["summariesAsNotes"], true);
}

#[tokio::test]
async fn the_emulator_refuses_notes_and_links_salesforce_refuses() {
    let stack = Stack::start(WorldOptions::default()).await;
    let contact = stack.sf.seed(vec![("Contact", json!({"LastName": "Doe"}))])[0].clone();
    let user = stack.sf.user();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let code = |e: Value| e[0]["errorCode"].as_str().unwrap_or_default().to_string();

    for (fields, expected) in [
        (
            json!({"Title": "t", "Content": b64("<p>a & b</p>")}),
            "FIELD_INTEGRITY_EXCEPTION",
        ),
        (
            json!({"Title": "t", "Content": b64("<script>x</script>")}),
            "FIELD_INTEGRITY_EXCEPTION",
        ),
        (
            json!({"Title": "t", "Content": b64("<p>l&apos;eau</p>")}),
            "FIELD_INTEGRITY_EXCEPTION",
        ),
        (
            json!({"Title": "t", "Content": "not base64!"}),
            "INVALID_FIELD",
        ),
        (
            json!({"Title": "  ", "Content": b64("<p>x</p>")}),
            "REQUIRED_FIELD_MISSING",
        ),
        (
            json!({"Content": b64("<p>x</p>")}),
            "REQUIRED_FIELD_MISSING",
        ),
        (
            json!({"Title": "x".repeat(256), "Content": b64("<p>x</p>")}),
            "STRING_TOO_LONG",
        ),
    ] {
        let refused = user.try_create("ContentNote", fields.clone()).await;
        assert_eq!(refused.map_err(code), Err(expected.to_string()), "{fields}");
    }
    let note = user
        .try_create(
            "ContentNote",
            json!({"Title": "t", "Content": b64("<p>a &amp; b &lt;c&gt; l&#39;eau</p>")}),
        )
        .await
        .unwrap();
    let link = |entity: &str, share: &str| json!({"ContentDocumentId": note, "LinkedEntityId": entity, "ShareType": share, "Visibility": "AllUsers"});
    assert_eq!(
        user.try_create("ContentDocumentLink", link(&contact, "X"))
            .await
            .map_err(code),
        Err("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST".to_string())
    );
    assert_eq!(
        user.try_create("ContentDocumentLink", link("003000000000000AAA", "V"))
            .await
            .map_err(code),
        Err("INVALID_CROSS_REFERENCE_KEY".to_string())
    );
    user.try_create("ContentDocumentLink", link(&contact, "V"))
        .await
        .unwrap();
    assert_eq!(
        user.try_create("ContentDocumentLink", link(&contact, "V"))
            .await
            .map_err(code),
        Err("DUPLICATE_VALUE".to_string())
    );
    user.delete("ContentNote", &note).await;
    let live_links = stack
        .sf
        .emu
        .records(ORG, "ContentDocumentLink", false)
        .unwrap();
    assert_eq!(
        live_links,
        Vec::<Value>::new(),
        "deleting the Note removes its links"
    );
}
