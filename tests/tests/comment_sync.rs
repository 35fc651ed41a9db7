//! Comment propagation through the comment-sync handler, against the emulator
//! and moto: Modjo comments shown in the call's Salesforce Task, in step with
//! edits and deletions, whatever the order events arrive in.

use std::time::Duration;

use e2e::faulty::After;
use e2e::scenario::*;
use e2e::sf::ORG;
use e2e::stack::{CALLBACK_URL, build_app_with, faulty_app};
use local_stack::latency::LatencyProxy;
use serde_json::json;
use sf_emulator::{FailureKind, Fault};
use shared::adapters::dynamo::DynamoStore;
use shared::aws::AwsClients;
use shared::domain::block::{BEGIN, DESCRIPTION_LIMIT, END, sf_len};
use shared::domain::{ConnectionStatus, StoredComment};
use shared::ports::{
    CallStore, CommentStore, ConnectionStore, SalesforceSessions, SalesforceWrites,
};

#[tokio::test]
async fn add_edit_and_delete_a_comment() {
    let w = world().await;
    let task = logged_call(&w, "call_c1").await;
    assert!(
        comments(
            &w,
            &[comment(
                &w,
                "call_c1",
                "cmt_1",
                "upsert",
                "Great handling of the pricing objection",
                195,
                2
            )]
        )
        .await
        .batch_item_failures
        .is_empty()
    );
    assert_eq!(
        shown(&description(&w, &task)),
        ["[03:15] Alice Martin: Great handling of the pricing objection"]
    );

    comments(
        &w,
        &[comment(
            &w,
            "call_c1",
            "cmt_1",
            "upsert",
            "Great handling (edited)",
            195,
            3,
        )],
    )
    .await;
    assert_eq!(
        shown(&description(&w, &task)),
        ["[03:15] Alice Martin: Great handling (edited)"]
    );

    comments(
        &w,
        &[comment(
            &w,
            "call_c1",
            "cmt_2",
            "upsert",
            "Earlier moment",
            30,
            4,
        )],
    )
    .await;
    assert_eq!(
        shown(&description(&w, &task)),
        [
            "[00:30] Alice Martin: Earlier moment",
            "[03:15] Alice Martin: Great handling (edited)"
        ]
    );

    comments(&w, &[comment(&w, "call_c1", "cmt_1", "delete", "", 195, 5)]).await;
    assert_eq!(
        shown(&description(&w, &task)),
        ["[00:30] Alice Martin: Earlier moment"]
    );
    assert!(
        description(&w, &task).contains("https://app.modjo.ai/calls/call_c1"),
        "the link stays"
    );
}

#[tokio::test]
async fn out_of_order_and_duplicated_events_converge() {
    let w = world().await;
    let task = logged_call(&w, "call_c2").await;
    let v1 = comment(&w, "call_c2", "cmt_1", "upsert", "first version", 10, 1);
    let v2 = comment(&w, "call_c2", "cmt_1", "upsert", "second version", 10, 2);
    let gone = comment(&w, "call_c2", "cmt_1", "delete", "", 10, 3);
    let other = comment(&w, "call_c2", "cmt_2", "upsert", "stays", 20, 1);
    // Newest first, duplicates, in one batch and across batches.
    comments(&w, &[v2.clone(), other.clone(), v1.clone(), v2.clone()]).await;
    assert_eq!(
        shown(&description(&w, &task)),
        [
            "[00:10] Alice Martin: second version",
            "[00:20] Alice Martin: stays"
        ]
    );
    comments(&w, std::slice::from_ref(&gone)).await;
    comments(&w, &[v1, v2, other]).await; // late and duplicated: no resurrection
    assert_eq!(
        shown(&description(&w, &task)),
        ["[00:20] Alice Martin: stays"]
    );
    comments(&w, &[gone]).await;
    assert_eq!(description(&w, &task).matches(BEGIN).count(), 1);
}

#[tokio::test]
async fn a_comment_before_its_call_appears_when_the_call_is_logged() {
    let w = world().await;
    w.stack.sf.emu.reset_counters(ORG).unwrap();
    let early = comment(
        &w,
        "call_c3",
        "cmt_early",
        "upsert",
        "Written while the call was processed",
        42,
        1,
    );
    assert!(comments(&w, &[early]).await.batch_item_failures.is_empty());
    assert_eq!(w.stack.sf.total_calls(), 0, "nothing to update yet");
    let task = logged_call(&w, "call_c3").await;
    assert_eq!(
        shown(&description(&w, &task)),
        ["[00:42] Alice Martin: Written while the call was processed"]
    );
}

