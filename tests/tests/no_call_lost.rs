//! No call or comment lost, at any size, in any order, through any failure
//! (issue 15): large calls kept whole through parking and replay, parked calls
//! replayed once, an outage that parks instead of dead-lettering, the Task's real
//! links reported, long and hostile comments, concurrent renders, and dead-letter
//! sends that fail.

use std::time::Duration;

use chrono::Utc;
use e2e::scenario::*;
use e2e::sf::ORG;
use e2e::stack::{Claims, api_event, body_json, lambda_event, sqs_event};
use serde_json::{Value, json};
use sf_emulator::{FailureKind, Fault};
use shared::adapters::sqs::SqsQueue;
use shared::calls::{Delivery, Verdict};
use shared::domain::{CallState, ConnectionStatus, TenantId};
use shared::ports::{CallClaim, CallStore, CommentStore, ConnectionStore};

/// A call whose summary makes its message about `bytes` long.
fn sized_call(tenant: &TenantId, id: &str, bytes: usize) -> String {
    let mut v: Value = serde_json::from_str(&phone_call(tenant, id, "+33612345678")).unwrap();
    let base = v.to_string().len();
    // Multi-byte text: sizes are bytes, Salesforce counts UTF-16 units.
    let filler = "Résumé — ".repeat((bytes - base) / "Résumé — ".len());
    v["summary"] = json!(filler);
    v.to_string()
}

async fn set_status(w: &World, status: ConnectionStatus) {
    let store = w.stack.aws.store();
    let mut c = store.get_connection(&w.tenant).await.unwrap().unwrap();
    c.status = status;
    store.save_connection(&c).await.unwrap();
}

/// Sends what the call-events queue holds through the call logger, as Lambda would.
async fn deliver_queued(w: &World) -> usize {
    let bodies = w
        .stack
        .aws
        .drain(&w.stack.aws.resources.call_events_queue)
        .await;
    if !bodies.is_empty() {
        let response = log(w, &bodies).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    bodies.len()
}

fn dead_letters(w: &World, queue: &str) -> String {
    w.stack.aws.resources.dead_letter_queues[queue].clone()
}

#[tokio::test]
async fn large_calls_are_kept_whole_through_parking_and_replay() {
    let w = world().await;
    set_status(&w, ConnectionStatus::NeedsReauth).await;
    let calls = [
        ("call_100k", sized_call(&w.tenant, "call_100k", 100 * 1024)),
        ("call_250k", sized_call(&w.tenant, "call_250k", 250 * 1024)),
    ];
    let bodies: Vec<String> = calls.iter().map(|(_, b)| b.clone()).collect();
    assert!(bodies[1].len() > 240 * 1024 && bodies[1].len() <= 256 * 1024);
    assert!(log(&w, &bodies).await.batch_item_failures.is_empty());
    for (id, body) in &calls {
        let o = outcome(&w, id).await;
        assert_eq!(o.state, CallState::Waiting);
        assert_eq!(o.message.as_deref(), Some(body.as_str()), "{id} kept whole");
    }
    // A comment written while the call waits.
    assert!(
        comments(
            &w,
            &[comment(
                &w,
                "call_250k",
                "cmt_1",
                "upsert",
                "shown on the big one",
                5,
                1
            )]
        )
        .await
        .batch_item_failures
        .is_empty()
    );
    // Reconnected: the next sync replays the parked calls, whole.
    set_status(&w, ConnectionStatus::Connected).await;
    sync(&w.stack, &w.tenant).await;
    let replayed = w
        .stack
        .aws
        .drain(&w.stack.aws.resources.call_events_queue)
        .await;
    assert_eq!(replayed.len(), 2);
    for (_, body) in &calls {
        assert!(replayed.contains(body), "replayed byte for byte");
    }
    assert!(log(&w, &replayed).await.batch_item_failures.is_empty());
    for (id, _) in &calls {
        assert_eq!(outcome(&w, id).await.state, CallState::Created);
        assert_eq!(task_by_call_object(&w, id).len(), 1);
    }
    let task = task_by_call_object(&w, "call_250k")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        shown(&description(&w, &task)),
        ["[00:05] Alice Martin: shown on the big one"]
    );
    // A later comment on the 250 KB call renders from its stored message.
    assert!(
        comments(
            &w,
            &[comment(
                &w,
                "call_250k",
                "cmt_2",
                "upsert",
                "and a second",
                9,
                2
            )]
        )
        .await
        .batch_item_failures
        .is_empty()
    );
    assert_eq!(shown(&description(&w, &task)).len(), 2);
    // Over the queue's 256 KiB: refused up front, with the reason, never parked.
    let over = sized_call(&w.tenant, "call_over", 257 * 1024);
    assert!(log(&w, &[over]).await.batch_item_failures.is_empty());
    let dead = w
        .stack
        .aws
        .drain_with_reasons(&dead_letters(&w, &w.stack.aws.resources.call_events_queue))
        .await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].1.contains("exceeds 262144"), "{}", dead[0].1);
}

