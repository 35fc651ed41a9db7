//! The call logger through its Lambda handler (SQS events), against the emulator
//! and moto: every call in Salesforce exactly once, on the right records.

use std::time::Duration;

use chrono::Utc;
use e2e::scenario::*;
use e2e::sf::ORG;
use e2e::stack::{Claims, api_event, body_json, build_app_with, faulty_app};
use serde_json::{Value, json};
use sf_emulator::{FailureKind, Fault};
use shared::calls::Settled;
use shared::domain::{CallState, ConnectionStatus, TenantId};
use shared::ports::{CallStore, ConnectionStore};

#[tokio::test]
async fn a_created_task_has_every_field() {
    let w = world().await;
    let response = log(&w, &[phone_call(&w.tenant, "call_created", "+33612345678")]).await;
    assert!(response.batch_item_failures.is_empty());
    let created = task_by_call_object(&w, "call_created");
    assert_eq!(created.len(), 1);
    let t = &created[0];
    assert_eq!(t["Subject"], "Call call_created");
    assert_eq!(t["TaskSubtype"], "Call");
    assert_eq!(t["CallType"], "Outbound");
    assert_eq!(t["CallDurationInSeconds"], 754);
    assert_eq!(t["Status"], "Completed");
    assert_eq!(
        t["ActivityDate"],
        json!(
            (Utc::now() - chrono::Duration::minutes(62))
                .format("%Y-%m-%d")
                .to_string()
        )
    );
    assert_eq!(t["WhoId"], json!(w.ids["jane"]));
    assert_eq!(
        t["WhatId"],
        json!(w.ids["opp_main"]),
        "the open opportunity where Jane is primary"
    );
    assert_eq!(t["OwnerId"], json!(w.rep), "the mapped host");
    let description = t["Description"].as_str().unwrap();
    assert!(description.contains("https://app.modjo.ai/calls/call_created"));
    assert!(description.contains("Outbound call · 12 min 34 s"));
    assert!(description.contains("Pricing and next steps."));

    let o = outcome(&w, "call_created").await;
    assert_eq!(o.state, CallState::Created);
    assert_eq!(o.task_id.as_deref(), t["Id"].as_str());
    // What the platform reads.
    let read = read_call(&w, "call_created").await;
    assert_eq!(read["state"], "created");
    assert_eq!(read["taskId"], t["Id"]);
    let linked: Vec<&str> = read["linked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["object"].as_str().unwrap())
        .collect();
    assert_eq!(linked, ["Contact", "Opportunity"]);
    assert_eq!(read["linked"][1]["name"], "Acme renewal");
}

#[tokio::test]
async fn the_dialers_task_is_enriched_once_and_its_text_kept() {
    let w = world().await;
    let before = tasks(&w).len();
    let body = phone_call(&w.tenant, "call_dialed", "+33 6 88 88 88 88");
    assert!(
        log(&w, std::slice::from_ref(&body))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(tasks(&w).len(), before, "no new Task");
    let dialer = w.stack.sf.emu.record(ORG, &w.ids["dialer"]).unwrap();
    let description = dialer["Description"].as_str().unwrap();
    assert!(
        description.starts_with("Recording: https://aircall.example/rec/42\n\n"),
        "{description}"
    );
    assert_eq!(
        description
            .matches("https://app.modjo.ai/calls/call_dialed")
            .count(),
        1
    );
    assert_eq!(
        dialer["CallObject"],
        Value::Null,
        "the dialer's own fields are left alone"
    );
    let o = outcome(&w, "call_dialed").await;
    assert_eq!(o.state, CallState::Enriched);
    assert_eq!(o.task_id.as_deref(), Some(w.ids["dialer"].as_str()));
    // Redelivered later (a duplicate): nothing changes.
    log(&w, &[body]).await;
    let again = w.stack.sf.emu.record(ORG, &w.ids["dialer"]).unwrap();
    assert_eq!(again["Description"], dialer["Description"]);
    // A second Modjo call in the same window does not take the enriched Task.
    log(
        &w,
        &[phone_call(&w.tenant, "call_dialed_2", "+33 6 88 88 88 88")],
    )
    .await;
    assert_eq!(
        task_by_call_object(&w, "call_dialed_2").len(),
        1,
        "created, not stolen"
    );
}

#[tokio::test]
async fn ambiguity_is_resolved_by_the_policy() {
    let w = world().await;
    let bodies = vec![
        phone_call(&w.tenant, "call_two_contacts", "+33655555555"),
        phone_call(&w.tenant, "call_lead", "+33677777777"),
        phone_call(&w.tenant, "call_account", "+33140000001"),
    ];
    assert!(log(&w, &bodies).await.batch_item_failures.is_empty());
    let two = &task_by_call_object(&w, "call_two_contacts")[0];
    assert_eq!(
        two["WhoId"],
        json!(w.ids["recent"]),
        "the most recently modified contact"
    );
    assert_eq!(
        two["WhatId"],
        json!(w.ids["globex"]),
        "no opportunity: the contact's account"
    );
    let lead = &task_by_call_object(&w, "call_lead")[0];
    assert_eq!(lead["WhoId"], json!(w.ids["lead"]));
    assert_eq!(lead["WhatId"], Value::Null, "a lead has no related record");
    let account = &task_by_call_object(&w, "call_account")[0];
    assert_eq!(account["WhoId"], Value::Null);
    assert_eq!(account["WhatId"], json!(w.ids["globex"]));
    assert!(
        outcome(&w, "call_two_contacts")
            .await
            .reason
            .unwrap()
            .contains("among 2 matches")
    );
}

#[tokio::test]
async fn meetings_match_by_email_and_domain_and_internal_people_are_not_contacts() {
    let w = world().await;
    let meeting = |id: &str, emails: &[&str], internal: &str| {
        let mut participants: Vec<Value> = emails
            .iter()
            .map(|e| json!({"role": "external", "email": e}))
            .collect();
        participants.push(json!({"role": "internal", "userId": "usr_12", "email": internal}));
        call(&w.tenant, id, "meeting", json!(participants))
    };
    let bodies = vec![
        meeting("meet_email", &["JANE@acme.com"], "bob@modjo.ai"),
        meeting("meet_domain", &["someone.new@acme.com"], "bob@modjo.ai"),
        // Jane's address, but on an internal participant.
        meeting("meet_internal_only", &[], "jane@acme.com"),
    ];
    assert!(log(&w, &bodies).await.batch_item_failures.is_empty());
    // An external participant's email: Jane (CallType none for a meeting).
    let t = &task_by_call_object(&w, "meet_email")[0];
    assert_eq!(t["WhoId"], json!(w.ids["jane"]));
    assert_eq!(t["CallType"], Value::Null);
    // Unknown person at acme.com: the account by domain.
    let t = &task_by_call_object(&w, "meet_domain")[0];
    assert_eq!(t["WhoId"], Value::Null);
    assert_eq!(t["WhatId"], json!(w.ids["acme"]));
    // Jane's email on an internal participant is never matched as a contact.
    assert!(task_by_call_object(&w, "meet_internal_only").is_empty());
    assert_eq!(
        outcome(&w, "meet_internal_only").await.state,
        CallState::Unmatched
    );
}

#[tokio::test]
async fn three_concurrent_deliveries_give_one_task() {
    let w = world().await;
    let body = phone_call(&w.tenant, "call_thrice", "+33612345678");
    let (a, b, c) = tokio::join!(
        log(&w, std::slice::from_ref(&body)),
        log(&w, std::slice::from_ref(&body)),
        log(&w, std::slice::from_ref(&body))
    );
    let retried = [a, b, c]
        .iter()
        .map(|r| r.batch_item_failures.len())
        .sum::<usize>();
    // Losers are retried later; by then the call is logged.
    for _ in 0..retried {
        assert!(
            log(&w, std::slice::from_ref(&body))
                .await
                .batch_item_failures
                .is_empty()
        );
    }
    assert_eq!(task_by_call_object(&w, "call_thrice").len(), 1);
    assert_eq!(outcome(&w, "call_thrice").await.state, CallState::Created);
}

#[tokio::test]
async fn a_crash_after_the_salesforce_write_makes_no_duplicate() {
    let w = world().await;
    let (faulty, app) = faulty_app(&w.stack.aws, &w.stack.sf);
    let body = phone_call(&w.tenant, "call_crash", "+33612345678");
    faulty.crash_on_outcome_write(1);
    let first = log_with(&app, &w.stack.aws, std::slice::from_ref(&body)).await;
    assert_eq!(
        first.batch_item_failures.len(),
        1,
        "the outcome was not saved: SQS redelivers"
    );
    assert_eq!(
        task_by_call_object(&w, "call_crash").len(),
        1,
        "the Task exists in Salesforce"
    );
    // The redelivery (after the claim expired) finds the Task by CallObject.
    expire_claim(&w, "call_crash").await;
    let second = log_with(&app, &w.stack.aws, &[body]).await;
    assert!(second.batch_item_failures.is_empty());
    assert_eq!(
        task_by_call_object(&w, "call_crash").len(),
        1,
        "no duplicate"
    );
    let o = outcome(&w, "call_crash").await;
    assert_eq!(o.state, CallState::Created);
    assert_eq!(
        o.task_id.as_deref(),
        task_by_call_object(&w, "call_crash")[0]["Id"].as_str()
    );
}

#[tokio::test]
async fn a_contact_created_after_the_last_sync_is_found_by_sosl() {
    let w = world().await;
    let fresh = w
        .stack
        .sf
        .seed(vec![(
            "Contact",
            json!({"LastName": "Fresh", "MobilePhone": "07 81 23 45 67"}),
        )])
        .remove(0);
    w.stack.sf.emu.reset_counters(ORG).unwrap();
    assert!(
        log(&w, &[phone_call(&w.tenant, "call_fresh", "+33781234567")])
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(
        task_by_call_object(&w, "call_fresh")[0]["WhoId"],
        json!(fresh)
    );
    assert_eq!(w.stack.sf.calls("search"), 1);
}

#[tokio::test]
async fn invalid_messages_are_recorded_and_the_rest_of_the_batch_succeeds() {
    let w = world().await;
    let t = w.tenant.as_str();
    let huge = json!({"version": 1, "tenantId": t, "callId": "call_huge", "url": "https://app.modjo.ai/calls/x",
        "direction": "outbound", "startedAt": "2026-11-28T10:00:00Z", "durationSeconds": 5, "participants": [],
        "summary": "x".repeat(1024 * 1024)}).to_string();
    let hostile = call(
        &w.tenant,
        "call_hostile",
        "outbound",
        json!([
            {"role": "external", "name": "x' OR Name != '", "phone": "0612} RETURNING User(Id", "email": "a'b@x.com\\' OR 1=1"},
            {"role": "external", "phone": "\\\" OR * AND NOT {x}", "email": "%_%@%.com"},
        ]),
    );
    let bodies = vec![
        "{not json".to_string(),
        json!({"version": 1, "tenantId": t, "callId": "call_missing"}).to_string(),
        phone_call(&TenantId::parse("nobody-knows").unwrap(), "call_unknown_tenant", "+33612345678"),
        json!({"version": 1, "tenantId": t, "callId": "call_absurd", "url": "https://app.modjo.ai/calls/a",
               "direction": "outbound", "startedAt": "2026-11-28T10:00:00Z", "durationSeconds": -42, "participants": []}).to_string(),
        huge,
        hostile,
        phone_call(&w.tenant, "call_fine", "+33612345678"),
    ];
    let response = log(&w, &bodies).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "nothing retried forever: {:?}",
        response.batch_item_failures
    );
    assert_eq!(
        task_by_call_object(&w, "call_fine").len(),
        1,
        "the valid call is logged"
    );
    // A call a refused message names, and that had no outcome, is recorded as failed.
    let missing = outcome(&w, "call_missing").await;
    assert_eq!(missing.state, CallState::Failed);
    assert!(
        missing.reason.as_deref().unwrap().contains("missing field"),
        "{missing:?}"
    );
    assert!(
        missing.message.unwrap().contains("call_missing"),
        "the message is kept"
    );
    let absurd = outcome(&w, "call_absurd").await;
    assert_eq!(absurd.state, CallState::Failed);
    assert!(
        absurd
            .reason
            .as_deref()
            .unwrap()
            .contains("durationSeconds"),
        "{absurd:?}"
    );
    let huge = outcome(&w, "call_huge").await;
    assert_eq!(huge.state, CallState::Failed);
    assert!(huge.reason.unwrap().contains("exceeds"));
    // Injection strings: valid queries, nothing matched, nothing broken.
    assert_eq!(
        outcome(&w, "call_hostile").await.state,
        CallState::Unmatched
    );
    // Every refused message reaches the dead-letter queue once, with its reason.
    let dlq = &w.stack.aws.resources.dead_letter_queues[&w.stack.aws.resources.call_events_queue];
    let dead = w.stack.aws.drain_with_reasons(dlq).await;
    let reason_of = |needle: &str| {
        let found: Vec<&(String, String)> =
            dead.iter().filter(|(b, _)| b.contains(needle)).collect();
        assert_eq!(found.len(), 1, "{needle}: {dead:?}");
        found[0].1.clone()
    };
    assert_eq!(dead.len(), 5, "{dead:?}");
    assert!(reason_of("{not json").starts_with("not JSON"));
    assert!(reason_of("call_missing").contains("missing field"));
    assert!(reason_of("call_unknown_tenant").contains("unknown tenant"));
    assert!(reason_of("call_absurd").contains("durationSeconds"));
    assert!(reason_of("call_huge").contains("exceeds"));
}

#[tokio::test]
async fn a_malformed_duplicate_changes_nothing_recorded() {
    let w = world().await;
    // A call parked before the tenant could log it, with its message.
    let mut conn = w
        .stack
        .aws
        .store()
        .get_connection(&w.tenant)
        .await
        .unwrap()
        .unwrap();
    conn.status = ConnectionStatus::NeedsReauth;
    w.stack.aws.store().save_connection(&conn).await.unwrap();
    let body = phone_call(&w.tenant, "call_parked", "+33612345678");
    assert!(
        log(&w, std::slice::from_ref(&body))
            .await
            .batch_item_failures
            .is_empty()
    );
    let parked = outcome(&w, "call_parked").await;
    assert_eq!(parked.state, CallState::Waiting);
    // A copy with the same callId that fails validation, and a logged call's copy.
    let mut bad: Value = serde_json::from_str(&body).unwrap();
    bad["version"] = json!(2);
    let logged = phone_call(&w.tenant, "call_done", "+33612345678");
    let mut conn = w
        .stack
        .aws
        .store()
        .get_connection(&w.tenant)
        .await
        .unwrap()
        .unwrap();
    conn.status = ConnectionStatus::Connected;
    w.stack.aws.store().save_connection(&conn).await.unwrap();
    assert!(
        log(&w, std::slice::from_ref(&logged))
            .await
            .batch_item_failures
            .is_empty()
    );
    let done = outcome(&w, "call_done").await;
    let mut bad_done: Value = serde_json::from_str(&logged).unwrap();
    bad_done["durationSeconds"] = json!(-1);
    let response = log(&w, &[bad.to_string(), bad_done.to_string()]).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        outcome(&w, "call_parked").await,
        parked,
        "the parked call is untouched"
    );
    assert_eq!(
        outcome(&w, "call_done").await,
        done,
        "the logged call is untouched"
    );
    let dlq = &w.stack.aws.resources.dead_letter_queues[&w.stack.aws.resources.call_events_queue];
    let dead = w.stack.aws.drain_with_reasons(dlq).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(
        dead.iter().any(|(_, r)| r == "unsupported version 2"),
        "{dead:?}"
    );
}

#[tokio::test]
async fn a_session_expiring_and_a_503_mid_batch_are_survived() {
    let w = world().await;
    w.stack.sf.emu.inject(ORG, Fault::ExpireSessions).unwrap();
    assert!(
        log(&w, &[phone_call(&w.tenant, "call_expired", "+33612345678")])
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(task_by_call_object(&w, "call_expired").len(), 1);
    w.stack
        .sf
        .emu
        .inject(
            ORG,
            Fault::FailNext {
                count: 2,
                kind: FailureKind::ServerUnavailable,
            },
        )
        .unwrap();
    assert!(
        log(&w, &[phone_call(&w.tenant, "call_503", "+33612345678")])
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(task_by_call_object(&w, "call_503").len(), 1);
    // A failure that outlasts the retries, while Salesforce still answers other
    // requests: the call is handed back to SQS, with a back-off, not lost.
    let task_query = Fault::FailNextOf {
        api: "query".into(),
        count: 50,
        kind: FailureKind::ServerUnavailable,
    };
    // A contact newer than the last sync: found by SOSL, which answers.
    w.stack.sf.seed(vec![(
        "Contact",
        json!({"LastName": "Fresh", "MobilePhone": "07 81 23 45 67"}),
    )]);
    w.stack.sf.emu.inject(ORG, task_query).unwrap();
    let body = phone_call(&w.tenant, "call_flaky", "+33781234567");
    let response = log(&w, std::slice::from_ref(&body)).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(outcome(&w, "call_flaky").await.state, CallState::InProgress);
    w.stack.sf.emu.inject(ORG, Fault::Clear).unwrap();
    assert!(log(&w, &[body]).await.batch_item_failures.is_empty());
    assert_eq!(task_by_call_object(&w, "call_flaky").len(), 1);
}

#[tokio::test]
async fn a_revoked_token_parks_the_call_until_the_reconnect_replays_it() {
    let w = world().await;
    w.stack
        .sf
        .emu
        .inject(ORG, Fault::RevokeRefreshTokens)
        .unwrap();
    let body = phone_call(&w.tenant, "call_parked", "+33612345678");
    assert!(
        log(&w, std::slice::from_ref(&body))
            .await
            .batch_item_failures
            .is_empty(),
        "parked, acknowledged"
    );
    assert_eq!(outcome(&w, "call_parked").await.state, CallState::Waiting);
    let c = w
        .stack
        .aws
        .store()
        .get_connection(&w.tenant)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, ConnectionStatus::NeedsReauth);
    // The next call waits without touching Salesforce.
    w.stack.sf.emu.reset_counters(ORG).unwrap();
    log(
        &w,
        &[phone_call(&w.tenant, "call_parked_2", "+33612345678")],
    )
    .await;
    assert_eq!(w.stack.sf.total_calls(), 0);

    // The admin reconnects through the consent page; the callback replays.
    let connect = w
        .stack
        .api(api_event(
            "POST",
            "/integrations/salesforce/connect",
            None,
            Claims::admin(w.tenant.as_str()),
        ))
        .await;
    let url = body_json(&connect)["authorizeUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let back = e2e::stack::consent(&url, "admin@acme.test", "password", "Allow")
        .await
        .unwrap();
    let done = w.stack.callback(e2e::stack::callback_event(&back)).await;
    assert!(
        e2e::stack::location(&done)
            .as_str()
            .contains("salesforce=connected")
    );
    let replayed = w
        .stack
        .aws
        .drain(&w.stack.aws.resources.call_events_queue)
        .await;
    assert_eq!(replayed.len(), 2);
    assert!(log(&w, &replayed).await.batch_item_failures.is_empty());
    assert_eq!(task_by_call_object(&w, "call_parked").len(), 1);
    assert_eq!(task_by_call_object(&w, "call_parked_2").len(), 1);
    assert_eq!(outcome(&w, "call_parked").await.state, CallState::Created);
}

#[tokio::test]
async fn over_budget_calls_wait_and_the_sync_replays_them() {
    let w = world().await;
    // The org's usage climbed to 96 % since the last sync (a job just recorded it).
    w.stack
        .sf
        .emu
        .inject(ORG, Fault::SetApiUsage { used: 96_000 })
        .unwrap();
    let mut c = w
        .stack
        .aws
        .store()
        .get_connection(&w.tenant)
        .await
        .unwrap()
        .unwrap();
    c.api_usage = Some(shared::domain::ApiUsage {
        used: 96_000,
        max: 100_000,
        observed_at: Utc::now(),
    });
    w.stack.aws.store().save_connection(&c).await.unwrap();
    w.stack.sf.emu.reset_counters(ORG).unwrap();
    assert!(
        log(&w, &[phone_call(&w.tenant, "call_budget", "+33612345678")])
            .await
            .batch_item_failures
            .is_empty()
    );
    let o = outcome(&w, "call_budget").await;
    assert_eq!(o.state, CallState::Waiting);
    assert!(o.reason.unwrap().contains("96%"));
    assert_eq!(w.stack.sf.total_calls(), 0, "no API call spent");
    // Usage drops; the next sync replays the waiting call.
    w.stack
        .sf
        .emu
        .inject(ORG, Fault::SetApiUsage { used: 10 })
        .unwrap();
    let mut c = w
        .stack
        .aws
        .store()
        .get_connection(&w.tenant)
        .await
        .unwrap()
        .unwrap();
    c.api_usage = None;
    w.stack.aws.store().save_connection(&c).await.unwrap();
    sync(&w.stack, &w.tenant).await;
    let replayed = w
        .stack
        .aws
        .drain(&w.stack.aws.resources.call_events_queue)
        .await;
    assert_eq!(replayed.len(), 1);
    let fresh = build_app_with(
        &w.stack.aws,
        &w.stack.sf,
        w.stack.aws.store(),
        Duration::from_secs(600),
        e2e::stack::CALLBACK_URL,
    );
    assert!(
        log_with(&fresh, &w.stack.aws, &replayed)
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(outcome(&w, "call_budget").await.state, CallState::Created);
}

#[tokio::test]
async fn a_batch_shares_one_lookup_and_one_write() {
    let w = world().await;
    let numbers = [
        "+33612345678",
        "+33655555555",
        "+33677777777",
        "+33140000001",
        "+33688888888",
    ];
    let bodies: Vec<String> = (0..10)
        .map(|i| {
            phone_call(
                &w.tenant,
                &format!("call_batch_{i}"),
                numbers[i % numbers.len()],
            )
        })
        .collect();
    w.stack.sf.emu.reset_counters(ORG).unwrap();
    assert!(log(&w, &bodies).await.batch_item_failures.is_empty());
    // One lookup query, then the new Tasks and the dialer's enriched Task as two
    // collections in one composite request.
    assert_eq!(w.stack.sf.calls("query"), 1);
    assert_eq!(w.stack.sf.calls("composite"), 1);
    assert_eq!(w.stack.sf.total_calls(), 2, "0.2 API calls per call");
    let mut states = Vec::new();
    for i in 0..10 {
        states.push(outcome(&w, &format!("call_batch_{i}")).await.state);
    }
    let enriched = states.iter().filter(|s| **s == CallState::Enriched).count();
    let created = states.iter().filter(|s| **s == CallState::Created).count();
    assert_eq!((created, enriched), (9, 1), "{states:?}");
    assert_eq!(
        task_by_call_object(&w, "call_batch_1").len(),
        1,
        "a created call has its Task"
    );
}

/// A batch of the deployed size (100) where every call ends its own way: new
/// Tasks on contacts, leads and accounts, the dialer's Task enriched, unknown
/// numbers, calls already logged, calls another invocation holds, Tasks a
/// validation rule refuses and messages that are not calls. One call's end
/// never changes another's, and the batch still costs one lookup, one search
/// and one write.
#[tokio::test]
async fn a_deployed_size_batch_ends_every_call_its_own_way() {
    let w = world().await;
    let store = w.stack.aws.store();
    // Five calls logged earlier: their copies in the batch are duplicates.
    let logged: Vec<String> = (0..5)
        .map(|i| phone_call(&w.tenant, &format!("mix_logged_{i}"), "+33612345678"))
        .collect();
    assert!(log(&w, &logged).await.batch_item_failures.is_empty());
    // Three calls another invocation is logging right now.
    for i in 0..3 {
        let now = Utc::now();
        store
            .save_outcome(
                &w.tenant,
                &shared::domain::CallOutcome {
                    claimed_until: Some(now + chrono::Duration::minutes(5)),
                    ..shared::domain::CallOutcome::new(
                        &format!("mix_held_{i}"),
                        CallState::InProgress,
                        now,
                    )
                },
            )
            .await
            .unwrap();
    }
    // A validation rule of the org refuses three calls' Tasks.
    w.stack
        .sf
        .emu
        .inject(
            ORG,
            Fault::RecordError(sf_emulator::RecordFault {
                object: "Task".into(),
                field: Some("CallObject".into()),
                contains: Some("mix_refused".into()),
                status_code: "FIELD_CUSTOM_VALIDATION_EXCEPTION".into(),
                ..Default::default()
            }),
        )
        .unwrap();

    let numbers = ["+33612345678", "+33677777777", "+33140000001"];
    let mut bodies: Vec<String> = (0..72)
        .map(|i| phone_call(&w.tenant, &format!("mix_new_{i}"), numbers[i % 3]))
        .collect();
    bodies.push(phone_call(&w.tenant, "mix_dialed", "+33 6 88 88 88 88"));
    bodies.extend((0..10).map(|i| {
        phone_call(
            &w.tenant,
            &format!("mix_unknown_{i}"),
            &format!("+3361999000{i}"),
        )
    }));
    bodies.extend(logged.iter().cloned());
    bodies.extend((0..3).map(|i| phone_call(&w.tenant, &format!("mix_held_{i}"), "+33612345678")));
    bodies
        .extend((0..3).map(|i| phone_call(&w.tenant, &format!("mix_refused_{i}"), "+33612345678")));
    let t = w.tenant.as_str();
    bodies.extend([
        "{not json".to_string(),
        json!({"version": 1, "tenantId": t, "callId": "mix_missing"}).to_string(),
        json!({"version": 7, "tenantId": t, "callId": "mix_version"}).to_string(),
        phone_call(&TenantId::parse("nobody-knows").unwrap(), "mix_stranger", "+33612345678"),
        json!({"version": 1, "tenantId": t, "callId": "mix_absurd", "url": "https://app.modjo.ai/calls/a",
               "direction": "outbound", "startedAt": "2026-11-28T10:00:00Z", "durationSeconds": -1, "participants": []}).to_string(),
        json!([1, 2, 3]).to_string(),
    ]);
    assert_eq!(bodies.len(), 100, "the template's batch size");
    let tasks_before = tasks(&w).len();
    w.stack.sf.emu.reset_counters(ORG).unwrap();

    let response = log(&w, &bodies).await;

    // Only the calls another invocation holds come back, to be retried.
    let mut retried: Vec<usize> = response
        .batch_item_failures
        .iter()
        .map(|f| {
            let id = &f.item_identifier;
            id.split('-').nth(1).unwrap().parse().unwrap()
        })
        .collect();
    retried.sort();
    assert_eq!(retried, [88, 89, 90]);
    for i in 0..72 {
        let o = outcome(&w, &format!("mix_new_{i}")).await;
        assert_eq!(o.state, CallState::Created, "{o:?}");
        assert_eq!(task_by_call_object(&w, &format!("mix_new_{i}")).len(), 1);
    }
    assert_eq!(outcome(&w, "mix_dialed").await.state, CallState::Enriched);
    for i in 0..10 {
        let o = outcome(&w, &format!("mix_unknown_{i}")).await;
        assert_eq!(o.state, CallState::Unmatched, "{o:?}");
    }
    for i in 0..5 {
        assert_eq!(
            task_by_call_object(&w, &format!("mix_logged_{i}")).len(),
            1,
            "a duplicate makes no second Task"
        );
    }
    for i in 0..3 {
        let held = outcome(&w, &format!("mix_held_{i}")).await;
        assert_eq!(held.state, CallState::InProgress, "left to its holder");
        assert!(task_by_call_object(&w, &format!("mix_held_{i}")).is_empty());
        let refused = outcome(&w, &format!("mix_refused_{i}")).await;
        assert_eq!(refused.state, CallState::Failed);
        assert!(
            refused
                .reason
                .as_deref()
                .unwrap()
                .contains("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
            "{refused:?}"
        );
    }
    assert_eq!(
        tasks(&w).len(),
        tasks_before + 72,
        "72 new Tasks; the dialer's enriched; nothing for the rest"
    );
    // The refused Tasks and the messages that are not calls reach the
    // dead-letter queue once each.
    let dlq = &w.stack.aws.resources.dead_letter_queues[&w.stack.aws.resources.call_events_queue];
    let dead = w.stack.aws.drain_with_reasons(dlq).await;
    assert_eq!(dead.len(), 9, "{dead:?}");
    // One lookup query, one SOSL search for the unknown numbers, one composite
    // write of the creates and the enriched Task.
    assert_eq!(w.stack.sf.calls("query"), 1);
    assert_eq!(w.stack.sf.calls("search"), 1);
    assert_eq!(w.stack.sf.calls("composite"), 1);
    assert_eq!(w.stack.sf.total_calls(), 3);
}

/// What a batch reports about where its calls were left (the dashboard's calls
/// by outcome) is what the store and the dead-letter queue hold.
#[tokio::test]
async fn calls_are_counted_where_they_were_left() {
    let w = world().await;
    let bodies = vec![
        phone_call(&w.tenant, "call_counted", "+33612345678"),
        phone_call(&w.tenant, "call_nobody", "+33 1 99 99 99 99"),
        json!({"version": 1, "tenantId": w.tenant, "callId": "call_broken"}).to_string(),
        "{not json".to_string(),
    ];
    let aws = &w.stack.aws;
    let dlq_url = &aws.resources.dead_letter_queues[&aws.resources.call_events_queue];
    let dlq = aws.queue(dlq_url);
    let source = aws.queue(&aws.resources.call_events_queue);
    let logger = w.stack.app.call_logger(&source, &dlq);
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_value(e2e::stack::sqs_event("call-events", &bodies)).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    logger
        .log_batch(&shared::batch::deliveries(event), deadline)
        .await;
    let counted = logger.take_settled();

    // A refused message counts where it went: the dead-letter queue.
    let mut held = std::collections::HashMap::new();
    for call_id in ["call_counted", "call_nobody"] {
        *held
            .entry(Settled::State(outcome(&w, call_id).await.state))
            .or_insert(0u64) += 1;
    }
    held.insert(Settled::DeadLettered, aws.drain(dlq_url).await.len() as u64);
    assert_eq!(counted, held);
}
