//! Page sizes: `Sforce-Query-Options: batchSize` inside 200..2000, short pages
//! configured through the control API, and subquery rows counting toward the
//! page, so that no client can assume full pages.

// Test code: unwrap on fixtures is the assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

/// Follows a query to its end: the size of every page and every record's Id.
async fn pages(
    env: &Env,
    at: &str,
    soql: &str,
    options: Option<&str>,
) -> (Vec<usize>, Vec<String>) {
    let mut req = env
        .http
        .get(env.url(&format!("{V}/query")))
        .query(&[("q", soql)])
        .bearer_auth(at);
    if let Some(o) = options {
        req = req.header("Sforce-Query-Options", o);
    }
    let mut page: Value = req.send().await.unwrap().json().await.unwrap();
    let mut sizes = Vec::new();
    let mut ids = Vec::new();
    loop {
        let records = page["records"].as_array().unwrap();
        sizes.push(records.len());
        ids.extend(
            records
                .iter()
                .map(|r| r["Id"].as_str().unwrap().to_string()),
        );
        let Some(next) = page["nextRecordsUrl"].as_str() else {
            assert_eq!(page["done"], true);
            break;
        };
        assert_eq!(page["done"], false);
        let mut req = env.http.get(env.url(next)).bearer_auth(at);
        if let Some(o) = options {
            req = req.header("Sforce-Query-Options", o);
        }
        page = req.send().await.unwrap().json().await.unwrap();
    }
    (sizes, ids)
}

fn distinct(ids: &[String]) -> usize {
    let mut v = ids.to_vec();
    v.sort();
    v.dedup();
    v.len()
}

#[tokio::test]
async fn batch_size_is_brought_into_200_to_2000() {
    let env = env().await;
    env.contacts(2300);
    let at = env.token().await;
    let soql = "SELECT Id FROM Contact";
    assert_eq!(
        pages(&env, &at, soql, Some("batchSize=5000")).await.0,
        vec![2000, 300]
    );
    assert_eq!(pages(&env, &at, soql, Some("batchSize=20")).await.0[0], 200);
    assert_eq!(
        pages(&env, &at, soql, Some("batchSize=1000")).await.0,
        vec![1000, 1000, 300]
    );
    assert_eq!(
        pages(&env, &at, soql, Some("batchSize=many")).await.0,
        vec![2000, 300],
        "an unreadable value is ignored"
    );
}

#[tokio::test]
async fn page_caps_from_the_control_api_shorten_pages() {
    let env = env().await;
    let accounts = env.seed(vec![("Account", "acme", json!({"Name": "Acme"}))]);
    let recs: Vec<(&str, &str, Value)> = (0..700)
        .map(|i| {
            (
                "Contact",
                "",
                json!({"LastName": format!("C{i:04}"), "AccountId": accounts[0], "Description": "long text"}),
            )
        })
        .collect();
    env.seed(recs);
    let at = env.token().await;
    // Through the HTTP control API, as the local stack would.
    let r = env
        .http
        .post(env.url("/__emulator/orgs/acme/faults"))
        .json(&json!({"fault": "query_pages", "max": 450, "with_relationships": 250, "with_long_text": 300}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (sizes, ids) = pages(&env, &at, "SELECT Id FROM Contact", None).await;
    assert_eq!(sizes, vec![450, 250]);
    assert_eq!(distinct(&ids), 700);
    let (sizes, ids) = pages(&env, &at, "SELECT Id, Account.Name FROM Contact", None).await;
    assert_eq!(sizes, vec![250, 250, 200]);
    assert_eq!(distinct(&ids), 700);
    let (sizes, _) = pages(&env, &at, "SELECT Id, Description FROM Contact", None).await;
    assert_eq!(sizes, vec![300, 300, 100]);
    // A smaller batch size still wins.
    let (sizes, _) = pages(&env, &at, "SELECT Id FROM Contact", Some("batchSize=200")).await;
    assert_eq!(sizes, vec![200, 200, 200, 100]);
    let r = env
        .http
        .post(env.url("/__emulator/orgs/acme/faults"))
        .json(&json!({"fault": "query_pages", "max": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a cap of 0 is refused");
    env.emu.inject("acme", sf_emulator::Fault::Clear).unwrap();
    assert_eq!(
        pages(&env, &at, "SELECT Id FROM Contact", None).await.0,
        vec![700]
    );
}

/// "Child objects count toward the number of records for the batch size":
/// 300 accounts with 3 contacts each, pages of 200 rows hold 50 accounts.
#[tokio::test]
async fn subquery_rows_count_toward_the_page() {
    let env = env().await;
    let mut recs: Vec<(String, Value)> = Vec::new();
    for a in 0..300 {
        recs.push(("Account".into(), json!({"Name": format!("A{a:03}")})));
    }
    let recs_ref: Vec<(&str, &str, Value)> = recs
        .iter()
        .map(|(t, v)| (t.as_str(), "", v.clone()))
        .collect();
    let accounts = env.seed(recs_ref);
    let contacts: Vec<(&str, &str, Value)> = accounts
        .iter()
        .flat_map(|a| {
            (0..3).map(move |i| {
                (
                    "Contact",
                    "",
                    json!({"LastName": format!("K{i}"), "AccountId": a}),
                )
            })
        })
        .collect();
    env.seed(contacts);
    let at = env.token().await;
    let soql = "SELECT Id, (SELECT Id FROM Contacts) FROM Account ORDER BY Name";
    let (sizes, ids) = pages(&env, &at, soql, Some("batchSize=200")).await;
    assert_eq!(sizes, vec![50; 6]);
    assert_eq!(distinct(&ids), 300);
    // Without children a page is full.
    let (sizes, _) = pages(&env, &at, "SELECT Id FROM Account", Some("batchSize=200")).await;
    assert_eq!(sizes, vec![200, 100]);
}
