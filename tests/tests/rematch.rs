//! Re-matching (issue 19), against the emulator and moto: calls that found no
//! record, or only an account or a lead, are matched again when the sync brings
//! the records they match, through SOQL or Change Data Capture.

use std::time::Duration;

use e2e::faulty::{After, FaultyStore};
use e2e::scenario::*;
use e2e::sf::{ORG, WorldOptions};
use e2e::stack::{Claims, api_event, body_json, build_app_with, status, sync_job_event};
use serde_json::{Value, json};
use shared::domain::{CallState, SyncStatus};
use shared::ports::{CallStore, CursorStore};
use shared::sync::handler::{SyncOptions, handle};
use shared::sync::objects;
use shared::sync::{Plan, Source};

async fn rematch_status(w: &World) -> SyncStatus {
    w.stack
        .aws
        .store()
        .sync_statuses(&w.tenant)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.object == "rematch")
        .expect("a re-match status")
}

async fn unmatched(w: &World, call_id: &str, phone: &str) {
    log(w, &[phone_call(&w.tenant, call_id, phone)]).await;
    assert_eq!(outcome(w, call_id).await.state, CallState::Unmatched);
    assert!(task_by_call_object(w, call_id).is_empty());
}

#[tokio::test]
async fn an_unmatched_call_gets_its_task_when_the_sync_brings_its_contact() {
    let w = world().await;
    unmatched(&w, "call_late", "+33611223344").await;
    let contact = w
        .stack
        .sf
        .user()
        .create(
            "Contact",
            json!({"LastName": "Late", "Phone": "06 11 22 33 44", "AccountId": w.ids["acme"]}),
        )
        .await;
    let searches = w.stack.sf.calls("search");
    let creates = w.stack.sf.calls("collectionsCreate");
    sync(&w.stack, &w.tenant).await;

    let task = task_by_call_object(&w, "call_late");
    assert_eq!(task.len(), 1, "the Task is created");
    assert_eq!(task[0]["WhoId"], json!(contact));
    assert_eq!(
        task[0]["WhatId"],
        json!(w.ids["acme"]),
        "the contact's account"
    );
    assert_eq!(task[0]["OwnerId"], json!(w.rep), "the mapped host");
    assert_eq!(
        w.stack.sf.calls("search"),
        searches,
        "candidates come from the index, not from a search"
    );
    assert_eq!(
        w.stack.sf.calls("collectionsCreate"),
        creates + 1,
        "one collections create"
    );
    let o = outcome(&w, "call_late").await;
    assert_eq!(o.state, CallState::Created);
    assert_eq!(o.who_id.as_deref(), Some(contact.as_str()));
    // The platform sees when and why.
    let view = read_call(&w, "call_late").await;
    assert_eq!(view["state"], "created");
    assert_eq!(view["rematches"].as_array().unwrap().len(), 1);
    let reason = view["rematches"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("Contact matched"), "{reason}");
    assert!(view["rematches"][0]["at"].is_string());
    let status = rematch_status(&w).await;
    assert_eq!(status.records_written, 1);
    assert!(
        status.api_calls >= 2,
        "a Task query and a create: {status:?}"
    );

    // The next sync does not log it twice.
    sync(&w.stack, &w.tenant).await;
    assert_eq!(task_by_call_object(&w, "call_late").len(), 1);
    assert_eq!(outcome(&w, "call_late").await.rematches.len(), 1);
}

#[tokio::test]
async fn calls_older_than_the_tenants_window_are_not_re_matched() {
    let w = world().await;
    unmatched(&w, "call_old", "+33611223355").await;
    let put = |days: Value| {
        api_event(
            "PUT",
            "/integrations/salesforce/settings",
            Some(json!({
                "consumerKey": w.stack.sf.app.consumer_key,
                "instanceUrl": w.stack.sf.base_url(),
                "rematchDays": days,
            })),
            Claims::admin(w.tenant.as_str()),
        )
    };
    let refused = w.stack.api(put(json!(91))).await;
    assert_eq!(status(&refused), 400, "{:?}", body_json(&refused));
    assert_eq!(body_json(&refused)["field"], "rematchDays");
    // The tenant re-matches for 0 days: the call (an hour old) is out of the window.
    let saved = w.stack.api(put(json!(0))).await;
    assert_eq!(status(&saved), 200, "{:?}", body_json(&saved));
    assert_eq!(body_json(&saved)["rematchDays"], 0);
    w.stack
        .sf
        .user()
        .create(
            "Contact",
            json!({"LastName": "Old", "Phone": "06 11 22 33 55"}),
        )
        .await;
    sync(&w.stack, &w.tenant).await;
    assert!(task_by_call_object(&w, "call_old").is_empty());
    assert_eq!(outcome(&w, "call_old").await.state, CallState::Unmatched);
}

