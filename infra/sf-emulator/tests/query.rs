//! Query conformance: paging, batch size, locators, queryAll, errors, limits and
//! the API usage header.

// Test code: unwrap on fixtures is the assertion (clippy.toml allows it in #[test] fns; helpers too).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use sf_emulator::Fault;

#[tokio::test]
async fn paging_with_batch_size_and_counts() {
    let env = env().await;
    env.contacts(1234);
    let at = env.token().await;
    env.emu.reset_counters("acme").unwrap();
    let soql = "SELECT Id, LastName FROM Contact ORDER BY LastName";
    let first = env
        .http
        .get(env.url(&format!("{V}/query")))
        .query(&[("q", soql)])
        .bearer_auth(&at)
        .header("Sforce-Query-Options", "batchSize=50")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["sforce-limit-info"], "api-usage=1/100000");
    let raw = first.text().await.unwrap();
    assert_key_order(
        &raw,
        &[
            "totalSize",
            "done",
            "nextRecordsUrl",
            "records",
            "attributes",
            "type",
            "url",
            "Id",
            "LastName",
        ],
    );
    let page: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(page["totalSize"], 1234);
    assert_eq!(page["done"], false);
    // batchSize below 200 is raised to 200.
    assert_eq!(page["records"].as_array().unwrap().len(), 200);
    let next = page["nextRecordsUrl"].as_str().unwrap().to_string();
    assert!(next.starts_with("/services/data/v62.0/query/01g"), "{next}");
    assert!(next.ends_with("-200"), "{next}");
    assert_eq!(page["records"][0]["attributes"]["type"], "Contact");
    assert_eq!(page["records"][0]["LastName"], "Contact 00000");
    let mut seen: Vec<String> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["LastName"].as_str().unwrap().to_string())
        .collect();
    let mut url = Some(next);
    let mut pages = 1;
    while let Some(u) = url {
        let r = env
            .http
            .get(env.url(&u))
            .bearer_auth(&at)
            .header("Sforce-Query-Options", "batchSize=500")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["totalSize"], 1234);
        seen.extend(
            p["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["LastName"].as_str().unwrap().to_string()),
        );
        url = p["nextRecordsUrl"].as_str().map(str::to_string);
        assert_eq!(p["done"], url.is_none());
        pages += 1;
    }
    assert_eq!(pages, 4, "200 + 500 + 500 + 34");
    assert_eq!(seen.len(), 1234);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "ordered, no repeats");
    let c = env.emu.counters("acme").unwrap();
    assert_eq!(c.by_kind.get("query"), Some(&1));
    assert_eq!(c.by_kind.get("queryMore"), Some(&3));
    assert_eq!(c.api_used, 4);
}

#[tokio::test]
async fn default_page_is_2000_and_limit_caps_total() {
    let env = env().await;
    env.contacts(2500);
    let at = env.token().await;
    let (s, page) = env.query(&at, "SELECT Id FROM Contact").await;
    assert_eq!(s, 200);
    assert_eq!(page["totalSize"], 2500);
    assert_eq!(page["records"].as_array().unwrap().len(), 2000);
    let (_, page) = env.query(&at, "SELECT Id FROM Contact LIMIT 2100").await;
    assert_eq!(page["totalSize"], 2100);
    let r = env.get(&at, page["nextRecordsUrl"].as_str().unwrap()).await;
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["records"].as_array().unwrap().len(), 100);
    assert_eq!(p["done"], true);
    assert!(p.get("nextRecordsUrl").is_none());
    let (_, small) = env.query(&at, "SELECT Id FROM Contact LIMIT 3").await;
    assert_eq!(
        small,
        json!({"totalSize": 3, "done": true, "records": small["records"].clone()})
    );
}

