//! SOSL, getUpdated/getDeleted, fault injection, and the binary.

// Test code: unwrap on fixtures is the assertion (clippy.toml allows it in #[test] fns; helpers too).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use sf_emulator::{FailureKind, Fault};
use std::time::{Duration, Instant};

async fn search(env: &Env, at: &str, sosl: &str) -> (u16, Value) {
    let r = env
        .http
        .get(env.url(&format!("{V}/search/")))
        .query(&[("q", sosl)])
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

fn phone_query(term: &str) -> String {
    format!(
        "FIND {{{term}}} IN PHONE FIELDS RETURNING Contact(Id,Phone,MobilePhone,AccountId),Lead(Id,Phone,MobilePhone,IsConverted)"
    )
}

#[tokio::test]
async fn sosl_phone_search_matches_digits_strictly() {
    let env = env().await;
    env.seed(vec![
        (
            "Contact",
            "fr_local",
            json!({"LastName": "Local", "MobilePhone": "06 12 34 56 78"}),
        ),
        (
            "Contact",
            "fr_intl",
            json!({"LastName": "Intl", "Phone": "+33 6 12 34 56 78"}),
        ),
        (
            "Lead",
            "us",
            json!({"LastName": "Us", "Company": "Co", "Phone": "(415) 555-0132"}),
        ),
        (
            "Contact",
            "dots",
            json!({"LastName": "Dots", "Phone": "01.42.68.53.00"}),
        ),
    ]);
    let at = env.token().await;
    let r = |n: &str| env.emu.seed_ref("acme", n).unwrap();
    let raw = env
        .http
        .get(env.url(&format!("{V}/search/")))
        .query(&[("q", phone_query("0612345678"))])
        .bearer_auth(&at)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_key_order(
        &raw,
        &[
            "searchRecords",
            "attributes",
            "Id",
            "Phone",
            "MobilePhone",
            "AccountId",
        ],
    );
    let body: Value = serde_json::from_str(&raw).unwrap();
    let recs = body["searchRecords"].as_array().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["Id"], r("fr_local"));
    assert_eq!(recs[0]["attributes"]["type"], "Contact");
    let (_, body) = search(&env, &at, &phone_query("\\+33612345678")).await;
    assert_eq!(body["searchRecords"][0]["Id"], r("fr_intl"));
    assert_eq!(body["searchRecords"].as_array().unwrap().len(), 1);
    let (_, body) = search(&env, &at, &phone_query("33612345678")).await;
    assert_eq!(body["searchRecords"][0]["Id"], r("fr_intl"));
    let (_, body) = search(&env, &at, &phone_query("4155550132")).await;
    assert_eq!(body["searchRecords"][0]["attributes"]["type"], "Lead");
    assert_eq!(body["searchRecords"][0]["IsConverted"], false);
    let (_, body) = search(&env, &at, &phone_query("0142685300")).await;
    assert_eq!(body["searchRecords"][0]["Id"], r("dots"));
    // Unescaped reserved characters are refused.
    let (s, body) = search(&env, &at, &phone_query("+33612345678")).await;
    assert_eq!((s, error_code(&body)), (400, "MALFORMED_SEARCH"));
    let (s, body) = search(&env, &at, "FIND {x}").await;
    assert_eq!((s, error_code(&body)), (400, "MALFORMED_SEARCH"));
    let (s, body) = search(&env, &at, "FIND {0612345678} RETURNING Foo(Id)").await;
    assert_eq!((s, error_code(&body)), (400, "INVALID_TYPE"));
    let (s, body) = search(&env, &at, "FIND {0612345678} RETURNING Contact(Nope)").await;
    assert_eq!((s, error_code(&body)), (400, "INVALID_FIELD"));
    let (s, body) = search(
        &env,
        &at,
        "FIND {Local} IN NAME FIELDS RETURNING Contact(Id, Name)",
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(body["searchRecords"][0]["Name"], "Local");
    assert_eq!(
        env.emu.counters("acme").unwrap().by_kind.get("search"),
        Some(&10)
    );
}

fn ids(body: &Value) -> Vec<String> {
    let mut v: Vec<String> = body["searchRecords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn sosl_search_terms_with_logical_operators() {
    let env = env().await;
    env.seed(vec![
        (
            "Contact",
            "fr_local",
            json!({"FirstName": "Jean", "LastName": "Martin", "MobilePhone": "06 12 34 56 78"}),
        ),
        (
            "Lead",
            "fr_intl",
            json!({"FirstName": "Jean", "LastName": "Dupont", "Company": "Acme", "Phone": "+33 6 12 34 56 78"}),
        ),
        (
            "Contact",
            "us",
            json!({"FirstName": "Bob", "LastName": "Jones", "Phone": "(415) 555-0132"}),
        ),
        (
            "Contact",
            "other",
            json!({"FirstName": "Sally", "LastName": "Smith", "Phone": "07 00 00 00 00"}),
        ),
    ]);
    let at = env.token().await;
    let r = |n: &str| env.emu.seed_ref("acme", n).unwrap();
    let sorted = |names: &[&str]| {
        let mut v: Vec<String> = names.iter().map(|n| r(n)).collect();
        v.sort();
        v
    };
    let returning = "RETURNING Contact(Id, LastName), Lead(Id, LastName)";
    // OR across phone variants: each operand compared by digits, strictly.
    let (s, body) = search(
        &env,
        &at,
        &format!("FIND {{0612345678 OR 33612345678}} IN PHONE FIELDS {returning}"),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(ids(&body), sorted(&["fr_local", "fr_intl"]));
    // Escaped reserved characters inside OR operands; keywords in any case.
    let (_, body) = search(
        &env,
        &at,
        &format!(
            "FIND {{\\+33612345678 or \\(415\\)555\\-0132 Or 0999999999}} IN PHONE FIELDS {returning}"
        ),
    )
    .await;
    assert_eq!(ids(&body), sorted(&["fr_intl", "us"]));
    // A phone written with spaces inside an OR needs parentheses (or quotes).
    let (_, body) = search(
        &env,
        &at,
        &format!(
            "FIND {{(06 12 34 56 78) OR \"\\+33 6 12 34 56 78\"}} IN PHONE FIELDS {returning}"
        ),
    )
    .await;
    assert_eq!(ids(&body), sorted(&["fr_local", "fr_intl"]));
    // AND.
    let (_, body) = search(
        &env,
        &at,
        &format!("FIND {{jean AND martin}} IN NAME FIELDS {returning}"),
    )
    .await;
    assert_eq!(ids(&body), sorted(&["fr_local"]));
    // AND NOT.
    let (_, body) = search(
        &env,
        &at,
        &format!("FIND {{jean AND NOT martin}} IN NAME FIELDS {returning}"),
    )
    .await;
    assert_eq!(ids(&body), sorted(&["fr_intl"]));
    // Parentheses.
    let (_, body) = search(
        &env,
        &at,
        &format!("FIND {{(bob AND jones) OR (sally AND smith)}} IN NAME FIELDS {returning}"),
    )
    .await;
    assert_eq!(ids(&body), sorted(&["us", "other"]));
    let (_, body) = search(
        &env,
        &at,
        &format!("FIND {{jean AND NOT (martin OR smith)}} IN ALL FIELDS {returning}"),
    )
    .await;
    assert_eq!(ids(&body), sorted(&["fr_intl"]));
    // A phrase: the words in sequence.
    let (_, body) = search(
        &env,
        &at,
        &format!("FIND {{\"jean dupont\" OR \"jones bob\"}} IN NAME FIELDS {returning}"),
    )
    .await;
    assert_eq!(ids(&body), sorted(&["fr_intl"]));
    // Malformed operator sequences and unescaped reserved characters are refused.
    for bad in [
        "FIND {a OR}",
        "FIND {0612345678 OR}",
        "FIND {OR 0612345678}",
        "FIND {0612345678 OR OR 33612345678}",
        "FIND {jean AND NOT}",
        "FIND {NOT jean}",
        "FIND {jean OR martin AND smith}",
        "FIND {(jean OR martin}",
        "FIND {0612345678 OR +33612345678}",
        "FIND {0612345678 OR x}",
    ] {
        let (s, body) = search(&env, &at, &format!("{bad} IN PHONE FIELDS {returning}")).await;
        assert_eq!((s, error_code(&body)), (400, "MALFORMED_SEARCH"), "{bad}");
    }
}

#[tokio::test]
async fn search_index_lag_hides_new_records() {
    let env = env().await;
    let at = env.token().await;
    // An org whose index lags 60 s.
    env.emu
        .create_org(sf_emulator::OrgSpec {
            key: Some("lag".into()),
            search_index_lag_seconds: Some(60),
            ..Default::default()
        })
        .unwrap();
    let _ = at;
    let user = env
        .emu
        .create_user(
            "lag",
            sf_emulator::UserSpec {
                username: "u@lag.test".into(),
                email: "u@lag.test".into(),
                last_name: "U".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let app = env
        .emu
        .create_app(
            "lag",
            sf_emulator::AppSpec {
                callback_url: CALLBACK.into(),
                ..Default::default()
            },
        )
        .unwrap();
    let tokens = env
        .emu
        .mint_tokens("lag", &app.consumer_key, &user.username)
        .unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    env.emu
        .seed(
            "lag",
            &[sf_emulator::SeedRecord {
                object: "Contact".into(),
                reference: None,
                fields: json!({"LastName": "New", "Phone": "0612345678"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            }],
        )
        .unwrap();
    let (_, body) = search(&env, at, &phone_query("0612345678")).await;
    assert_eq!(body["searchRecords"].as_array().unwrap().len(), 0);
    env.emu.advance(Duration::from_secs(61));
    let (_, body) = search(&env, at, &phone_query("0612345678")).await;
    assert_eq!(body["searchRecords"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn updated_and_deleted() {
    let env = env().await;
    env.emu.freeze_clock(true);
    env.emu.set_time_ms(1_780_000_000_000); // 2026-05-28T20:26:40Z
    let at = env.token().await;
    let ids = env.contacts(3);
    env.emu.advance(Duration::from_secs(120));
    let r = env
        .send(
            &at,
            Method::PATCH,
            &format!("{V}/sobjects/Contact/{}", ids[0]),
            json!({"Title": "CEO"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = env
        .send(
            &at,
            Method::DELETE,
            &format!("{V}/sobjects/Contact/{}", ids[2]),
            Value::Null,
        )
        .await;
    assert_eq!(r.status(), 204);
    env.emu.advance(Duration::from_secs(600));
    let get = |path: String| {
        let env = &env;
        let at = at.clone();
        async move {
            let r = env.get(&at, &path).await;
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let (s, body) = get(format!("{V}/sobjects/Contact/updated/?start=2026-05-28T20:27:00%2B00:00&end=2026-05-28T20:40:00%2B00:00")).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body,
        json!({"ids": [ids[0]], "latestDateCovered": "2026-05-28T20:38:00.000+0000"})
    );
    let (_, body) = get(format!(
        "{V}/sobjects/Contact/updated/?start=2026-05-28T20:00:00Z&end=2026-05-28T20:37:00Z"
    ))
    .await;
    assert_eq!(
        body["ids"].as_array().unwrap().len(),
        2,
        "created ones, deleted excluded"
    );
    let (s, body) = get(format!(
        "{V}/sobjects/Contact/deleted/?start=2026-05-28T20:00:00Z&end=2026-05-28T20:37:00Z"
    ))
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        body["deletedRecords"],
        json!([{"deletedDate": "2026-05-28T20:28:40.000+0000", "id": ids[2]}])
    );
    assert!(
        body["earliestDateAvailable"]
            .as_str()
            .unwrap()
            .ends_with(":00.000+0000")
    );
    assert_eq!(body["latestDateCovered"], "2026-05-28T20:37:00.000+0000");
    for bad in [
        format!(
            "{V}/sobjects/Contact/updated/?start=2026-05-28T20:30:00Z&end=2026-05-28T20:30:30Z"
        ),
        format!(
            "{V}/sobjects/Contact/updated/?start=2026-04-01T00:00:00Z&end=2026-05-28T20:30:00Z"
        ),
        format!("{V}/sobjects/Contact/deleted/?start=yesterday&end=2026-05-28T20:30:00Z"),
    ] {
        let (s, body) = get(bad.clone()).await;
        assert_eq!(
            (s, error_code(&body)),
            (400, "INVALID_REPLICATION_DATE"),
            "{bad}"
        );
    }
    let c = env.emu.counters("acme").unwrap();
    assert_eq!(c.by_kind.get("updated"), Some(&4));
    assert_eq!(c.by_kind.get("deleted"), Some(&2));
}

#[tokio::test]
async fn injected_failures_and_latency() {
    let env = env().await;
    let at = env.token().await;
    env.emu
        .inject(
            "acme",
            Fault::FailNext {
                count: 2,
                kind: FailureKind::ServerUnavailable,
            },
        )
        .unwrap();
    for _ in 0..2 {
        let r = env.get(&at, &format!("{V}/limits")).await;
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("sforce-limit-info"));
        assert_eq!(error_code(&r.json().await.unwrap()), "SERVER_UNAVAILABLE");
    }
    assert_eq!(env.get(&at, &format!("{V}/limits")).await.status(), 200);
    env.emu
        .inject(
            "acme",
            Fault::FailNext {
                count: 2,
                kind: FailureKind::UnableToLockRow,
            },
        )
        .unwrap();
    let r = env
        .send(
            &at,
            Method::POST,
            &format!("{V}/sobjects/Task"),
            json!({"Subject": "x"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&r.json().await.unwrap()), "UNABLE_TO_LOCK_ROW");
    let r = env.send(&at, Method::POST, &format!("{V}/composite/sobjects"), json!({"records": [{"attributes": {"type": "Task"}}, {"attributes": {"type": "Task"}}]})).await;
    assert_eq!(r.status(), 200);
    let res: Value = r.json().await.unwrap();
    assert_eq!(res.as_array().unwrap().len(), 2);
    assert_eq!(res[1]["errors"][0]["statusCode"], "UNABLE_TO_LOCK_ROW");
    assert!(env.emu.records("acme", "Task", true).unwrap().is_empty());
    // Every request (failed or not) was counted: 2 + 1 + 2 = 5, plus none before.
    assert_eq!(env.emu.counters("acme").unwrap().api_used, 5);
    env.emu.inject("acme", Fault::Latency { ms: 300 }).unwrap();
    let t = Instant::now();
    assert_eq!(env.get(&at, &format!("{V}/limits")).await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    env.emu.inject("acme", Fault::Clear).unwrap();
    let t = Instant::now();
    env.get(&at, &format!("{V}/limits")).await;
    assert!(t.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn http_control_api() {
    let env = env().await;
    let http = client();
    let base = env.emu.base_url().to_string();
    let r = http
        .post(format!("{base}/__emulator/orgs"))
        .json(&json!({"key": "beta", "api_daily_limit": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http.post(format!("{base}/__emulator/orgs/beta/users")).json(&json!({"ref": "boss", "username": "boss@beta.test", "email": "boss@beta.test", "last_name": "Boss"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .post(format!("{base}/__emulator/orgs/beta/apps"))
        .json(
            &json!({"callback_url": CALLBACK, "consumer_key": "KEY", "consumer_secret": "SECRET"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http.post(format!("{base}/__emulator/orgs/beta/records")).json(&json!({"records": [
        {"type": "Account", "ref": "a", "fields": {"Name": "Beta Inc", "OwnerId": "@boss"}},
        {"type": "Contact", "fields": {"LastName": "Beta", "AccountId": "@a", "Phone": "+1 415-555-0199"}}
    ]})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["ids"].as_array().unwrap().len(), 2);
    let r = http
        .post(format!("{base}/__emulator/orgs/beta/sessions"))
        .json(&json!({"consumer_key": "KEY", "username": "boss@beta.test"}))
        .send()
        .await
        .unwrap();
    let tokens: Value = r.json().await.unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    let r = http
        .get(format!("{base}{V}/query"))
        .query(&[("q", "SELECT Account.Name FROM Contact")])
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["records"][0]["Account"]["Name"], "Beta Inc");
    let c: Value = http
        .get(format!("{base}/__emulator/orgs/beta/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c["by_kind"]["query"], 1);
    let r = http
        .post(format!("{base}/__emulator/orgs/beta/faults"))
        .json(&json!({"fault": "fail_next", "count": 1, "kind": "UNABLE_TO_LOCK_ROW"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .get(format!("{base}{V}/limits"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let recs: Value = http
        .get(format!("{base}/__emulator/orgs/beta/records/Contact"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(recs[0]["Phone"], "+1 415-555-0199");
    let clock: Value = http
        .post(format!("{base}/__emulator/clock"))
        .json(&json!({"freeze": true, "set": "2026-01-31T12:00:00Z"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(clock["now"], "2026-01-31T12:00:00.000+0000");
    assert_eq!(clock["frozen"], true);
    let changes: Value = http
        .get(format!("{base}/__emulator/orgs/beta/changes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(changes.as_array().unwrap().len(), 3, "user + 2 records");
    let r = http
        .post(format!("{base}/__emulator/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        http.get(format!("{base}/__emulator/orgs/beta"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn binary_serves_the_demo_org() {
    let exe = env!("CARGO_BIN_EXE_sf-emulator");
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/demo-org.json");
    let mut child = tokio::process::Command::new(exe)
        .args(["--port", "0", "--seed", seed])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("in time")
        .expect("read")
        .expect("a line");
    let base = first
        .strip_prefix("listening on ")
        .expect("banner")
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"));
    let http = client();
    let orgs: Value = http
        .get(format!("{base}/__emulator/orgs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org = &orgs[0];
    let key = org["apps"][0]["consumer_key"].as_str().unwrap();
    let admin = org["users"][0]["username"].as_str().unwrap();
    let tokens: Value = http
        .post(format!(
            "{base}/__emulator/orgs/{}/sessions",
            org["key"].as_str().unwrap()
        ))
        .json(&json!({"consumer_key": key, "username": admin}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    let page: Value = http
        .get(format!("{base}{V}/query"))
        .query(&[("q", "SELECT Id FROM Task WHERE TaskSubtype = 'Call'")])
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(page["totalSize"].as_u64().unwrap() >= 10, "{page}");
    child.kill().await.expect("kill");
}
