//! Benchmark: 1,000 calls through the call-logger handler, in SQS batches of 10,
//! with 50 ms of latency injected into every Salesforce request. Reports calls per
//! second and Salesforce API calls per logged call (target ≤ 0.3; logging one
//! call at a time needs at least 2: a lookup and a write).
//!
//! `infra/scripts/bench.sh calls`

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use chrono::Utc;
use e2e::moto::AwsEnv;
use e2e::sf::{ORG, SfWorld, WorldOptions, fields};
use e2e::stack::{build_app, lambda_event, sqs_event, sync_job_event};
use serde_json::json;
use sf_emulator::{Fault, SeedRecord, UserSpec};
use shared::calls::CallLogger;
use shared::calls::handler::handle;
use shared::domain::{CallState, MappingSource, UserMapping};
use shared::ports::{CallStore, UserMappingStore};
use shared::sync::Syncer;
use shared::sync::handler::SyncOptions;

const CALLS: usize = 1_000;
const BATCH: usize = 10;
const CONTACTS: usize = 1_000;

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let aws = AwsEnv::new().await;
    let sf = SfWorld::start(WorldOptions {
        api_daily_limit: Some(1_000_000),
        ..Default::default()
    })
    .await;
    let rep = sf
        .emu
        .create_user(
            ORG,
            UserSpec {
                reference: Some("rep".into()),
                username: "rep@acme.test".into(),
                email: "rep@acme.test".into(),
                last_name: "Rep".into(),
                ..Default::default()
            },
        )
        .expect("rep")
        .id;
    let mut seeds = vec![SeedRecord {
        object: "Account".into(),
        reference: Some("acme".into()),
        fields: fields(json!({"Name": "Acme"})),
    }];
    for i in 0..CONTACTS {
        seeds.push(SeedRecord {
            object: "Contact".into(),
            reference: Some(format!("c{i}")),
            fields: fields(json!({"LastName": format!("Contact {i}"), "Phone": format!("06 20 {:02} {:02} {:02}", i / 10000 % 100, i / 100 % 100, i % 100), "AccountId": "@acme"})),
        });
        // One call in ten was already logged by the dialer.
        if i % 10 == 0 {
            seeds.push(SeedRecord {
                object: "Task".into(),
                reference: None,
                fields: fields(json!({"Subject": "Outbound answered call", "TaskSubtype": "Call", "CallType": "Outbound", "Status": "Completed",
                    "WhoId": format!("@c{i}"), "OwnerId": "@rep", "Description": "Recording: https://dialer.example/r", "CreatedDate": "$now-1h"})),
            });
        }
    }
    sf.emu.seed(ORG, &seeds).expect("seed");
    let tenant = sf.connect_tenant(&aws).await;
    let app = build_app(
        &aws,
        &sf,
        Duration::from_secs(600),
        e2e::stack::CALLBACK_URL,
    );
    aws.store()
        .put_mapping(
            &tenant,
            &UserMapping {
                modjo_user_id: "usr_12".into(),
                sf_user_id: rep,
                source: MappingSource::Manual,
                updated_at: Utc::now(),
            },
        )
        .await
        .expect("mapping");
    let jobs = aws.queue(&aws.resources.sync_jobs_queue);
    let syncer = Syncer::new(&app, &jobs);
    shared::sync::handler::handle(
        &syncer,
        sync_job_event(&tenant, Duration::from_secs(600)),
        SyncOptions::default(),
    )
    .await
    .expect("sync");

    sf.emu
        .inject(ORG, Fault::Latency { ms: 50 })
        .expect("latency");
    sf.emu.reset_counters(ORG).expect("counters");
    let dlq = aws.queue(&aws.resources.dead_letter_queues[&aws.resources.call_events_queue]);
    let source = aws.queue(&aws.resources.call_events_queue);
    let logger = CallLogger::new(&app, &source, &dlq);
    let started_at = (Utc::now() - chrono::Duration::minutes(62)).to_rfc3339();
    let started = Instant::now();
    let mut retried = 0;
    for batch in 0..CALLS / BATCH {
        let bodies: Vec<String> = (0..BATCH)
            .map(|k| {
                let i = batch * BATCH + k;
                let c = i % CONTACTS;
                json!({"version": 1, "tenantId": tenant, "callId": format!("bench_{i}"), "url": format!("https://app.modjo.ai/calls/bench_{i}"),
                    "title": format!("Call {i}"), "direction": "outbound", "startedAt": started_at, "durationSeconds": 300, "hostUserId": "usr_12",
                    "participants": [{"role": "external", "phone": format!("+33 6 20 {:02} {:02} {:02}", c / 10000 % 100, c / 100 % 100, c % 100)}]})
                .to_string()
            })
            .collect();
        let event: SqsEvent =
            serde_json::from_value(sqs_event("call-events", &bodies)).expect("event");
        let response = handle(
            &logger,
            &source,
            lambda_event(event, Duration::from_secs(120)),
        )
        .await;
        retried += response.batch_item_failures.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    let counters = sf.emu.counters(ORG).expect("counters");
    let mut logged = 0;
    for i in 0..CALLS {
        let o = aws
            .store()
            .get_outcome(&tenant, &format!("bench_{i}"))
            .await
            .expect("outcome");
        if o.is_some_and(|o| matches!(o.state, CallState::Created | CallState::Enriched)) {
            logged += 1;
        }
    }
    println!("call logging: {CALLS} calls in SQS batches of {BATCH}, 50 ms Salesforce latency\n");
    println!(
        "| calls logged | retried items | seconds | calls/s | Salesforce API calls | per logged call | by kind |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---|");
    println!(
        "| {logged} | {retried} | {seconds:.1} | {:.1} | {} | {:.2} | {} |",
        logged as f64 / seconds,
        counters.api_used,
        counters.api_used as f64 / logged.max(1) as f64,
        counters
            .by_kind
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