#[tokio::test]
async fn an_account_only_task_moves_to_the_better_contact_unless_changed_in_salesforce() {
    let w = world().await;
    // Two calls to Globex's switchboard: Task on the account only.
    let bodies = [
        phone_call(&w.tenant, "call_switchboard", "+33140000001"),
        phone_call(&w.tenant, "call_repointed", "+33140000001"),
    ];
    log(&w, &bodies).await;
    for call in ["call_switchboard", "call_repointed"] {
        let o = outcome(&w, call).await;
        assert_eq!(o.state, CallState::Created);
        assert_eq!(o.who_id, None);
        assert_eq!(o.what_id.as_deref(), Some(w.ids["globex"].as_str()));
    }
    // A rep re-points the second Task by hand in Salesforce.
    let repointed = task_by_call_object(&w, "call_repointed")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    w.stack
        .sf
        .user()
        .update("Task", &repointed, json!({"WhoId": w.ids["bob"]}))
        .await;
    // Then a contact with the switchboard's number appears.
    let reception = w
        .stack
        .sf
        .user()
        .create(
            "Contact",
            json!({"LastName": "Reception", "Phone": "+33 1 40 00 00 01", "AccountId": w.ids["globex"]}),
        )
        .await;
    sync(&w.stack, &w.tenant).await;

    let moved = &task_by_call_object(&w, "call_switchboard")[0];
    assert_eq!(
        moved["WhoId"],
        json!(reception),
        "a contact beats the account"
    );
    assert_eq!(moved["WhatId"], json!(w.ids["globex"]));
    let o = outcome(&w, "call_switchboard").await;
    assert_eq!(o.who_id.as_deref(), Some(reception.as_str()));
    assert_eq!(o.rematches.len(), 1);
    assert_eq!(o.rematches[0].from_who_id, None);
    assert_eq!(
        o.rematches[0].from_what_id.as_deref(),
        Some(w.ids["globex"].as_str())
    );

    let kept = &task_by_call_object(&w, "call_repointed")[0];
    assert_eq!(
        kept["WhoId"],
        json!(w.ids["bob"]),
        "the rep's choice stands"
    );
    let o = outcome(&w, "call_repointed").await;
    assert!(o.rematches.is_empty());
    assert_eq!(o.who_id.as_deref(), Some(w.ids["bob"].as_str()));
    let kept_match = o.modjo_match.clone().expect("Modjo's match is kept aside");
    assert_eq!(kept_match.who_id.as_deref(), Some(reception.as_str()));
    assert!(!o.can_improve(), "and it is not re-matched again");
}

#[tokio::test]
async fn a_lead_is_not_replaced_by_another_lead_but_by_a_contact() {
    let w = world().await;
    log(&w, &[phone_call(&w.tenant, "call_lead", "+33677777777")]).await;
    let o = outcome(&w, "call_lead").await;
    assert_eq!(o.who_id.as_deref(), Some(w.ids["lead"].as_str()));
    // A second, newer lead with that number: not a better match.
    w.stack
        .sf
        .user()
        .create(
            "Lead",
            json!({"LastName": "Newer", "Company": "Initech", "Phone": "+33 6 77 77 77 77"}),
        )
        .await;
    sync(&w.stack, &w.tenant).await;
    let task = &task_by_call_object(&w, "call_lead")[0];
    assert_eq!(
        task["WhoId"],
        json!(w.ids["lead"]),
        "a lead for a lead: no change"
    );
    assert!(outcome(&w, "call_lead").await.rematches.is_empty());
    // A contact with that number: better.
    let contact = w
        .stack
        .sf
        .user()
        .create(
            "Contact",
            json!({"LastName": "Prospect", "Phone": "+33 6 77 77 77 77", "AccountId": w.ids["acme"]}),
        )
        .await;
    sync(&w.stack, &w.tenant).await;
    let task = &task_by_call_object(&w, "call_lead")[0];
    assert_eq!(task["WhoId"], json!(contact));
    assert_eq!(outcome(&w, "call_lead").await.rematches.len(), 1);
}

