//! Benchmark: the first sync of an org of N contacts, from the emulator into
//! DynamoDB (moto), through the scheduled-sync handler. Reports records per
//! second, Salesforce API calls, and the sync process's peak RSS for several N
//! (each N runs in a fresh child process, so peaks do not mix).
//!
//! The emulator and moto run as separate processes: the RSS measured is the
//! product's alone. Run with `infra/scripts/bench.sh` (it builds the emulator).
//! `BENCH_SIZES=10000,100000` picks the sizes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::moto::AwsEnv;
use e2e::unique;
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::app::App;
use shared::config::{BudgetThresholds, Config, SalesforceConfig};
use shared::domain::{Connection, ConnectionStatus, SyncState, TenantId};
use shared::ports::{ConnectionStore, CursorStore, SecretStore, TenantCredentials};
use shared::sync::handler::{SyncOptions, handle};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let n: usize = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .expect("--child N");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let result = runtime.block_on(child(n));
        println!("RESULT {result}");
        return;
    }
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "first sync: contacts from the emulator into moto, through the scheduled-sync handler\n"
    );
    println!(
        "| contacts | seconds | records/s | API calls | of which query pages | expected ⌈n/2000⌉+9 | peak RSS (MB) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let out = Command::new(std::env::current_exe().expect("exe"))
            .args(["--child", &n.to_string(), "--bench"])
            .stderr(Stdio::inherit())
            .output()
            .expect("child run");
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
            eprintln!("run for {n} failed:\n{text}");
            std::process::exit(1);
        };
        let r: Value = serde_json::from_str(line).expect("result JSON");
        println!(
            "| {n} | {:.1} | {:.0} | {} | {} | {} | {:.1} |",
            r["seconds"].as_f64().unwrap_or(0.0),
            r["records_per_second"].as_f64().unwrap_or(0.0),
            r["api_calls"],
            r["query_pages"],
            n.div_ceil(2000) + 9,
            r["peak_rss_mb"].as_f64().unwrap_or(0.0),
        );
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// The emulator binary, built next to this benchmark (`cargo build --release -p sf-emulator`).
fn emulator_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("sf-emulator");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build --release -p sf-emulator` first",
        bin.display()
    );
    bin
}

struct Emulator {
    child: Child,
    base_url: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_emulator(seed: &Path) -> Emulator {
    let mut child = Command::new(emulator_binary())
        .args(["--port", "0", "--seed"])
        .arg(seed)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start emulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let base_url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("address line")
        .to_string();
    Emulator { child, base_url }
}

/// Writes the seed file record by record, so this process never holds the org.
fn write_seed(path: &Path, n: usize) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let org = json!({
        "key": "bench", "name": "Bench", "api_daily_limit": 1_000_000, "change_log": false,
        "apps": [{"name": "Modjo", "consumer_key": "bench-key", "consumer_secret": "bench-secret",
                  "callback_url": "https://app.modjo.test/integrations/salesforce/callback"}],
        "users": [{"ref": "admin", "username": "admin@bench.test", "email": "admin@bench.test", "last_name": "Admin"}],
    })
    .to_string();
    // `{"orgs":[{…,"records":[ … ]}]}`: the org object without its closing brace.
    write!(out, "{{\"orgs\":[{},\"records\":[", &org[..org.len() - 1])?;
    for i in 0..n {
        let record = json!({"type": "Contact", "fields": {
            "FirstName": "Bench", "LastName": format!("Contact {i:07}"),
            "Email": format!("contact{i}@bench-{}.example", i % 500),
            "Phone": format!("+33 6 {:02} {:02} {:02} {:02}", i / 1_000_000 % 100, i / 10_000 % 100, i / 100 % 100, i % 100),
        }});
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut out, &record)?;
    }
    out.write_all(b"]}]}")?;
    out.flush()
}

async fn child(n: usize) -> Value {
    let seed_path = std::env::temp_dir().join(format!("{}.json", unique("bench-seed")));
    write_seed(&seed_path, n).expect("write seed");
    let emulator = start_emulator(&seed_path);
    let _ = std::fs::remove_file(&seed_path);

    let aws = AwsEnv::new().await;
    let http = reqwest::Client::new();
    let tokens: Value = http
        .post(format!(
            "{}/__emulator/orgs/bench/sessions",
            emulator.base_url
        ))
        .json(&json!({"consumer_key": "bench-key", "username": "admin@bench.test"}))
        .send()
        .await
        .expect("mint tokens")
        .json()
        .await
        .expect("token JSON");
    let tenant = TenantId::parse(&unique("bench")).expect("tenant");
    let credentials = TenantCredentials {
        consumer_key: "bench-key".into(),
        consumer_secret: SecretString::from("bench-secret"),
        instance_url: emulator.base_url.clone(),
        login_url: emulator.base_url.clone(),
        refresh_token: tokens["refresh_token"].as_str().map(SecretString::from),
        access_token: None,
    };
    aws.secrets()
        .put_credentials(&tenant, &credentials)
        .await
        .expect("credentials");
    let mut connection = Connection::new(tenant.clone(), chrono::Utc::now());
    connection.status = ConnectionStatus::Connected;
    aws.store()
        .save_connection(&connection)
        .await
        .expect("connection");

    let config = Config {
        stage: "bench".into(),
        table_name: aws.resources.table.clone(),
        secret_prefix: aws.resources.secret_prefix.clone(),
        salesforce: SalesforceConfig {
            api_version: shared::config::DEFAULT_API_VERSION.into(),
            client_name: "modjo".into(),
            extra_allowed_origins: vec![url::Url::parse(&emulator.base_url).expect("url")],
            pubsub_endpoint: None,
        },
        budget: BudgetThresholds::default(),
        metrics_namespace: "Modjo/Bench".into(),
    };
    let app = App::new(config, aws.store(), aws.secrets(), None).expect("app");
    let jobs = aws.queue(&aws.resources.sync_jobs_queue);
    let syncer = app.syncer(&jobs);

    let rss_before = peak_rss_mb();
    let started = Instant::now();
    let event = e2e::stack::sync_job_event(&tenant, Duration::from_secs(3600));
    let answer = handle(&app, &syncer, event, SyncOptions::default())
        .await
        .expect("handler");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(
        answer["batchItemFailures"],
        json!([]),
        "the sync failed: {answer}"
    );
    let statuses = aws.store().sync_statuses(&tenant).await.expect("statuses");
    let contact = statuses
        .iter()
        .find(|s| s.object == "Contact")
        .expect("contact status");
    assert_eq!(contact.state, SyncState::UpToDate);
    assert_eq!(contact.records_written as usize, n);
    assert!(
        aws.store()
            .get_cursor(&tenant, "Contact")
            .await
            .expect("cursor")
            .is_some()
    );

    let counters: Value = http
        .get(format!(
            "{}/__emulator/orgs/bench/counters",
            emulator.base_url
        ))
        .send()
        .await
        .expect("counters")
        .json()
        .await
        .expect("counters JSON");
    let by_kind = &counters["by_kind"];
    let pages = ["query", "queryAll", "queryMore"]
        .iter()
        .map(|k| by_kind[*k].as_u64().unwrap_or(0))
        .sum::<u64>();
    json!({
        "n": n,
        "seconds": seconds,
        "records_per_second": n as f64 / seconds,
        "api_calls": counters["api_used"],
        "query_pages": pages,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_sync_mb": rss_before,
    })
}