#[tokio::test]
async fn parked_calls_are_replayed_once_per_recovery() {
    let w = world().await;
    set_status(&w, ConnectionStatus::NeedsReauth).await;
    let bodies: Vec<String> = (0..3)
        .map(|i| phone_call(&w.tenant, &format!("call_p{i}"), "+33612345678"))
        .collect();
    assert!(log(&w, &bodies).await.batch_item_failures.is_empty());
    set_status(&w, ConnectionStatus::Connected).await;
    // Several completed syncs: the calls are replayed by the first only.
    for _ in 0..3 {
        sync(&w.stack, &w.tenant).await;
    }
    let replayed = w
        .stack
        .aws
        .drain(&w.stack.aws.resources.call_events_queue)
        .await;
    assert_eq!(replayed.len(), 3, "once each");
    assert!(log(&w, &replayed).await.batch_item_failures.is_empty());
    sync(&w.stack, &w.tenant).await;
    assert!(
        w.stack
            .aws
            .drain(&w.stack.aws.resources.call_events_queue)
            .await
            .is_empty()
    );
    for i in 0..3 {
        assert_eq!(task_by_call_object(&w, &format!("call_p{i}")).len(), 1);
    }
}

#[tokio::test]
async fn a_two_hour_outage_parks_calls_and_every_call_is_logged_once_after_it() {
    let w = world().await;
    w.stack
        .sf
        .emu
        .inject(
            ORG,
            Fault::FailNext {
                count: u64::MAX,
                kind: FailureKind::ServerUnavailable,
            },
        )
        .unwrap();
    // Eight quarter-hours of calls and syncs while Salesforce answers nothing.
    let mut all = Vec::new();
    for quarter in 0..8 {
        let bodies: Vec<String> = (0..5)
            .map(|i| phone_call(&w.tenant, &format!("call_q{quarter}_{i}"), "+33612345678"))
            .collect();
        let response = log(&w, &bodies).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "no receive spent on the outage"
        );
        for i in 0..5 {
            let o = outcome(&w, &format!("call_q{quarter}_{i}")).await;
            assert_eq!(o.state, CallState::Waiting);
            assert!(o.reason.unwrap().contains("Salesforce is unavailable"));
        }
        all.extend(bodies);
        let jobs = w.stack.aws.queue(&w.stack.aws.resources.sync_jobs_queue);
        let calls = w.stack.aws.queue(&w.stack.aws.resources.call_events_queue);
        let syncer = w.stack.app.syncer(&jobs).with_call_replay(&calls);
        let _ = shared::sync::handler::handle(
            &w.stack.app,
            &syncer,
            e2e::stack::sync_job_event(&w.tenant, Duration::from_secs(30)),
            shared::sync::handler::SyncOptions::default(),
        )
        .await;
        assert!(
            w.stack
                .aws
                .drain(&w.stack.aws.resources.call_events_queue)
                .await
                .is_empty(),
            "nothing replayed while Salesforce is down"
        );
    }
    w.stack.sf.emu.inject(ORG, Fault::Clear).unwrap();
    // Salesforce answers again: the next sync replays every parked call, once.
    sync(&w.stack, &w.tenant).await;
    assert_eq!(deliver_queued(&w).await, 40);
    assert_eq!(deliver_queued(&w).await, 0);
    for quarter in 0..8 {
        for i in 0..5 {
            let id = format!("call_q{quarter}_{i}");
            assert_eq!(task_by_call_object(&w, &id).len(), 1, "{id}");
            assert_eq!(outcome(&w, &id).await.state, CallState::Created);
        }
    }
    let dlq = dead_letters(&w, &w.stack.aws.resources.call_events_queue);
    assert!(
        w.stack.aws.drain(&dlq).await.is_empty(),
        "nothing dead-lettered"
    );
    let page = w
        .stack
        .aws
        .store()
        .waiting_calls(&w.tenant, None)
        .await
        .unwrap();
    assert!(page.items.is_empty(), "nothing left waiting");
}