/// A comment stored straight into the store, as comment-sync stores it, while
/// the call logger is at work on `call_id`.
fn late_comment(call_id: &str) -> StoredComment {
    StoredComment {
        call_id: call_id.into(),
        comment_id: "cmt_late".into(),
        author_name: "Alice Martin".into(),
        text: "Stored while the call was logged".into(),
        at_second: 7,
        updated_at: chrono::Utc::now(),
        deleted: false,
    }
}

/// A comment stored while its call was being logged, which the logger cannot
/// show (Salesforce stops answering once the Task is written), waits as pending
/// on the outcome as it is by then: another write of the outcome in between (the
/// call's Note refreshed by a duplicate delivery, a re-match, a manual link) must
/// not leave it neither shown nor pending, since the call is acknowledged.
#[tokio::test]
async fn a_comment_the_logger_cannot_show_waits_even_if_the_outcome_changed_meanwhile() {
    let w = world().await;
    let (faulty, app) = faulty_app(&w.stack.aws, &w.stack.sf);
    let (store, tenant, emu) = (
        w.stack.aws.store(),
        w.tenant.clone(),
        w.stack.sf.emu.clone(),
    );
    faulty.after(After::OutcomesWritten, move || async move {
        store
            .upsert_comment(&tenant, &late_comment("call_c12"))
            .await
            .unwrap();
        let query_fails = Fault::FailNextOf {
            api: "query".into(),
            count: 5,
            kind: FailureKind::ServerUnavailable,
        };
        emu.inject(ORG, query_fails).unwrap();
        let mut o = store
            .get_outcome(&tenant, "call_c12")
            .await
            .unwrap()
            .unwrap();
        o.note_problem = Some("written by another invocation".into());
        store.save_outcome(&tenant, &o).await.unwrap();
    });
    let call = phone_call(&w.tenant, "call_c12", "+33612345678");
    let logged = log_with(&app, &w.stack.aws, &[call]).await;
    assert!(
        logged.batch_item_failures.is_empty(),
        "the call is acknowledged"
    );
    let task = task_by_call_object(&w, "call_c12")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(shown(&description(&w, &task)).is_empty(), "not shown yet");
    let o = w
        .stack
        .aws
        .store()
        .get_outcome(&w.tenant, "call_c12")
        .await
        .unwrap()
        .unwrap();
    assert!(o.comments_pending, "the comment waits for the sync");
    assert_eq!(
        o.note_problem.as_deref(),
        Some("written by another invocation"),
        "the other write is kept"
    );

    w.stack.sf.emu.inject(ORG, Fault::Clear).unwrap();
    sync(&w.stack, &w.tenant).await;
    assert_eq!(
        shown(&description(&w, &task)),
        ["[00:07] Alice Martin: Stored while the call was logged"]
    );
}

/// The logger died after recording a call and before showing the comment stored
/// while it worked (comment-sync had left that comment to it, the call not being
/// logged yet). The dead invocation acknowledged nothing, so SQS delivers the call
/// again: that delivery, a duplicate of a logged call, shows the comment.
#[tokio::test]
async fn a_comment_left_by_a_logger_that_died_after_recording_its_call_is_shown_on_redelivery() {
    let w = world().await;
    let (faulty, app) = faulty_app(&w.stack.aws, &w.stack.sf);
    let (store, tenant) = (w.stack.aws.store(), w.tenant.clone());
    faulty.after(After::OutcomesAboutToBeWritten, move || async move {
        store
            .upsert_comment(&tenant, &late_comment("call_c13"))
            .await
            .unwrap();
    });
    faulty.die_after_outcome_write(1);
    let call = phone_call(&w.tenant, "call_c13", "+33612345678");
    let first = log_with(&app, &w.stack.aws, std::slice::from_ref(&call)).await;
    assert_eq!(first.batch_item_failures.len(), 1, "nothing acknowledged");
    let task = task_by_call_object(&w, "call_c13")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(shown(&description(&w, &task)).is_empty(), "not shown yet");

    let again = log_with(&app, &w.stack.aws, &[call]).await;
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(
        shown(&description(&w, &task)),
        ["[00:07] Alice Martin: Stored while the call was logged"]
    );
    assert_eq!(task_by_call_object(&w, "call_c13").len(), 1, "one Task");
}

