//! Benchmark (issue 16): the call-logger binary, as Lambda runs it (one process
//! behind a Lambda Runtime API), logs 1,000 calls in SQS batches of the
//! template's size (100) and of 10. Every Salesforce request takes 50 ms more
//! (the emulator's latency fault); every DynamoDB request 5 ms more (a proxy in
//! front of moto, as a real table's round trip), so that a design that waits on
//! one request after another shows as it would against DynamoDB.
//!
//! The mix, per ten calls: one whose Task a dialer already logged, five on
//! contacts (a third with open opportunities), two on leads, one on a number
//! nobody knows (SOSL, then unmatched), one meeting matched by email; one call in
//! seven already has two comments.
//!
//! Counted on the other side: DynamoDB requests by the proxy, Salesforce API
//! calls by the emulator. Peak RSS is the call-logger process's `VmHWM`.
//!
//! `infra/scripts/bench.sh calls` (`BENCH_BATCHES=100,10`, `BENCH_CALLS=1000`)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use e2e::moto::AwsEnv;
use e2e::sf::{ORG, SfWorld, WorldOptions, fields};
use e2e::stack::sqs_event;
use local_stack::functions::FunctionProcess;
use local_stack::latency::LatencyProxy;
use serde_json::json;
use sf_emulator::{Fault, SeedRecord, UserSpec};
use shared::config::vars;
use shared::domain::{CallState, MappingSource, StoredComment, TenantId, UserMapping};
use shared::ports::{CallStore, CommentStore, UserMappingStore};

const CONTACTS: usize = 1_000;
const LEADS: usize = 300;
const ACCOUNTS: usize = 100;

fn main() {
    let calls: usize = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let batches: Vec<usize> = std::env::var("BENCH_BATCHES")
        .unwrap_or_else(|_| "100,10".into())
        .split(',')
        .filter_map(|b| b.trim().parse().ok())
        .collect();
    // The call-logger binary, optimised as benchmarks are.
    let binary = local_stack::functions::build(&["call-logger"], "bench").join("call-logger");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!(
        "call logging: {calls} calls, the call-logger binary, +50 ms per Salesforce request, +5 ms per DynamoDB request\n"
    );
    println!(
        "| batch | calls/s | seconds | DynamoDB req/call | by operation (per call) | Salesforce calls/call | by kind | outcomes | peak RSS (MB) | moto's own time per request (ms) |"
    );
    println!("|---:|---:|---:|---:|---|---:|---|---|---:|---|");
    for batch in batches {
        runtime.block_on(run(&binary, calls, batch));
    }
}

struct Org {
    tenant: TenantId,
}

async fn seed(sf: &SfWorld, aws: &AwsEnv) -> Org {
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
    let mut seeds = Vec::new();
    for a in 0..ACCOUNTS {
        seeds.push(SeedRecord {
            object: "Account".into(),
            reference: Some(format!("a{a}")),
            fields: fields(json!({"Name": format!("Account {a}"), "Website": format!("https://account{a}.example")})),
        });
    }
    for i in 0..CONTACTS {
        seeds.push(SeedRecord {
            object: "Contact".into(),
            reference: Some(format!("c{i}")),
            fields: fields(json!({"LastName": format!("Contact {i}"), "Phone": contact_phone(i),
                "Email": format!("person{i}@account{}.example", i % ACCOUNTS), "AccountId": format!("@a{}", i % ACCOUNTS)})),
        });
        // A third of the contacts are on an open opportunity.
        if i % 3 == 0 {
            seeds.push(SeedRecord {
                object: "Opportunity".into(),
                reference: Some(format!("o{i}")),
                fields: fields(json!({"Name": format!("Deal {i}"), "StageName": "Prospecting", "CloseDate": "$today+30d",
                    "AccountId": format!("@a{}", i % ACCOUNTS), "CreatedDate": "$now-30d"})),
            });
            seeds.push(SeedRecord {
                object: "OpportunityContactRole".into(),
                reference: None,
                fields: fields(json!({"OpportunityId": format!("@o{i}"), "ContactId": format!("@c{i}"), "IsPrimary": true})),
            });
        }
        // The dialer already logged one call in ten.
        if i % 10 == 0 {
            seeds.push(SeedRecord {
                object: "Task".into(),
                reference: None,
                fields: fields(json!({"Subject": "Outbound answered call", "TaskSubtype": "Call", "CallType": "Outbound",
                    "Status": "Completed", "WhoId": format!("@c{i}"), "OwnerId": "@rep",
                    "Description": "Recording: https://dialer.example/r", "CreatedDate": "$now-1h"})),
            });
        }
    }
    for l in 0..LEADS {
        seeds.push(SeedRecord {
            object: "Lead".into(),
            reference: Some(format!("l{l}")),
            fields: fields(json!({"LastName": format!("Lead {l}"), "Company": "Prospect", "Phone": lead_phone(l)})),
        });
    }
    sf.emu.seed(ORG, &seeds).expect("seed");
    let tenant = sf.connect_tenant(aws).await;
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
    Org { tenant }
}