#[tokio::test]
async fn a_call_logged_after_an_outage_replays_the_parked_ones() {
    let w = world().await;
    w.stack
        .sf
        .emu
        .inject(
            ORG,
            Fault::FailNext {
                count: u64::MAX,
                kind: FailureKind::ServerUnavailable,
            },
        )
        .unwrap();
    let parked = phone_call(&w.tenant, "call_during", "+33612345678");
    assert!(
        log(&w, std::slice::from_ref(&parked))
            .await
            .batch_item_failures
            .is_empty()
    );
    w.stack.sf.emu.inject(ORG, Fault::Clear).unwrap();
    // The first batch that reaches Salesforce replays what waited.
    assert!(
        log(&w, &[phone_call(&w.tenant, "call_after", "+33612345678")])
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(deliver_queued(&w).await, 1);
    assert_eq!(task_by_call_object(&w, "call_during").len(), 1);
    assert_eq!(deliver_queued(&w).await, 0);
}

#[tokio::test]
async fn the_read_api_reports_the_tasks_own_who_and_what() {
    let w = world().await;
    // Bob's call was logged by the dialer on Bob, without a What; Modjo matches
    // Bob's account as What, but a dialer's Task is never re-pointed.
    assert!(
        log(
            &w,
            &[phone_call(&w.tenant, "call_dialed", "+33 6 88 88 88 88")]
        )
        .await
        .batch_item_failures
        .is_empty()
    );
    let dialer = w.stack.sf.emu.record(ORG, &w.ids["dialer"]).unwrap();
    let read = body_json(
        &w.stack
            .api(api_event(
                "GET",
                "/integrations/salesforce/calls/call_dialed",
                None,
                Claims::member(w.tenant.as_str()),
            ))
            .await,
    );
    assert_eq!(read["state"], "enriched");
    assert_eq!(read["taskId"], dialer["Id"]);
    assert_eq!(read["whoId"], dialer["WhoId"]);
    assert_eq!(read.get("whatId"), None, "the Task has no What");
    let linked: Vec<&str> = read["linked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(linked, [w.ids["bob"].as_str()]);
    assert_eq!(read["modjoMatch"]["whatId"], json!(w.ids["globex"]));
    assert_eq!(read["modjoMatch"]["whoId"], json!(w.ids["bob"]));
    assert_eq!(
        read["modjoMatch"]["reason"],
        "the dialer's Task keeps the Who and What its dialer set"
    );
    // A Task Modjo created shows its own links, and no difference.
    assert!(
        log(&w, &[phone_call(&w.tenant, "call_own", "+33612345678")])
            .await
            .batch_item_failures
            .is_empty()
    );
    let own = outcome(&w, "call_own").await;
    assert_eq!(own.modjo_match, None);
    assert_eq!(own.who_id.as_deref(), Some(w.ids["jane"].as_str()));
    assert_eq!(own.what_id.as_deref(), Some(w.ids["opp_main"].as_str()));
}

#[tokio::test]
async fn a_live_claim_of_another_invocation_is_retried_after_it_ends() {
    let w = world().await;
    let store = w.stack.aws.store();
    let until = Utc::now() + chrono::Duration::seconds(100);
    let claimed = store
        .claim_calls(
            &w.tenant,
            &[CallClaim {
                call_id: "call_busy".into(),
                until,
                version: 7,
            }],
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(claimed[0].is_ok());
    let aws = &w.stack.aws;
    let dlq = aws.queue(&dead_letters(&w, &aws.resources.call_events_queue));
    let source = aws.queue(&aws.resources.call_events_queue);
    let logger = w.stack.app.call_logger(&source, &dlq);
    let delivery = Delivery {
        message_id: "m1".into(),
        receipt_handle: "r1".into(),
        body: phone_call(&w.tenant, "call_busy", "+33612345678"),
        receive_count: 2,
    };
    let verdicts = logger
        .log_batch(
            &[delivery],
            tokio::time::Instant::now() + Duration::from_secs(60),
        )
        .await;
    match verdicts[0] {
        Verdict::RetryAfter(d) => assert!(
            (Duration::from_secs(95)..=Duration::from_secs(102)).contains(&d),
            "{d:?}"
        ),
        other => panic!("expected a retry after the claim, got {other:?}"),
    }
    assert!(task_by_call_object(&w, "call_busy").is_empty());
}

#[tokio::test]
async fn a_failed_dead_letter_send_is_not_acknowledged() {
    let w = world().await;
    let aws = &w.stack.aws;
    let gone: SqsQueue = aws.queue(&format!("{}-missing", aws.resources.call_events_queue));
    let source = aws.queue(&aws.resources.call_events_queue);
    let logger = w.stack.app.call_logger(&source, &gone);
    let event = serde_json::from_value(sqs_event("call-events", &["{not json".into()])).unwrap();
    let response = shared::calls::handler::handle(
        &w.stack.app,
        &logger,
        &source,
        lambda_event(event, Duration::from_secs(60)),
    )
    .await;
    assert_eq!(response.batch_item_failures.len(), 1, "SQS keeps the call");
    // The same for a comment of an unknown tenant.
    let sync = w.stack.app.comment_sync(&gone);
    let unknown = json!({"version": 1, "tenantId": "nobody-here", "callId": "c", "commentId": "k",
        "action": "upsert", "text": "hi", "updatedAt": "2026-11-28T11:00:00Z"})
    .to_string();
    let event = serde_json::from_value(sqs_event("comment-events", &[unknown])).unwrap();
    let response = shared::comments::handler::handle(
        &w.stack.app,
        &sync,
        &source,
        lambda_event(event, Duration::from_secs(60)),
    )
    .await;
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "SQS keeps the comment"
    );
}

#[tokio::test]
async fn comments_of_an_unknown_tenant_are_dead_lettered_and_nothing_is_stored() {
    let w = world().await;
    let stranger = TenantId::parse("stranger-tenant").unwrap();
    let body = json!({"version": 1, "tenantId": stranger, "callId": "call_x", "commentId": "cmt_x",
        "action": "upsert", "authorName": "Eve", "text": "hello", "updatedAt": "2026-11-28T11:00:00Z"})
    .to_string();
    assert!(comments(&w, &[body]).await.batch_item_failures.is_empty());
    let store = w.stack.aws.store();
    assert!(
        store
            .comments_for_call(&stranger, "call_x")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .comment_versions(&stranger, &["call_x".into()])
            .await
            .unwrap()
            .is_empty()
    );
    let dead = w
        .stack
        .aws
        .drain_with_reasons(&dead_letters(
            &w,
            &w.stack.aws.resources.comment_events_queue,
        ))
        .await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].1.contains("unknown tenant stranger-tenant"),
        "{}",
        dead[0].1
    );
}

