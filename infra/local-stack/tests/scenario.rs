//! Issue 15's scenario, through the local stack as deployed (the five binaries,
//! the queues with their redrive, the pollers at the template's batch sizes):
//! 200 calls and their comments, every message delivered three times at once,
//! the call logger killed in the middle of a batch, comments handled by three
//! comment-sync processes, Salesforce answering in 0 to 2.5 s with 10 % of its
//! requests failing transiently, and reps editing Tasks meanwhile. At the end:
//! one Task per call, every stored comment shown, every rep's edit kept, nothing
//! waiting, and each dead-letter queue holding exactly the invalid messages, once.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use local_stack::demo::{ORG, TENANT};
use local_stack::stack::{AwsTarget, LocalStack, Options, SalesforceTarget};
use serde_json::{Value, json};
use sf_emulator::{FailureKind, Fault};
use shared::adapters::dynamo::DynamoStore;
use shared::domain::{CallState, TenantId};
use shared::ports::{CallStore, CommentStore};

const CALLS: usize = 200;
const HOST: &str = "usr_sophie";

fn call(i: usize, phone: &str) -> String {
    let started = chrono::Utc::now() - chrono::Duration::minutes(40);
    json!({"version": 1, "tenantId": TENANT, "callId": format!("scn_{i:03}"),
        "url": format!("https://app.modjo.ai/calls/scn_{i:03}"), "title": format!("Scenario call {i}"),
        "direction": "outbound", "startedAt": started.to_rfc3339(), "durationSeconds": 300 + i,
        "hostUserId": HOST, "source": {"provider": "ringover"},
        "participants": [{"role": "external", "name": "Customer", "phone": phone}],
        "summary": "Scenario: pricing and next steps."})
    .to_string()
}

fn comment(i: usize, id: &str, action: &str, text: &str, minute: u32) -> String {
    json!({"version": 1, "tenantId": TENANT, "callId": format!("scn_{i:03}"), "commentId": id,
        "action": action, "authorUserId": "usr_lucas", "authorName": "Lucas Bernard", "text": text,
        "atSecond": 30, "createdAt": "2026-11-28T11:00:00Z",
        "updatedAt": format!("2026-11-28T11:{minute:02}:00Z")})
    .to_string()
}

/// The comment events of call `i`: a comment, edited on every other call, and
/// a second one deleted on every fifth.
fn comments_of(i: usize) -> Vec<String> {
    let mut events = vec![comment(
        i,
        "a",
        "upsert",
        &format!("first take on call {i}"),
        1,
    )];
    if i % 2 == 0 {
        events.push(comment(
            i,
            "a",
            "upsert",
            &format!("edited take on call {i}"),
            2,
        ));
    }
    if i % 5 == 0 {
        events.push(comment(i, "b", "upsert", "to be deleted", 1));
        events.push(comment(i, "b", "delete", "", 3));
    }
    events
}

/// Every message three times, in an order that mixes them.
fn thrice(bodies: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = bodies
        .iter()
        .flat_map(|b| [b.clone(), b.clone(), b.clone()])
        .collect();
    // A fixed shuffle (no randomness in what is asserted).
    let n = out.len();
    for k in 0..n {
        out.swap(k, (k * 7919 + 13) % n);
    }
    out
}