fn contact_phone(i: usize) -> String {
    format!(
        "06 20 {:02} {:02} {:02}",
        i / 10000 % 100,
        i / 100 % 100,
        i % 100
    )
}

fn lead_phone(l: usize) -> String {
    format!(
        "07 30 {:02} {:02} {:02}",
        l / 10000 % 100,
        l / 100 % 100,
        l % 100
    )
}

/// Call `i` of the mix.
fn call(org: &Org, i: usize, started_at: &str) -> String {
    let c = (i / 10 * 10 + i % 10) % CONTACTS;
    let (direction, participants) = match i % 10 {
        // The dialer's call on a contact whose index is a multiple of ten.
        0 => (
            "outbound",
            json!([{"role": "external", "phone": contact_phone(i / 10 * 10 % CONTACTS)}]),
        ),
        1..=5 => (
            "outbound",
            json!([{"role": "external", "name": "Someone", "phone": contact_phone(c)}]),
        ),
        6 | 7 => (
            "inbound",
            json!([{"role": "external", "phone": lead_phone(i % LEADS)}]),
        ),
        8 => (
            "outbound",
            json!([{"role": "external", "phone": format!("+33 1 99 {:02} {:02} {:02}", i / 10000 % 100, i / 100 % 100, i % 100)}]),
        ),
        _ => (
            "meeting",
            json!([
                {"role": "external", "name": "Guest", "email": format!("person{c}@account{}.example", c % ACCOUNTS)},
                {"role": "internal", "userId": "usr_12", "email": "bob@modjo.ai"}
            ]),
        ),
    };
    json!({"version": 1, "tenantId": org.tenant, "callId": format!("bench_{i}"), "url": format!("https://app.modjo.ai/calls/bench_{i}"),
        "title": format!("Call {i}"), "direction": direction, "startedAt": started_at, "durationSeconds": 300, "hostUserId": "usr_12",
        "source": {"provider": "aircall"}, "participants": participants, "summary": "Pricing, next steps and a follow-up meeting."})
    .to_string()
}