#[tokio::test]
async fn one_huge_comment_does_not_hide_the_thread_and_hostile_text_is_cleaned() {
    let w = world().await;
    let task = logged_call(&w, "call_long").await;
    let mut events: Vec<String> = (0..7)
        .map(|i| {
            comment(
                &w,
                "call_long",
                &format!("cmt_{i}"),
                "upsert",
                &format!("point {i}"),
                i * 10,
                1,
            )
        })
        .collect();
    events.push(comment(
        &w,
        "call_long",
        "cmt_huge",
        "upsert",
        &"x".repeat(100_000),
        600,
        2,
    ));
    events.push(comment(
        &w,
        "call_long",
        "cmt_spoof",
        "upsert",
        "refund \u{202E}dnuof\u{202C} ok\u{200B}\u{FEFF}",
        700,
        3,
    ));
    assert!(comments(&w, &events).await.batch_item_failures.is_empty());
    let d = description(&w, &task);
    let lines = shown(&d);
    assert_eq!(lines.len(), 9, "every comment shown: {lines:?}");
    assert!(!d.contains("earlier comments in Modjo"));
    let huge = lines.iter().find(|l| l.starts_with("[10:00]")).unwrap();
    assert!(
        huge.ends_with("… (the whole comment is in Modjo: https://app.modjo.ai/calls/call_long)")
    );
    assert!(lines.contains(&"[11:40] Alice Martin: refund dnuof ok".to_string()));
    for c in ['\u{202E}', '\u{202C}', '\u{200B}', '\u{FEFF}'] {
        assert!(!d.contains(c), "{c:?} reached Salesforce");
    }
}