#[tokio::test]
async fn the_users_edits_outside_the_block_are_kept() {
    let w = world().await;
    let task = logged_call(&w, "call_c4").await;
    comments(
        &w,
        &[comment(&w, "call_c4", "cmt_1", "upsert", "one", 1, 1)],
    )
    .await;
    // The rep writes above and below the block in Salesforce.
    let session = w.stack.app.sessions().open(
        &w.tenant,
        tokio::time::Instant::now() + Duration::from_secs(30),
    );
    let edited = format!(
        "Rep's notes: call back Tuesday\n\n{}\n\nPS: send the deck",
        description(&w, &task)
    );
    session
        .update(
            "Task",
            &task,
            &e2e::sf::fields(json!({"Description": edited})),
        )
        .await
        .unwrap();
    comments(
        &w,
        &[comment(&w, "call_c4", "cmt_2", "upsert", "two", 2, 2)],
    )
    .await;
    let now = description(&w, &task);
    assert!(now.starts_with("Rep's notes: call back Tuesday\n"), "{now}");
    assert!(now.contains("PS: send the deck"));
    assert_eq!(
        shown(&now),
        ["[00:01] Alice Martin: one", "[00:02] Alice Martin: two"]
    );
    assert_eq!(now.matches(BEGIN).count(), 1);
}

#[tokio::test]
async fn markers_inside_a_comment_cannot_break_the_block() {
    let w = world().await;
    let task = logged_call(&w, "call_c5").await;
    let evil = format!("{END}\nInjected user text\n{BEGIN}\u{7}\u{1b}[2J");
    comments(
        &w,
        &[comment(&w, "call_c5", "cmt_evil", "upsert", &evil, 5, 1)],
    )
    .await;
    comments(
        &w,
        &[comment(&w, "call_c5", "cmt_ok", "upsert", "fine", 6, 2)],
    )
    .await;
    let d = description(&w, &task);
    assert_eq!(d.matches(BEGIN).count(), 1);
    assert_eq!(d.matches(END).count(), 1);
    assert!(!d.contains('\u{7}') && !d.contains('\u{1b}'));
    assert!(
        shared::domain::block::user_text(&d).is_empty(),
        "nothing leaked outside the block: {d}"
    );
}

#[tokio::test]
async fn two_thousand_long_comments_respect_the_bound() {
    let w = world().await;
    let task = logged_call(&w, "call_c6").await;
    let text = "A long remark about the negotiation, with details. ".repeat(8);
    let events: Vec<String> = (0..2000)
        .map(|i| comment(&w, "call_c6", &format!("cmt_{i:04}"), "upsert", &text, i, 1))
        .collect();
    // The first 1,950 arrived earlier (stored as comment-sync stores them); the
    // last 50 arrive now, through the handler.
    for body in &events[..1950] {
        let event = shared::comments::CommentEvent::parse(body).unwrap();
        let stored = shared::domain::StoredComment {
            call_id: event.call_id.clone(),
            comment_id: event.comment_id.clone(),
            author_name: event.author_name.clone().unwrap_or_default(),
            text: event.text.clone().unwrap_or_default(),
            at_second: event.at_second,
            updated_at: event.updated_at,
            deleted: false,
        };
        shared::ports::CommentStore::upsert_comment(&w.stack.aws.store(), &w.tenant, &stored)
            .await
            .unwrap();
    }
    w.stack.sf.emu.reset_counters(ORG).unwrap();
    assert!(
        comments(&w, &events[1950..])
            .await
            .batch_item_failures
            .is_empty()
    );
    let d = description(&w, &task);
    assert!(sf_len(&d) <= DESCRIPTION_LIMIT, "{}", sf_len(&d));
    let pointer = d
        .lines()
        .find(|l| l.contains("earlier comments in Modjo"))
        .expect("an elision pointer");
    let elided: usize = pointer.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(elided + shown(&d).len(), 2000);
    assert!(pointer.ends_with("https://app.modjo.ai/calls/call_c6"));
    // The newest are the ones shown.
    assert!(
        d.contains("[33:19] Alice Martin"),
        "comment 1999 (at 33:19) shown"
    );
    // One lookup and one conditional update (a composite call) for the batch of
    // 50 comments on one call.
    assert_eq!(w.stack.sf.calls("query"), 1);
    assert_eq!(w.stack.sf.calls("composite"), 1);
}