async fn run(binary: &std::path::Path, calls: usize, batch: usize) {
    let aws = AwsEnv::new().await;
    let sf = SfWorld::start(WorldOptions {
        api_daily_limit: Some(1_000_000),
        ..Default::default()
    })
    .await;
    let org = seed(&sf, &aws).await;
    // The index, as the scheduled sync builds it.
    let jobs = aws.queue(&aws.resources.sync_jobs_queue);
    let app = e2e::stack::build_app(
        &aws,
        &sf,
        Duration::from_secs(600),
        e2e::stack::CALLBACK_URL,
    );
    let syncer = app.syncer(&jobs);
    shared::sync::handler::handle(
        &app,
        &syncer,
        e2e::stack::sync_job_event(&org.tenant, Duration::from_secs(600)),
        shared::sync::handler::SyncOptions::default(),
    )
    .await
    .expect("sync");
    // Comments already written on one call in seven.
    let store = aws.store();
    for i in (0..calls).step_by(7) {
        for k in 0..2 {
            let c = StoredComment {
                call_id: format!("bench_{i}"),
                comment_id: format!("cmt_{k}"),
                author_name: "Alice".into(),
                text: format!("Remark {k} on the pricing"),
                at_second: 30 * k,
                updated_at: Utc::now(),
                deleted: false,
            };
            store
                .upsert_comment(&org.tenant, &c)
                .await
                .expect("comment");
        }
    }

    let proxy = LatencyProxy::start(&aws.endpoint, Duration::from_millis(5))
        .await
        .expect("proxy");
    let mut env: Vec<(String, String)> = aws
        .resources
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for (k, v) in [
        (vars::STAGE, "bench".to_string()),
        (
            vars::SALESFORCE_EXTRA_ALLOWED_ORIGINS,
            sf.base_url().to_string(),
        ),
        ("AWS_ENDPOINT_URL", proxy.endpoint()),
        ("AWS_REGION", "eu-west-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("RUST_LOG", "warn".into()),
    ] {
        env.push((k.to_string(), v));
    }
    let log_dir = std::env::temp_dir().join(format!("modjo-bench-calls-{}", std::process::id()));
    let logger = FunctionProcess::spawn("call-logger", binary, &env, &log_dir)
        .await
        .expect("call-logger starts");
    assert!(logger.ready(Duration::from_secs(30)).await);

    sf.emu
        .inject(ORG, Fault::Latency { ms: 50 })
        .expect("latency");
    sf.emu.reset_counters(ORG).expect("counters");
    proxy.reset_counts();
    let started_at = (Utc::now() - chrono::Duration::minutes(62)).to_rfc3339();
    let bodies: Vec<String> = (0..calls).map(|i| call(&org, i, &started_at)).collect();
    let started = Instant::now();
    let mut retried = 0;
    for chunk in bodies.chunks(batch) {
        let event = sqs_event("call-events", chunk);
        let answer = logger
            .invoke(event, Duration::from_secs(120))
            .await
            .expect("the batch is answered");
        retried += answer["batchItemFailures"].as_array().map_or(0, Vec::len);
    }
    let seconds = started.elapsed().as_secs_f64();
    let rss_mb = peak_rss_mb(logger.pid());
    let dynamo = proxy.dynamodb_requests();
    let moto_time = proxy.upstream_time();
    let counters = sf.emu.counters(ORG).expect("counters");

    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..calls {
        let state = store
            .get_outcome(&org.tenant, &format!("bench_{i}"))
            .await
            .expect("outcome")
            .map_or("none".to_string(), |o| state_name(o.state));
        *states.entry(state).or_default() += 1;
    }
    let dynamo_total: u64 = dynamo.values().sum();
    let per = |n: u64| n as f64 / calls as f64;
    println!(
        "| {batch} | {:.0} | {seconds:.1} | {:.2} | {} | {:.3} | {} | {}{} | {rss_mb:.1} | {} |",
        calls as f64 / seconds,
        per(dynamo_total),
        dynamo
            .iter()
            .map(|(k, v)| format!("{k} {:.2}", per(*v)))
            .collect::<Vec<_>>()
            .join(", "),
        per(counters.api_used),
        counters
            .by_kind
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        states
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        if retried > 0 {
            format!(" ({retried} retried)")
        } else {
            String::new()
        },
        moto_time
            .iter()
            .map(|(op, t)| {
                let n = dynamo.get(op).copied().unwrap_or(1).max(1);
                format!("{op} {:.1}", t.as_secs_f64() * 1000.0 / n as f64)
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
}

fn state_name(state: CallState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A process's peak resident set (`VmHWM`), in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