async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "scenario: {what} after {:.0} s",
        start.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_calls_and_their_comments_survive_duplicates_a_crash_and_bad_weather() {
    let root = local_stack::repo_root();
    let log_dir = std::env::temp_dir().join(format!("modjo-scenario-logs-{}", std::process::id()));
    let mut instances = BTreeMap::new();
    instances.insert("comment-sync", 3);
    let stack = LocalStack::start(Options {
        schedule_every: Duration::from_secs(3600),
        instances,
        // The killed batch comes back after 30 s instead of the template's 15 min.
        visibility_timeout: Some(Duration::from_secs(30)),
        ..Options::new(
            0,
            local_stack::functions::built_for_tests(),
            log_dir.clone(),
            SalesforceTarget::Emulator {
                seed: root.join("infra/sf-emulator/demo-org.json"),
            },
            AwsTarget::Moto,
        )
    })
    .await
    .expect("the local stack starts");
    // Connect, map the users, first sync: the demo's story.
    local_stack::demo::run(&stack, &root)
        .await
        .expect("the demo plays");
    let emu = stack.emulator.as_ref().expect("emulator");
    let phones: Vec<String> = emu
        .query(
            ORG,
            "SELECT Id, Phone FROM Contact WHERE Phone != null",
            false,
        )
        .expect("contacts")
        .into_iter()
        .filter_map(|c| c["Phone"].as_str().map(str::to_string))
        // Only numbers a call can be matched by (the demo org also holds
        // invalid ones, whose calls are rightly left unmatched, without a Task).
        .filter(|p| shared::domain::normalize::phone_e164(p, "FR").is_some())
        .collect();
    assert!(phones.len() > 50, "the demo org has contacts with phones");

    // The messages: 200 calls and their comments, each three times, plus a few
    // that are truly invalid (sent once each).
    let calls: Vec<String> = (0..CALLS)
        .map(|i| call(i, &phones[i % phones.len()]))
        .collect();
    let comments: Vec<String> = (0..CALLS).flat_map(comments_of).collect();
    let bad_calls = vec![
        "{not a call".to_string(),
        json!({"version": 1, "tenantId": TENANT, "callId": "scn_bad"}).to_string(),
    ];
    let bad_comments = vec![json!({"version": 9, "tenantId": TENANT}).to_string()];
    let mut call_messages = thrice(calls);
    call_messages.extend(bad_calls.clone());
    let mut comment_messages = thrice(comments);
    comment_messages.extend(bad_comments.clone());

    emu.inject(
        ORG,
        Fault::Weather {
            min_ms: 0,
            max_ms: 2_500,
            fail_percent: 10,
            kinds: vec![FailureKind::ServerUnavailable, FailureKind::UnableToLockRow],
        },
    )
    .expect("weather");
    let r = &stack.resources;
    let (sent_calls, sent_comments) = tokio::join!(
        stack.send_messages(&r.call_events_queue, &call_messages),
        stack.send_messages(&r.comment_events_queue, &comment_messages)
    );
    sent_calls.expect("calls sent");
    sent_comments.expect("comments sent");

    // The call logger dies in the middle of a batch, once.
    let logger = stack.functions["call-logger"].clone();
    wait_until(
        Duration::from_secs(120),
        "the call logger takes a batch",
        || async { !logger.ready(Duration::from_millis(10)).await },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    logger.kill();

    // Reps edit ten Tasks once they exist, while comments are being rendered.
    let store = DynamoStore::new(stack.aws.dynamodb.clone(), &r.table);
    let tenant = TenantId::parse(TENANT).expect("tenant");
    let task_of = |i: usize| {
        let url = format!("https://app.modjo.ai/calls/scn_{i:03}");
        emu.records(ORG, "Task", false)
            .unwrap_or_default()
            .into_iter()
            .filter(move |t| {
                t["Description"]
                    .as_str()
                    .is_some_and(|d| d.lines().any(|l| l == url))
            })
            .collect::<Vec<Value>>()
    };
    let mut edited: HashMap<String, String> = HashMap::new();
    wait_until(Duration::from_secs(600), "ten Tasks to edit", || {
        let mut found = Vec::new();
        for i in (0..CALLS).step_by(20) {
            if let Some(t) = task_of(i).into_iter().next() {
                found.push(t);
            }
        }
        let ready = found.len() >= 10;
        if ready {
            for t in found {
                let id = t["Id"].as_str().unwrap_or_default().to_string();
                let note = format!("Rep note on {id}: call back next week");
                let mut fields = serde_json::Map::new();
                let current = t["Description"].as_str().unwrap_or_default();
                fields.insert("Description".into(), json!(format!("{note}\n\n{current}")));
                emu.edit_record(ORG, &id, &fields).expect("rep's edit");
                edited.insert(id, note);
            }
        }
        async move { ready }
    })
    .await;

    // Everything settles: every call final, both queues empty.
    wait_until(
        Duration::from_secs(900),
        "every call logged and the queues empty",
        || async {
            let ids: Vec<String> = (0..CALLS).map(|i| format!("scn_{i:03}")).collect();
            let outcomes = store.get_outcomes(&tenant, &ids).await.unwrap_or_default();
            let done = outcomes.len() == CALLS && outcomes.iter().all(|o| o.is_final());
            done && stack.queue_depth(&r.call_events_queue).await == Some(0)
                && stack.queue_depth(&r.comment_events_queue).await == Some(0)
        },
    )
    .await;
    // Fair weather again; the next sync shows what waited.
    emu.inject(ORG, Fault::Clear).expect("clear");
    stack.functions["scheduled-sync"]
        .invoke(
            local_stack::pollers::scheduled_event(),
            Duration::from_secs(60),
        )
        .await
        .expect("fan-out");
    wait_until(Duration::from_secs(300), "the sync job ran", || async {
        stack.queue_depth(&r.sync_jobs_queue).await == Some(0)
            && store
                .pending_comment_calls(&tenant, None)
                .await
                .is_ok_and(|p| p.items.is_empty())
    })
    .await;

    // One Task per call, showing every stored comment.
    for i in 0..CALLS {
        let call_id = format!("scn_{i:03}");
        let tasks = task_of(i);
        assert_eq!(tasks.len(), 1, "{call_id}: exactly one Task");
        let outcome = store
            .get_outcome(&tenant, &call_id)
            .await
            .expect("outcome")
            .expect("recorded");
        assert!(
            matches!(outcome.state, CallState::Created | CallState::Enriched),
            "{call_id}: {:?} {:?}",
            outcome.state,
            outcome.reason
        );
        assert_eq!(outcome.task_id.as_deref(), tasks[0]["Id"].as_str());
        let description = tasks[0]["Description"].as_str().unwrap_or_default();
        let shown: Vec<&str> = description.lines().filter(|l| l.starts_with('[')).collect();
        let stored = store
            .comments_for_call(&tenant, &call_id)
            .await
            .expect("comments");
        let live: Vec<String> = stored
            .iter()
            .filter(|c| !c.deleted)
            .map(|c| format!("[00:30] Lucas Bernard: {}", c.text))
            .collect();
        assert_eq!(shown, live, "{call_id}: the stored comments, as shown");
        let expected_a = if i % 2 == 0 { "edited" } else { "first" };
        assert!(
            description.contains(&format!("{expected_a} take on call {i}")),
            "{call_id}"
        );
        assert!(!description.contains("to be deleted"), "{call_id}");
    }
    // Every rep's edit kept.
    assert_eq!(edited.len(), 10);
    for (id, note) in &edited {
        let t = emu.record(ORG, id).expect("task");
        assert!(
            t["Description"]
                .as_str()
                .unwrap_or_default()
                .starts_with(note.as_str()),
            "{id}: the rep's note is gone"
        );
    }
    // Nothing waiting.
    assert!(
        store
            .waiting_calls(&tenant, None)
            .await
            .expect("waiting")
            .items
            .is_empty()
    );
    assert!(logger.restarts() >= 1, "the logger was killed and replaced");
    // Each DLQ holds the invalid messages, once each, and nothing else.
    let dead = |queue: &str| {
        let dlq = r.dead_letter_queues[queue].clone();
        let sqs = stack.aws.sqs.clone();
        async move {
            let mut bodies = Vec::new();
            loop {
                let out = sqs
                    .receive_message()
                    .queue_url(&dlq)
                    .max_number_of_messages(10)
                    .send()
                    .await
                    .expect("receive");
                let messages = out.messages.unwrap_or_default();
                if messages.is_empty() {
                    return bodies;
                }
                for m in messages {
                    if let Some(h) = &m.receipt_handle {
                        let _ = sqs
                            .delete_message()
                            .queue_url(&dlq)
                            .receipt_handle(h)
                            .send()
                            .await;
                    }
                    bodies.extend(m.body);
                }
            }
        }
    };
    let mut dead_calls = dead(&r.call_events_queue).await;
    dead_calls.sort();
    let mut expected_calls = bad_calls.clone();
    expected_calls.sort();
    assert_eq!(dead_calls, expected_calls, "the call DLQ");
    assert_eq!(
        dead(&r.comment_events_queue).await,
        bad_comments,
        "the comment DLQ"
    );
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(log_dir);
}
