//! Benchmark (harness = false): time to answer a 2,000-record query page from an
//! org of 100,000 contacts (first page and follow-up pages, over HTTP), and the
//! process RSS with 1,000,000 records loaded (measured in a fresh child process,
//! with the change log on and off).
//!
//! `CARGO_TARGET_DIR=/work/target-emu cargo bench -p sf-emulator`

use serde_json::{Value, json};
use sf_emulator::{AppSpec, Emulator, Options, OrgSpec, SeedRecord, UserSpec};
use std::time::{Duration, Instant};

const CONTACTS: usize = 100_000;
const RUNS: usize = 30;

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(v[v.len() / 2]);
    let p95 = ms(v[((v.len() as f64 * 0.95).ceil() as usize).min(v.len()) - 1]);
    (median, p95, ms(v[v.len() - 1]))
}

fn record(object: &str, fields: Value) -> SeedRecord {
    SeedRecord {
        object: object.into(),
        reference: None,
        fields: fields.as_object().cloned().unwrap_or_default(),
    }
}

fn setup_org(emu: &Emulator, key: &str, change_log: bool) -> String {
    emu.create_org(OrgSpec {
        key: Some(key.into()),
        api_daily_limit: Some(100_000_000),
        change_log: Some(change_log),
        ..Default::default()
    })
    .expect("org");
    emu.create_user(
        key,
        UserSpec {
            username: format!("admin@{key}.test"),
            email: format!("admin@{key}.test"),
            last_name: "Admin".into(),
            ..Default::default()
        },
    )
    .expect("user");
    let app = emu
        .create_app(
            key,
            AppSpec {
                callback_url: "http://127.0.0.1:9/cb".into(),
                ..Default::default()
            },
        )
        .expect("app");
    let tokens = emu
        .mint_tokens(key, &app.consumer_key, &format!("admin@{key}.test"))
        .expect("tokens");
    tokens["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Loads `n` contacts (and `n / 10` accounts); returns the ids of the first `keep`.
fn load_contacts(emu: &Emulator, key: &str, n: usize, keep: usize) -> Vec<String> {
    let accounts: Vec<SeedRecord> = (0..n / 10)
        .map(|i| record("Account", json!({"Name": format!("Account {i}"), "Website": format!("https://a{i}.example.com")})))
        .collect();
    let account_ids = emu.seed(key, &accounts).expect("accounts");
    let mut ids = Vec::with_capacity(keep);
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let recs: Vec<SeedRecord> = chunk
            .iter()
            .map(|i| {
                record(
                    "Contact",
                    json!({
                        "FirstName": format!("First{i}"),
                        "LastName": format!("Last{i:07}"),
                        "Email": format!("person{i}@example.com"),
                        "Phone": format!("+33 6 {:02} {:02} {:02} {:02}", i % 100, (i / 100) % 100, (i / 10_000) % 100, 42),
                        "AccountId": account_ids[i % account_ids.len()],
                        "Title": "Head of Sales",
                    }),
                )
            })
            .collect();
        let created = emu.seed(key, &recs).expect("contacts");
        let room = keep.saturating_sub(ids.len());
        ids.extend(created.into_iter().take(room));
    }
    ids
}

async fn get(http: &reqwest::Client, url: &str, token: &str, q: Option<&str>) -> (Duration, Value) {
    let t = Instant::now();
    let mut req = http.get(url).bearer_auth(token);
    if let Some(q) = q {
        req = req.query(&[("q", q)]);
    }
    let resp = req.send().await.expect("request");
    assert!(resp.status().is_success(), "{}", resp.status());
    let body = resp.bytes().await.expect("body");
    let elapsed = t.elapsed();
    (elapsed, serde_json::from_slice(&body).expect("json"))
}

/// Env var that makes the process load 1,000,000 records and report memory
/// (value `on` or `off`: the change log).
const MILLION: &str = "SF_EMU_BENCH_MILLION";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Ok(mode) = std::env::var(MILLION) {
        million(mode == "on").await;
        return;
    }
    let emu = Emulator::start(Options::default()).await.expect("start");
    let base = emu.base_url().to_string();
    let http = reqwest::Client::new();
    let token = setup_org(&emu, "bench", true);
    let t = Instant::now();
    load_contacts(&emu, "bench", CONTACTS, 0);
    emu.shrink_to_fit("bench").expect("shrink");
    println!(
        "loaded {CONTACTS} contacts (+{} accounts) in {:.1} s",
        CONTACTS / 10,
        t.elapsed().as_secs_f64()
    );
    let url = format!("{base}/services/data/v62.0/query");
    let soql = "SELECT Id, FirstName, LastName, Email, Phone, AccountId, Account.Name, SystemModstamp, IsDeleted FROM Contact ORDER BY SystemModstamp, Id";
    // Warm up.
    let (_, page) = get(&http, &url, &token, Some(soql)).await;
    assert_eq!(page["totalSize"], CONTACTS);
    assert_eq!(page["records"].as_array().map(Vec::len), Some(2000));

    let mut first = Vec::new();
    for _ in 0..RUNS {
        let (d, _) = get(&http, &url, &token, Some(soql)).await;
        first.push(d);
    }
    let cursor = format!(
        "SELECT Id, LastName, Email, SystemModstamp FROM Contact WHERE SystemModstamp > 2020-01-01T00:00:00Z OR (SystemModstamp = 2020-01-01T00:00:00Z AND Id > '{}') ORDER BY SystemModstamp, Id",
        page["records"][0]["Id"]
            .as_str()
            .unwrap_or("003000000000000AAA")
    );
    let mut cursor_first = Vec::new();
    for _ in 0..RUNS {
        let (d, _) = get(&http, &url, &token, Some(&cursor)).await;
        cursor_first.push(d);
    }
    let mut follow = Vec::new();
    let (_, mut page) = get(&http, &url, &token, Some(soql)).await;
    while follow.len() < RUNS {
        let Some(next) = page["nextRecordsUrl"].as_str().map(str::to_string) else {
            let (_, p) = get(&http, &url, &token, Some(soql)).await;
            page = p;
            continue;
        };
        let (d, p) = get(&http, &format!("{base}{next}"), &token, None).await;
        assert_eq!(p["records"].as_array().map(Vec::len), Some(2000));
        follow.push(d);
        page = p;
    }
    println!(
        "\n2,000-record page from an org of {CONTACTS} contacts (HTTP round trip, {RUNS} runs, release):"
    );
    for (name, v) in [
        (
            "first page (ORDER BY SystemModstamp, Id, with Account.Name)",
            first,
        ),
        (
            "first page of a (SystemModstamp, Id) cursor query",
            cursor_first,
        ),
        ("follow-up page (nextRecordsUrl)", follow),
    ] {
        let (median, p95, max) = stats(v);
        println!("  {name:<62} median {median:7.2} ms   p95 {p95:7.2} ms   max {max:7.2} ms");
    }

    emu.shutdown().await;

    // Memory with 1,000,000 records, each in a fresh process (RSS only grows).
    let exe = std::env::current_exe().expect("current exe");
    for mode in ["on", "off"] {
        let out = std::process::Command::new(&exe)
            .env(MILLION, mode)
            .output()
            .expect("child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

async fn million(change_log: bool) {
    let emu = Emulator::start(Options::default()).await.expect("start");
    let before = rss_mb();
    let _token = setup_org(&emu, "million", change_log);
    let t = Instant::now();
    // 72,000 accounts + 720,000 contacts + 208,000 call tasks = 1,000,000 records.
    let contacts = load_contacts(&emu, "million", 720_000, 208_000);
    for chunk in contacts.chunks(10_000) {
        let tasks: Vec<SeedRecord> = chunk
            .iter()
            .enumerate()
            .map(|(i, c)| {
                record(
                    "Task",
                    json!({
                        "Subject": format!("Outbound answered call to +33 6 12 34 {:02} {:02}", i % 100, i / 100 % 100),
                        "TaskSubtype": "Call",
                        "Type": "Call",
                        "CallType": "Outbound",
                        "CallDurationInSeconds": 120 + i as i64 % 600,
                        "Status": "Completed",
                        "WhoId": c,
                    }),
                )
            })
            .collect();
        emu.seed("million", &tasks).expect("tasks");
    }
    drop(contacts);
    let total = 72_000 + 720_000 + 208_000;
    emu.shrink_to_fit("million").expect("shrink");
    let after = rss_mb();
    let fp = emu.footprint("million").expect("footprint");
    let mb = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!(
        "\n{total} records loaded in {:.1} s (change log {}): process RSS {after:.0} MB (before loading: {before:.0} MB, delta {:.0} MB, {:.0} bytes/record); heap: columns {:.0} MB ({:.0} bytes/record), change log {:.0} MB ({} entries)",
        t.elapsed().as_secs_f64(),
        if change_log { "on" } else { "off" },
        after - before,
        (after - before) * 1024.0 * 1024.0 / total as f64,
        mb(fp.records_bytes),
        fp.records_bytes as f64 / fp.records as f64,
        mb(fp.change_log_bytes),
        fp.change_log_entries,
    );
    emu.shutdown().await;
}