#[tokio::test]
async fn a_dialers_task_is_never_re_pointed() {
    let w = world().await;
    log(
        &w,
        &[phone_call(&w.tenant, "call_dialed", "+33 6 88 88 88 88")],
    )
    .await;
    assert_eq!(outcome(&w, "call_dialed").await.state, CallState::Enriched);
    let before = w.stack.sf.emu.record(ORG, &w.ids["dialer"]).unwrap();
    w.stack
        .sf
        .user()
        .update("Contact", &w.ids["bob"], json!({"Title": "CFO"}))
        .await;
    sync(&w.stack, &w.tenant).await;
    let after = w.stack.sf.emu.record(ORG, &w.ids["dialer"]).unwrap();
    assert_eq!(after["WhoId"], before["WhoId"]);
    assert_eq!(after["LastModifiedDate"], before["LastModifiedDate"]);
}

#[tokio::test]
async fn an_unmatched_call_is_re_matched_when_its_contact_comes_by_change_data_capture() {
    let w = world_with(WorldOptions {
        cdc: Some(vec![
            "Contact".into(),
            "Opportunity".into(),
            "OpportunityContactRole".into(),
        ]),
        ..WorldOptions::default()
    })
    .await;
    w.stack.sf.emu.set_pubsub_keepalive(Duration::from_secs(1));
    let jobs = w.stack.aws.queue(&w.stack.aws.resources.sync_jobs_queue);
    let mut syncer = w.stack.app.syncer(&jobs);
    syncer.plan = Plan {
        objects: objects::ALL
            .iter()
            .map(|o| {
                let cdc = ["Contact", "Opportunity", "OpportunityContactRole"].contains(&o.key);
                (*o, if cdc { Source::Cdc } else { Source::Soql })
            })
            .collect(),
    };
    let run = || async {
        let answer = handle(
            &w.stack.app,
            &syncer,
            sync_job_event(&w.tenant, Duration::from_secs(300)),
            SyncOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(answer["batchItemFailures"], json!([]));
    };
    // The first job subscribes (and re-syncs through SOQL once).
    run().await;
    unmatched(&w, "call_cdc", "+33611223366").await;
    let contact = w
        .stack
        .sf
        .user()
        .create(
            "Contact",
            json!({"LastName": "Streamed", "Phone": "06 11 22 33 66"}),
        )
        .await;
    run().await;
    let statuses = w.stack.aws.store().sync_statuses(&w.tenant).await.unwrap();
    let contact_status = statuses.iter().find(|s| s.object == "Contact").unwrap();
    assert_eq!(
        contact_status.source,
        Some(shared::domain::ChangeSource::Cdc),
        "{contact_status:?}"
    );
    assert_eq!(contact_status.api_calls, 0, "no REST call for the contact");
    let task = task_by_call_object(&w, "call_cdc");
    assert_eq!(task.len(), 1);
    assert_eq!(task[0]["WhoId"], json!(contact));
    assert_eq!(outcome(&w, "call_cdc").await.rematches.len(), 1);
}

/// A re-match never overwrites an outcome written meanwhile with another match.
#[tokio::test]
async fn an_outcome_changed_during_the_re_match_is_not_overwritten() {
    let w = world().await;
    log(
        &w,
        &[
            phone_call(&w.tenant, "call_raced", "+33140000001"),
            phone_call(&w.tenant, "call_commented", "+33140000001"),
        ],
    )
    .await;
    w.stack
        .sf
        .user()
        .create(
            "Contact",
            json!({"LastName": "Reception", "Phone": "+33 1 40 00 00 01", "AccountId": w.ids["globex"]}),
        )
        .await;
    let store = FaultyStore::new(w.stack.aws.store());
    let app = build_app_with(
        &w.stack.aws,
        &w.stack.sf,
        store.clone(),
        Duration::from_secs(600),
        "https://app.modjo.test/callback",
    );
    // Right after re-matching read its calls, another writer changes both: one
    // is linked elsewhere, the other only gets a comment flag.
    let inner = w.stack.aws.store();
    let tenant = w.tenant.clone();
    let bob = w.ids["bob"].clone();
    store.after(After::RematchListing, move || async move {
        let raced = inner
            .get_outcome(&tenant, "call_raced")
            .await
            .unwrap()
            .unwrap();
        inner
            .save_outcome(
                &tenant,
                &shared::domain::CallOutcome {
                    who_id: Some(bob),
                    reason: Some("linked elsewhere meanwhile".into()),
                    ..raced
                },
            )
            .await
            .unwrap();
        let commented = inner
            .get_outcome(&tenant, "call_commented")
            .await
            .unwrap()
            .unwrap();
        inner
            .save_outcome(
                &tenant,
                &shared::domain::CallOutcome {
                    comments_pending: true,
                    ..commented
                },
            )
            .await
            .unwrap();
    });
    let jobs = w.stack.aws.queue(&w.stack.aws.resources.sync_jobs_queue);
    let syncer = app.syncer(&jobs);
    handle(
        &app,
        &syncer,
        sync_job_event(&w.tenant, Duration::from_secs(300)),
        SyncOptions::default(),
    )
    .await
    .unwrap();
    let raced = outcome(&w, "call_raced").await;
    assert_eq!(raced.who_id.as_deref(), Some(w.ids["bob"].as_str()));
    assert_eq!(raced.reason.as_deref(), Some("linked elsewhere meanwhile"));
    assert!(raced.rematches.is_empty());
    let commented = outcome(&w, "call_commented").await;
    assert_eq!(
        commented.rematches.len(),
        1,
        "the comment left the match as it was"
    );
    assert!(commented.comments_pending, "and the comment flag is kept");
}

/// A pass longer than the job stops at its deadline, saves where it stopped and
/// queues a continuation; the next job carries on from there, not from the start.
#[tokio::test]
async fn a_pass_cut_by_the_deadline_carries_on_in_the_next_job() {
    let w = world().await;
    // More unmatched calls than one page, all with one unknown number.
    let calls = shared::calls::rematch::PAGE + 5;
    let bodies: Vec<String> = (0..calls)
        .map(|i| phone_call(&w.tenant, &format!("call_many_{i:03}"), "+33611227777"))
        .collect();
    for chunk in bodies.chunks(50) {
        assert!(log(&w, chunk).await.batch_item_failures.is_empty());
    }
    w.stack
        .sf
        .user()
        .create(
            "Contact",
            json!({"LastName": "Many", "Phone": "06 11 22 77 77"}),
        )
        .await;
    let store = FaultyStore::new(w.stack.aws.store());
    let app = build_app_with(
        &w.stack.aws,
        &w.stack.sf,
        store.clone(),
        Duration::from_secs(600),
        "https://app.modjo.test/callback",
    );
    let jobs = w.stack.aws.queue(&w.stack.aws.resources.sync_jobs_queue);
    let syncer = app.syncer(&jobs);
    // The job may run for 20 s; its first page of calls is read just as time is up.
    store.after(After::RematchListing, || async {
        tokio::time::sleep(Duration::from_secs(21)).await;
    });
    let options = SyncOptions {
        stop_before_deadline: Duration::from_secs(280),
        ..SyncOptions::default()
    };
    handle(
        &app,
        &syncer,
        sync_job_event(&w.tenant, Duration::from_secs(300)),
        options,
    )
    .await
    .unwrap();
    let status = rematch_status(&w).await;
    assert_eq!(status.state, shared::domain::SyncState::Continuing);
    assert_eq!(status.records_written, shared::calls::rematch::PAGE as u64);
    let logged = |w: &World| {
        (0..calls)
            .filter(|i| !task_by_call_object(w, &format!("call_many_{i:03}")).is_empty())
            .count()
    };
    assert_eq!(logged(&w), shared::calls::rematch::PAGE, "one page done");
    let queued = w
        .stack
        .aws
        .drain(&w.stack.aws.resources.sync_jobs_queue)
        .await;
    assert!(
        queued.iter().any(|b| b.contains("continuation")),
        "a continuation is queued: {queued:?}"
    );

    // The continuation carries on from the second page.
    sync(&w.stack, &w.tenant).await;
    let status = rematch_status(&w).await;
    assert_eq!(status.state, shared::domain::SyncState::UpToDate);
    assert_eq!(status.records_read, 5, "only the calls not done yet");
    assert_eq!(logged(&w), calls, "every call has its Task, once");
}
