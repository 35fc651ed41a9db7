//! Request size limits (414, 431) and API versions: the served range, labels,
//! retired versions (410), the resources of a version, and every path on the
//! oldest and newest served versions.

// Test code: unwrap on fixtures is the assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// A query URL whose request-target is exactly `len` bytes (a valid SOQL
/// statement, padded with encoded spaces).
fn target_of_len(len: usize) -> String {
    let mut t = format!("{V}/query?q=SELECT+Id+FROM+Contact+WHERE+LastName+IN+(");
    let close = "%27x%27)";
    let mut i = 0;
    loop {
        let item = format!("%27n{i:06}%27,");
        if t.len() + item.len() + close.len() > len {
            break;
        }
        t.push_str(&item);
        i += 1;
    }
    t.push_str(close);
    while t.len() < len {
        t.push('+');
    }
    assert_eq!(t.len(), len);
    t
}

#[tokio::test]
async fn a_uri_over_16384_bytes_gets_414_and_is_not_counted() {
    let env = env().await;
    let at = env.token().await;
    env.emu.reset_counters("acme").unwrap();
    let target = target_of_len(16_385);
    assert_eq!(target.len(), 16_385);
    let r = env.get(&at, &target).await;
    assert_eq!(r.status(), 414);
    assert_eq!(r.headers()["content-type"], "text/html;charset=iso-8859-1");
    assert!(r.headers().get("sforce-limit-info").is_none());
    assert_eq!(
        r.text().await.unwrap(),
        "<h1>Bad Message 414</h1><pre>reason: URI Too Long</pre>"
    );
    assert_eq!(env.emu.counters("acme").unwrap().api_used, 0);
}

#[tokio::test]
async fn uri_and_headers_over_16384_bytes_get_431() {
    let env = env().await;
    let at = env.token().await;
    // The URI alone fits; with the request line and headers it does not.
    let target = target_of_len(16_300);
    let r = env
        .http
        .get(env.url(&target))
        .bearer_auth(&at)
        .header("X-Padding", "p".repeat(200))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    assert_eq!(
        r.text().await.unwrap(),
        "<h1>Bad Message 431</h1><pre>reason: Request Header Fields Too Large</pre>"
    );
}