#[tokio::test]
async fn locators_expire_are_single_session_and_die_when_exhausted() {
    let env = env().await;
    env.contacts(450);
    let at = env.token().await;
    let q = |soql: &'static str| {
        let env = &env;
        let at = at.clone();
        async move {
            let r = env
                .http
                .get(env.url(&format!("{V}/query")))
                .query(&[("q", soql)])
                .bearer_auth(&at)
                .header("Sforce-Query-Options", "batchSize=200")
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        }
    };
    let page = q("SELECT Id FROM Contact").await;
    let next = page["nextRecordsUrl"].as_str().unwrap().to_string();
    // Unknown locator.
    let r = env
        .get(&at, "/services/data/v62.0/query/01gBOGUS000000000A-200")
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        error_code(&r.json().await.unwrap()),
        "INVALID_QUERY_LOCATOR"
    );
    // Another session cannot use it.
    let other = env.token().await;
    let r = env.get(&other, &next).await;
    assert_eq!(r.status(), 400);
    // Exhaust it: 200, 200, 50.
    let p2: Value = env.get(&at, &next).await.json().await.unwrap();
    let last = p2["nextRecordsUrl"].as_str().unwrap().to_string();
    let p3: Value = env.get(&at, &last).await.json().await.unwrap();
    assert_eq!(p3["records"].as_array().unwrap().len(), 50);
    assert_eq!(p3["done"], true);
    let r = env.get(&at, &last).await;
    assert_eq!(r.status(), 400, "exhausted locator is gone");
    // Idle locators expire after 15 minutes.
    let page = q("SELECT Id FROM Contact").await;
    env.emu.advance(std::time::Duration::from_secs(16 * 60));
    let at3 = env.token().await;
    let _ = at3;
    let r = env.get(&at, page["nextRecordsUrl"].as_str().unwrap()).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn query_all_includes_deleted_rows() {
    let env = env().await;
    let ids = env.contacts(3);
    let at = env.token().await;
    let r = env
        .send(
            &at,
            reqwest::Method::DELETE,
            &format!("{V}/sobjects/Contact/{}", ids[1]),
            Value::Null,
        )
        .await;
    assert_eq!(r.status(), 204);
    let (_, live) = env.query(&at, "SELECT Id, IsDeleted FROM Contact").await;
    assert_eq!(live["totalSize"], 2);
    let r = env
        .http
        .get(env.url(&format!("{V}/queryAll")))
        .query(&[("q", "SELECT Id, IsDeleted FROM Contact ORDER BY Id")])
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    let all: Value = r.json().await.unwrap();
    assert_eq!(all["totalSize"], 3);
    assert_eq!(all["records"][1]["Id"], ids[1]);
    assert_eq!(all["records"][1]["IsDeleted"], true);
    assert_eq!(
        env.emu.counters("acme").unwrap().by_kind.get("queryAll"),
        Some(&1)
    );
}

#[tokio::test]
async fn query_errors_are_arrays() {
    let env = env().await;
    let at = env.token().await;
    for (soql, code) in [
        ("SELECT Id FROM Foo", "INVALID_TYPE"),
        ("SELECT Nope FROM Contact", "INVALID_FIELD"),
        ("SELECT Id FROM Contact GROUP BY Id", "MALFORMED_QUERY"),
        (
            "SELECT Id FROM Contact WHERE LastName = 1",
            "INVALID_QUERY_FILTER_OPERATOR",
        ),
    ] {
        let (s, body) = env.query(&at, soql).await;
        assert_eq!(s, 400, "{soql}");
        assert_eq!(error_code(&body), code, "{soql}: {body}");
    }
    let r = env.get(&at, &format!("{V}/query")).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn datetimes_are_whole_seconds_and_clock_is_controllable() {
    let env = env().await;
    env.emu.freeze_clock(true);
    env.emu.set_time_ms(1_780_000_000_123);
    let at = env.token().await;
    for i in 0..3 {
        let r = env
            .send(
                &at,
                reqwest::Method::POST,
                &format!("{V}/sobjects/Contact/"),
                json!({"LastName": format!("Same {i}")}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let (_, page) = env
        .query(
            &at,
            "SELECT Id, CreatedDate, SystemModstamp, LastModifiedDate FROM Contact",
        )
        .await;
    for rec in page["records"].as_array().unwrap() {
        assert_eq!(rec["SystemModstamp"], "2026-05-28T20:26:40.000+0000");
        assert_eq!(rec["CreatedDate"], rec["SystemModstamp"]);
    }
    let (_, page) = env
        .query(
            &at,
            "SELECT Id FROM Contact WHERE SystemModstamp = 2026-05-28T20:26:40Z",
        )
        .await;
    assert_eq!(page["totalSize"], 3);
    let (_, page) = env
        .query(
            &at,
            "SELECT Id FROM Contact WHERE SystemModstamp > 2026-05-28T22:26:39+02:00",
        )
        .await;
    assert_eq!(page["totalSize"], 3);
}

#[tokio::test]
async fn limit_header_and_exhaustion() {
    let env = env_with(5, false).await;
    let at = env.token().await;
    for i in 1..=5 {
        let r = env.get(&at, &format!("{V}/limits")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["sforce-limit-info"], format!("api-usage={i}/5"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["DailyApiRequests"],
            json!({"Max": 5, "Remaining": 5 - i})
        );
    }
    let r = env.get(&at, &format!("{V}/limits")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=5/5");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    // The versions list is free.
    let r = env
        .http
        .get(env.url("/services/data/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("sforce-limit-info").is_none());
    env.emu
        .inject("acme", Fault::SetApiUsage { used: 4 })
        .unwrap();
    assert_eq!(env.get(&at, &format!("{V}/limits")).await.status(), 200);
    assert_eq!(env.get(&at, &format!("{V}/limits")).await.status(), 403);
    // Unknown versions are not found.
    env.emu
        .inject("acme", Fault::SetApiUsage { used: 0 })
        .unwrap();
    assert_eq!(
        env.get(&at, "/services/data/v9.0/limits").await.status(),
        404
    );
}