#[tokio::test]
async fn a_task_deleted_in_salesforce_is_recorded_not_retried() {
    let w = world().await;
    let task = logged_call(&w, "call_c7").await;
    let session = w.stack.app.sessions().open(
        &w.tenant,
        tokio::time::Instant::now() + Duration::from_secs(30),
    );
    session.delete("Task", &task).await.unwrap();
    let r = comments(
        &w,
        &[comment(&w, "call_c7", "cmt_1", "upsert", "too late", 1, 1)],
    )
    .await;
    assert!(r.batch_item_failures.is_empty());
    let o = w
        .stack
        .aws
        .store()
        .get_outcome(&w.tenant, "call_c7")
        .await
        .unwrap()
        .unwrap();
    assert!(o.task_deleted);
    assert!(o.reason.unwrap().contains("deleted in Salesforce"));
    // Later comments cost nothing.
    w.stack.sf.emu.reset_counters(ORG).unwrap();
    comments(
        &w,
        &[comment(
            &w,
            "call_c7",
            "cmt_2",
            "upsert",
            "still stored",
            2,
            2,
        )],
    )
    .await;
    assert_eq!(w.stack.sf.total_calls(), 0);
    let stored =
        shared::ports::CommentStore::comments_for_call(&w.stack.aws.store(), &w.tenant, "call_c7")
            .await
            .unwrap();
    assert_eq!(stored.len(), 2, "the comments are kept in Modjo");
}

#[tokio::test]
async fn a_token_expiring_and_a_503_mid_batch_are_survived() {
    let w = world().await;
    let task = logged_call(&w, "call_c8").await;
    w.stack.sf.emu.inject(ORG, Fault::ExpireSessions).unwrap();
    w.stack
        .sf
        .emu
        .inject(
            ORG,
            Fault::FailNext {
                count: 1,
                kind: FailureKind::ServerUnavailable,
            },
        )
        .unwrap();
    let r = comments(
        &w,
        &[
            comment(&w, "call_c8", "cmt_1", "upsert", "survives", 1, 1),
            comment(&w, "call_c8", "cmt_2", "upsert", "both", 2, 1),
        ],
    )
    .await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(
        shown(&description(&w, &task)),
        [
            "[00:01] Alice Martin: survives",
            "[00:02] Alice Martin: both"
        ]
    );
    // Salesforce down beyond the retries: the comment is not lost, nor are the
    // event's receives spent on the outage; it waits, and the next sync shows it.
    w.stack
        .sf
        .emu
        .inject(
            ORG,
            Fault::FailNext {
                count: 50,
                kind: FailureKind::ServerUnavailable,
            },
        )
        .unwrap();
    let body = comment(&w, "call_c8", "cmt_3", "upsert", "after the outage", 3, 2);
    assert!(
        comments(&w, std::slice::from_ref(&body))
            .await
            .batch_item_failures
            .is_empty()
    );
    let o = w
        .stack
        .aws
        .store()
        .get_outcome(&w.tenant, "call_c8")
        .await
        .unwrap()
        .unwrap();
    assert!(o.comments_pending);
    w.stack.sf.emu.inject(ORG, Fault::Clear).unwrap();
    sync(&w.stack, &w.tenant).await;
    assert_eq!(shown(&description(&w, &task)).len(), 3);
    // A failure while Salesforce still answers is handed back to SQS.
    w.stack
        .sf
        .emu
        .inject(
            ORG,
            Fault::FailNextOf {
                api: "composite".into(),
                count: 50,
                kind: FailureKind::ServerUnavailable,
            },
        )
        .unwrap();
    let body = comment(&w, "call_c8", "cmt_4", "upsert", "fourth", 4, 3);
    assert_eq!(
        comments(&w, std::slice::from_ref(&body))
            .await
            .batch_item_failures
            .len(),
        1
    );
    w.stack.sf.emu.inject(ORG, Fault::Clear).unwrap();
    assert!(comments(&w, &[body]).await.batch_item_failures.is_empty());
    assert_eq!(shown(&description(&w, &task)).len(), 4);
}