#[tokio::test]
async fn a_long_uri_within_the_limit_is_served() {
    let env = env().await;
    let at = env.token().await;
    let target = target_of_len(15_800);
    let r = env.get(&at, &target).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn versions_31_to_68_with_release_labels() {
    let env = env().await;
    let list: Vec<Value> = env
        .http
        .get(env.url("/services/data/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 38);
    assert_eq!(
        list[0],
        json!({"label": "Summer '14", "url": "/services/data/v31.0", "version": "31.0"})
    );
    assert_eq!(
        list[31],
        json!({"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"})
    );
    assert_eq!(
        list[37],
        json!({"label": "Winter '27", "url": "/services/data/v68.0", "version": "68.0"})
    );
    let labels: Vec<&str> = list.iter().map(|v| v["label"].as_str().unwrap()).collect();
    assert_eq!(labels[1..4], ["Winter '15", "Spring '15", "Summer '15"]);
}

#[tokio::test]
async fn retired_versions_answer_410_gone_unknown_ones_404() {
    let env = env().await;
    let at = env.token().await;
    env.emu.reset_counters("acme").unwrap();
    for v in ["v30.0", "v21.0", "v20.0"] {
        let r = env.get(&at, &format!("/services/data/{v}/limits")).await;
        assert_eq!(r.status(), 410, "{v}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(error_code(&body), "GONE", "{v}");
        assert!(body[0]["message"].as_str().unwrap().contains(&v[1..]));
    }
    // Without a session too: the version is gone before anyone is asked who they are.
    let r = env
        .http
        .get(env.url("/services/data/v25.0/sobjects"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    for v in ["v69.0", "v19.0", "v62.5", "v062.0"] {
        let r = env.get(&at, &format!("/services/data/{v}/limits")).await;
        assert_eq!(r.status(), 404, "{v}");
    }
    assert_eq!(env.emu.counters("acme").unwrap().api_used, 0);
}

#[tokio::test]
async fn a_version_lists_salesforces_resources_with_identity() {
    let env = env().await;
    let tokens = env.login().await;
    let at = tokens["access_token"].as_str().unwrap();
    let raw = env
        .get(at, "/services/data/v68.0/")
        .await
        .text()
        .await
        .unwrap();
    assert_key_order(
        &raw,
        &[
            "tooling",
            "metadata",
            "queryAll",
            "search",
            "identity",
            "composite",
            "limits",
            "query",
            "sobjects",
            "support",
        ],
    );
    let res: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(res.as_object().unwrap().len(), 47);
    assert_eq!(res["query"], "/services/data/v68.0/query");
    assert_eq!(res["identity"], tokens["id"], "the caller's identity URL");
    let me = env
        .http
        .get(res["identity"].as_str().unwrap())
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
}

/// Every emulated resource answers on the oldest and the newest version, and
/// the URLs it returns carry that version.
#[tokio::test]
async fn every_path_works_on_the_oldest_and_newest_versions() {
    let env = env().await;
    env.contacts(3);
    let at = env.token().await;
    for v in ["31.0", "68.0"] {
        let base = format!("/services/data/v{v}");
        let created: Value = env
            .send(
                &at,
                Method::POST,
                &format!("{base}/sobjects/Account"),
                json!({"Name": format!("A {v}")}),
            )
            .await
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap();
        let rec: Value = env
            .get(&at, &format!("{base}/sobjects/Account/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            rec["attributes"]["url"],
            format!("{base}/sobjects/Account/{id}")
        );
        let r = env
            .send(
                &at,
                Method::PATCH,
                &format!("{base}/sobjects/Account/{id}"),
                json!({"Phone": "1"}),
            )
            .await;
        assert_eq!(r.status(), 204);
        let page: Value = env
            .http
            .get(env.url(&format!("{base}/query")))
            .query(&[("q", "SELECT Id FROM Contact")])
            .bearer_auth(&at)
            .header("Sforce-Query-Options", "batchSize=200")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["totalSize"], 3);
        assert!(
            page["records"][0]["attributes"]["url"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{base}/sobjects/Contact/"))
        );
        for path in [
            "/queryAll?q=SELECT+Id+FROM+Account".to_string(),
            "/search?q=FIND+%7BContact%7D".to_string(),
            "/limits".to_string(),
            "/sobjects".to_string(),
            "/sobjects/Task/describe".to_string(),
            format!("/composite/sobjects/Account?ids={id}&fields=Name"),
        ] {
            let r = env.get(&at, &format!("{base}{path}")).await;
            assert_eq!(r.status(), 200, "{v} {path}");
        }
        let composite: Value = env
            .send(
                &at,
                Method::POST,
                &format!("{base}/composite"),
                json!({"compositeRequest": [
                    {"method": "GET", "url": format!("{base}/sobjects/Account/{id}"), "referenceId": "a"},
                    {"method": "POST", "url": format!("{base}/sobjects/Contact"), "referenceId": "c",
                     "body": {"LastName": "X", "AccountId": "@{a.Id}"}}
                ]}),
            )
            .await
            .json()
            .await
            .unwrap();
        let c = &composite["compositeResponse"][1];
        assert_eq!(c["httpStatusCode"], 201, "{composite}");
        assert!(
            c["httpHeaders"]["Location"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{base}/sobjects/Contact/"))
        );
        let r = env
            .send(
                &at,
                Method::DELETE,
                &format!("{base}/sobjects/Account/{id}"),
                json!(null),
            )
            .await;
        assert_eq!(r.status(), 204);
    }
}

/// A composite subrequest on a retired version answers 410 inside the
/// composite response.
#[tokio::test]
async fn a_composite_subrequest_on_a_retired_version_is_gone() {
    let env = env().await;
    let at = env.token().await;
    let body: Value = env
        .send(
            &at,
            Method::POST,
            &format!("{V}/composite"),
            json!({"compositeRequest": [
                {"method": "GET", "url": "/services/data/v30.0/limits", "referenceId": "old"}
            ]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let sub = &body["compositeResponse"][0];
    assert_eq!(sub["httpStatusCode"], 410, "{body}");
    assert_eq!(sub["body"][0]["errorCode"], "GONE");
}