#[tokio::test]
async fn concurrent_renders_converge_on_the_newest_state() {
    let w = world().await;
    w.stack
        .sf
        .emu
        .inject(ORG, Fault::Latency { ms: 150 })
        .unwrap();
    let mut tasks = Vec::new();
    for c in 0..6 {
        tasks.push(logged_call(&w, &format!("call_conv{c}")).await);
    }
    // Each call gets twelve comments, spread over three concurrent invocations
    // that interleave on every call.
    let events: Vec<Vec<String>> = (0..3)
        .map(|lane| {
            (0..6)
                .flat_map(|c| (0..4).map(move |k| (c, lane * 4 + k)))
                .map(|(c, n)| {
                    comment(
                        &w,
                        &format!("call_conv{c}"),
                        &format!("cmt_{n:02}"),
                        "upsert",
                        &format!("note {n}"),
                        n,
                        1,
                    )
                })
                .collect()
        })
        .collect();
    let (a, b, c) = tokio::join!(
        comments(&w, &events[0]),
        comments(&w, &events[1]),
        comments(&w, &events[2])
    );
    // What SQS hands back comes back later, as it would.
    for (lane, r) in [a, b, c].iter().enumerate() {
        let again: Vec<String> = r
            .batch_item_failures
            .iter()
            .map(|f| {
                let i: usize = f
                    .item_identifier
                    .split('-')
                    .nth(1)
                    .unwrap()
                    .parse()
                    .unwrap();
                events[lane][i].clone()
            })
            .collect();
        if !again.is_empty() {
            assert!(comments(&w, &again).await.batch_item_failures.is_empty());
        }
    }
    for task in &tasks {
        assert_eq!(
            shown(&description(&w, task)).len(),
            12,
            "every stored comment shown"
        );
    }
}

#[tokio::test]
async fn a_reps_edit_saved_during_a_render_is_kept() {
    let w = world().await;
    let task = logged_call(&w, "call_edit").await;
    // Every request takes 1.5 s: the render reads the Task, and while its write
    // is on the way the rep saves a note outside the block.
    w.stack
        .sf
        .emu
        .inject(ORG, Fault::Latency { ms: 1_500 })
        .unwrap();
    let body = comment(&w, "call_edit", "cmt_1", "upsert", "well handled", 12, 1);
    let render = comments(&w, std::slice::from_ref(&body));
    let edit = async {
        // After the read (1.5 s), before the write lands (3 s).
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        let current = description(&w, &task);
        let mut fields = serde_json::Map::new();
        fields.insert(
            "Description".into(),
            json!(format!("Rep's note: call back Friday\n\n{current}")),
        );
        w.stack.sf.emu.edit_record(ORG, &task, &fields).unwrap();
    };
    let (response, ()) = tokio::join!(render, edit);
    assert!(response.batch_item_failures.is_empty());
    let d = description(&w, &task);
    assert!(d.starts_with("Rep's note: call back Friday\n\n"), "{d}");
    assert_eq!(shown(&d), ["[00:12] Alice Martin: well handled"]);
    // The write that would have overwritten the note was refused, then redone.
    assert!(
        w.stack.sf.calls("composite") >= 2,
        "{:?}",
        w.stack.sf.emu.counters(ORG)
    );
}

#[tokio::test]
async fn a_comment_written_while_its_call_is_being_logged_is_shown() {
    let w = world().await;
    // Each Salesforce request takes 1.5 s: the comment arrives after the call
    // logger read the call's comments, before it wrote the Task.
    w.stack
        .sf
        .emu
        .inject(ORG, Fault::Latency { ms: 1_500 })
        .unwrap();
    let call = phone_call(&w.tenant, "call_race", "+33612345678");
    let body = comment(
        &w,
        "call_race",
        "cmt_1",
        "upsert",
        "said during the logging",
        7,
        1,
    );
    let logging = log(&w, std::slice::from_ref(&call));
    let commenting = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        comments(&w, std::slice::from_ref(&body)).await
    };
    let (logged, commented) = tokio::join!(logging, commenting);
    assert!(logged.batch_item_failures.is_empty());
    assert!(commented.batch_item_failures.is_empty());
    let task = task_by_call_object(&w, "call_race")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        shown(&description(&w, &task)),
        ["[00:07] Alice Martin: said during the logging"]
    );
}