#[tokio::test]
async fn comments_wait_for_a_reconnect_and_the_sync_shows_them() {
    let w = world().await;
    let task = logged_call(&w, "call_c9").await;
    let mut c = w
        .stack
        .aws
        .store()
        .get_connection(&w.tenant)
        .await
        .unwrap()
        .unwrap();
    c.status = ConnectionStatus::NeedsReauth;
    w.stack.aws.store().save_connection(&c).await.unwrap();
    assert!(
        comments(
            &w,
            &[comment(
                &w,
                "call_c9",
                "cmt_1",
                "upsert",
                "while disconnected",
                1,
                1
            )]
        )
        .await
        .batch_item_failures
        .is_empty()
    );
    assert!(shown(&description(&w, &task)).is_empty());
    assert!(
        w.stack
            .aws
            .store()
            .get_outcome(&w.tenant, "call_c9")
            .await
            .unwrap()
            .unwrap()
            .comments_pending
    );
    // Reconnected (here: status restored); the next sync renders what waited.
    let mut c = w
        .stack
        .aws
        .store()
        .get_connection(&w.tenant)
        .await
        .unwrap()
        .unwrap();
    c.status = ConnectionStatus::Connected;
    w.stack.aws.store().save_connection(&c).await.unwrap();
    sync(&w.stack, &w.tenant).await;
    assert_eq!(
        shown(&description(&w, &task)),
        ["[00:01] Alice Martin: while disconnected"]
    );
    assert!(
        !w.stack
            .aws
            .store()
            .get_outcome(&w.tenant, "call_c9")
            .await
            .unwrap()
            .unwrap()
            .comments_pending
    );
}

#[tokio::test]
async fn invalid_comment_events_are_dead_lettered() {
    let w = world().await;
    let bad = [
        "{oops".to_string(),
        json!({"version": 1, "tenantId": w.tenant, "callId": "x"}).to_string(),
    ];
    let good = comment(&w, "call_never_logged", "cmt_1", "upsert", "fine", 1, 1);
    let r = comments(&w, &[bad[0].clone(), bad[1].clone(), good]).await;
    assert!(r.batch_item_failures.is_empty());
    let aws = &w.stack.aws;
    let dead = aws
        .drain(&aws.resources.dead_letter_queues[&aws.resources.comment_events_queue])
        .await;
    assert_eq!(dead.len(), 2);
}

/// What comment-sync asks of DynamoDB, counted by a proxy in front of moto: a
/// batch of 50 comments on 10 logged calls stores each comment with one
/// request (1.3 requests per comment in all), reads each call's comments once,
/// and renders the ten Tasks with one Salesforce query and one write.
#[tokio::test]
async fn a_batch_of_comments_costs_one_store_write_each_and_shares_the_rest() {
    let w = world().await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        tasks.push(logged_call(&w, &format!("call_c{i}")).await);
    }
    let proxy = LatencyProxy::start(&w.stack.aws.endpoint, Duration::ZERO)
        .await
        .unwrap();
    let clients = AwsClients::for_endpoint(&proxy.endpoint()).await;
    let store = DynamoStore::new(clients.dynamodb.clone(), &w.stack.aws.resources.table);
    let app = build_app_with(
        &w.stack.aws,
        &w.stack.sf,
        store,
        Duration::from_secs(600),
        CALLBACK_URL,
    );
    let bodies: Vec<String> = (0..50u32)
        .map(|k| {
            let call = format!("call_c{}", k % 10);
            comment(
                &w,
                &call,
                &format!("cmt_{k}"),
                "upsert",
                &format!("Note {k}"),
                k,
                5,
            )
        })
        .collect();
    w.stack.sf.emu.reset_counters(ORG).unwrap();

    let response = comments_with(&app, &w.stack.aws, &bodies).await;

    assert!(response.batch_item_failures.is_empty());
    let requests = proxy.dynamodb_requests();
    let count = |op: &str| requests.get(op).copied().unwrap_or(0);
    assert_eq!(count("TransactWriteItems"), 50, "one write per comment");
    assert_eq!(count("Query"), 10, "one read of each call's comments");
    let rest: u64 = requests.values().sum::<u64>() - 60;
    assert!(rest <= 5, "the rest is shared by the batch: {requests:?}");
    assert_eq!(w.stack.sf.total_calls(), 2, "one query, one write");
    for (i, task) in tasks.iter().enumerate() {
        assert_eq!(shown(&description(&w, task)).len(), 5, "call_c{i}");
    }
}
