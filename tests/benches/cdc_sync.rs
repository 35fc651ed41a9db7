//! Benchmark: 10,000 Opportunity changes synced through Change Data Capture.
//!
//! 2,000 opportunities (with a contact role each) are synced once (the first
//! subscription's SOQL re-sync), then a salesperson-like writer changes each of
//! them five times over REST (sObject Collections, 200 a request, each record its
//! own values, so each change is its own event). The next sync job, through the
//! scheduled-sync handler, reads the 10,000 events from the emulator's Pub/Sub
//! API and applies them to DynamoDB (moto). Reports the REST API calls spent on
//! Opportunity and OpportunityContactRole (target 0) and the events applied per
//! second.
//!
//! `infra/scripts/bench.sh cdc`

use std::time::{Duration, Instant};

use e2e::moto::AwsEnv;
use e2e::sf::{ORG, SfWorld, WorldOptions, fields};
use e2e::stack::{build_app, sync_job_event};
use serde_json::{Value, json};
use sf_emulator::SeedRecord;
use shared::ports::{CursorStore, RecordStore};
use shared::sync::handler::{SyncOptions, handle};

const OPPORTUNITIES: usize = 2_000;
const ROUNDS: usize = 5;

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let aws = AwsEnv::new().await;
    let sf = SfWorld::start(WorldOptions {
        api_daily_limit: Some(1_000_000),
        ..WorldOptions::with_cdc()
    })
    .await;
    let mut seeds = vec![SeedRecord {
        object: "Account".into(),
        reference: Some("acme".into()),
        fields: fields(json!({"Name": "Acme"})),
    }];
    for i in 0..OPPORTUNITIES {
        seeds.push(SeedRecord {
            object: "Contact".into(),
            reference: Some(format!("c{i}")),
            fields: fields(json!({"LastName": format!("Contact {i}"), "AccountId": "@acme"})),
        });
        seeds.push(SeedRecord {
            object: "Opportunity".into(),
            reference: Some(format!("o{i}")),
            fields: fields(json!({"Name": format!("Deal {i:05}"), "StageName": "Prospecting", "CloseDate": "2027-03-31", "Amount": 1000, "AccountId": "@acme"})),
        });
        seeds.push(SeedRecord {
            object: "OpportunityContactRole".into(),
            reference: None,
            fields: fields(json!({"OpportunityId": format!("@o{i}"), "ContactId": format!("@c{i}"), "Role": "Decision Maker"})),
        });
    }
    let ids = sf.emu.seed(ORG, &seeds).expect("seed");
    let opportunities: Vec<String> = ids.iter().skip(2).step_by(3).cloned().collect();
    assert_eq!(opportunities.len(), OPPORTUNITIES);
    let tenant = sf.connect_tenant(&aws).await;
    let app = build_app(
        &aws,
        &sf,
        Duration::from_secs(600),
        e2e::stack::CALLBACK_URL,
    );
    let jobs = aws.queue(&aws.resources.sync_jobs_queue);
    let syncer = app.syncer(&jobs);
    let sync = || async {
        let answer = handle(
            &app,
            &syncer,
            sync_job_event(&tenant, Duration::from_secs(900)),
            SyncOptions::default(),
        )
        .await
        .expect("sync");
        assert_eq!(
            answer["batchItemFailures"],
            json!([]),
            "the sync failed: {answer}"
        );
    };
    // The first sync subscribes: a SOQL re-sync, then the feed.
    sync().await;
    assert!(
        aws.store()
            .get_replay_id(&tenant, "/data/OpportunityChangeEvent")
            .await
            .expect("replay id")
            .is_some()
    );

    let opportunity_events = || {
        sf.emu
            .cdc_events(ORG)
            .expect("events")
            .iter()
            .filter(|e| e.topic == "/data/OpportunityChangeEvent")
            .count()
    };
    let already_synced = opportunity_events();

    // 10,000 changes: every opportunity, five times.
    let user = sf.user();
    let stages = [
        "Qualification",
        "Needs Analysis",
        "Proposal/Price Quote",
        "Negotiation/Review",
        "Closed Won",
    ];
    for (round, stage) in stages.iter().enumerate().take(ROUNDS) {
        for (chunk_index, chunk) in opportunities.chunks(200).enumerate() {
            let records: Vec<(String, Value)> = chunk
                .iter()
                .enumerate()
                .map(|(k, id)| {
                    let i = chunk_index * 200 + k;
                    (
                        id.clone(),
                        json!({"StageName": stage, "Amount": 1000 + round * 10_000 + i}),
                    )
                })
                .collect();
            user.update_each("Opportunity", &records).await;
        }
    }
    let events = opportunity_events() - already_synced;

    sf.emu.reset_counters(ORG).expect("counters");
    let started = Instant::now();
    sync().await;
    let seconds = started.elapsed().as_secs_f64();

    let statuses = aws.store().sync_statuses(&tenant).await.expect("statuses");
    let status = |object: &str| {
        statuses
            .iter()
            .find(|s| s.object == object)
            .expect("status")
            .clone()
    };
    let opp = status("Opportunity");
    let role = status("OpportunityContactRole");
    // Every opportunity holds its last values.
    let stored = aws
        .store()
        .get_records(&tenant, &opportunities)
        .await
        .expect("records");
    assert_eq!(stored.len(), OPPORTUNITIES);
    for record in &stored {
        assert_eq!(record.fields["StageName"], "Closed Won", "{record:?}");
    }
    let counters = sf.emu.counters(ORG).expect("counters");
    let applied_per_second = opp.records_read as f64 / (opp.duration_ms.max(1) as f64 / 1000.0);
    println!(
        "Change Data Capture: {OPPORTUNITIES} opportunities changed {ROUNDS} times over REST, then one sync job\n"
    );
    println!(
        "| change events | REST calls on Opportunity | on OpportunityContactRole | Opportunity feed seconds | events applied/s | whole job seconds | job's API calls (other objects) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {events} | {} | {} | {:.1} | {applied_per_second:.0} | {seconds:.1} | {} |",
        opp.api_calls,
        role.api_calls,
        opp.duration_ms as f64 / 1000.0,
        counters.api_used,
    );
    assert_eq!(
        opp.records_read as usize, events,
        "every event applied: {opp:?}"
    );
}
