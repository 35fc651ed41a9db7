//! Conditional requests on sObject rows (REST API guide, "Conditional Request
//! Headers"): If-Unmodified-Since and If-Modified-Since against the record's
//! LastModifiedDate (HTTP dates, `EEE, dd MMM yyyy HH:mm:ss z`), ETags with
//! If-Match / If-None-Match on Accounts, and the same headers in composite
//! subrequests' `httpHeaders`.

// Test code: unwrap on fixtures is the assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// `2026-01-31T12:00:00.000+0000` → `Sat, 31 Jan 2026 12:00:00 GMT`.
fn http_date(salesforce: &str) -> String {
    chrono::DateTime::parse_from_str(salesforce, "%Y-%m-%dT%H:%M:%S%.3f%z")
        .unwrap()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

async fn patch(
    env: &Env,
    at: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> reqwest::Response {
    let mut req = env.http.patch(env.url(path)).bearer_auth(at).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn get(env: &Env, at: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = env.http.get(env.url(path)).bearer_auth(at);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn last_modified(env: &Env, id: &str) -> String {
    env.emu.record("acme", id).unwrap()["LastModifiedDate"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A rep's edit between the read and the write: the stale write is refused
/// with 412 and changes nothing.
#[tokio::test]
async fn if_unmodified_since_refuses_a_stale_update() {
    let env = env().await;
    let at = env.token().await;
    let id = env.seed(vec![(
        "Task",
        "",
        json!({"Subject": "call", "Description": "v1"}),
    )])[0]
        .clone();
    let path = format!("{V}/sobjects/Task/{id}");
    let read = http_date(&last_modified(&env, &id));
    // Unchanged since the read: the write goes through.
    let r = patch(
        &env,
        &at,
        &path,
        &[("If-Unmodified-Since", &read)],
        json!({"Description": "v2"}),
    )
    .await;
    assert_eq!(r.status(), 204);
    let seen = http_date(&last_modified(&env, &id));
    // A rep edits a second later.
    env.emu.advance(std::time::Duration::from_secs(1));
    let r = patch(&env, &at, &path, &[], json!({"Description": "v2 + rep"})).await;
    assert_eq!(r.status(), 204);
    // The write based on the older read is refused.
    let r = patch(
        &env,
        &at,
        &path,
        &[("If-Unmodified-Since", &seen)],
        json!({"Description": "v3"}),
    )
    .await;
    assert_eq!(r.status(), 412);
    assert_eq!(error_code(&r.json().await.unwrap()), "PRECONDITION_FAILED");
    assert_eq!(
        env.emu.record("acme", &id).unwrap()["Description"],
        "v2 + rep"
    );
    // The documented zone names are read: MST is GMT-7.
    let lm = chrono::DateTime::parse_from_str(&last_modified(&env, &id), "%Y-%m-%dT%H:%M:%S%.3f%z")
        .unwrap();
    let mst = (lm - chrono::Duration::hours(7))
        .format("%a, %d %b %Y %H:%M:%S MST")
        .to_string();
    let r = patch(
        &env,
        &at,
        &path,
        &[("If-Unmodified-Since", &mst)],
        json!({"Description": "v4"}),
    )
    .await;
    assert_eq!(r.status(), 204);
    // An unreadable date on a PATCH is a 400.
    let r = patch(
        &env,
        &at,
        &path,
        &[("If-Unmodified-Since", "2026-01-31T12:00:00Z")],
        json!({"Description": "v5"}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(env.emu.record("acme", &id).unwrap()["Description"], "v4");
}

#[tokio::test]
async fn conditional_gets() {
    let env = env().await;
    let at = env.token().await;
    let id = env.seed(vec![("Task", "", json!({"Subject": "call"}))])[0].clone();
    let path = format!("{V}/sobjects/Task/{id}");
    let lm = http_date(&last_modified(&env, &id));
    let r = get(&env, &at, &path, &[("If-Modified-Since", &lm)]).await;
    assert_eq!(r.status(), 304);
    assert_eq!(r.text().await.unwrap(), "");
    env.emu.advance(std::time::Duration::from_secs(5));
    let r = patch(&env, &at, &path, &[], json!({"Subject": "changed"})).await;
    assert_eq!(r.status(), 204);
    let r = get(&env, &at, &path, &[("If-Modified-Since", &lm)]).await;
    assert_eq!(r.status(), 200);
    let r = get(&env, &at, &path, &[("If-Unmodified-Since", &lm)]).await;
    assert_eq!(r.status(), 412);
    // DELETE does not support the headers: they are ignored.
    let r = env
        .http
        .delete(env.url(&path))
        .bearer_auth(&at)
        .header("If-Unmodified-Since", &lm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn account_etags_with_if_match_and_if_none_match() {
    let env = env().await;
    let at = env.token().await;
    let id = env.seed(vec![("Account", "", json!({"Name": "Acme"}))])[0].clone();
    let path = format!("{V}/sobjects/Account/{id}");
    let r = get(&env, &at, &path, &[]).await;
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with("--gzip\""),
        "{etag}"
    );
    let r = get(&env, &at, &path, &[("If-None-Match", &etag)]).await;
    assert_eq!(r.status(), 304);
    let r = patch(
        &env,
        &at,
        &path,
        &[("If-Match", &etag)],
        json!({"Phone": "1"}),
    )
    .await;
    assert_eq!(r.status(), 204);
    let new_tag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_tag, etag);
    let r = patch(
        &env,
        &at,
        &path,
        &[("If-Match", &etag)],
        json!({"Phone": "2"}),
    )
    .await;
    assert_eq!(r.status(), 412);
    let r = patch(
        &env,
        &at,
        &path,
        &[("If-None-Match", &new_tag)],
        json!({"Phone": "3"}),
    )
    .await;
    assert_eq!(r.status(), 412);
    assert_eq!(env.emu.record("acme", &id).unwrap()["Phone"], "1");
    // Other objects have no ETag: If-Match has no effect on them.
    let task = env.seed(vec![("Task", "", json!({"Subject": "t"}))])[0].clone();
    let r = get(&env, &at, &format!("{V}/sobjects/Task/{task}"), &[]).await;
    assert!(r.headers().get("etag").is_none());
    let r = patch(
        &env,
        &at,
        &format!("{V}/sobjects/Task/{task}"),
        &[("If-Match", "\"nope\"")],
        json!({"Subject": "u"}),
    )
    .await;
    assert_eq!(r.status(), 204);
}

/// "You can include any header supported by the requested resource" in a
/// subrequest's httpHeaders: 25 conditional updates in one call, each
/// answering its own 412.
#[tokio::test]
async fn composite_subrequests_carry_their_own_conditions() {
    let env = env().await;
    let at = env.token().await;
    let ids = env.seed(vec![
        ("Task", "", json!({"Subject": "a"})),
        ("Task", "", json!({"Subject": "b"})),
    ]);
    let read = http_date(&last_modified(&env, &ids[0]));
    env.emu.advance(std::time::Duration::from_secs(2));
    let r = patch(
        &env,
        &at,
        &format!("{V}/sobjects/Task/{}", ids[1]),
        &[],
        json!({"Subject": "b by a rep"}),
    )
    .await;
    assert_eq!(r.status(), 204);
    let sub = |i: usize, reference: &str| {
        json!({"method": "PATCH", "url": format!("{V}/sobjects/Task/{}", ids[i]), "referenceId": reference,
               "httpHeaders": {"If-Unmodified-Since": read}, "body": {"Subject": format!("{reference} by Modjo")}})
    };
    let body: Value = env
        .send(
            &at,
            Method::POST,
            &format!("{V}/composite"),
            json!({"compositeRequest": [sub(0, "a"), sub(1, "b")]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let out = &body["compositeResponse"];
    assert_eq!(out[0]["httpStatusCode"], 204, "{body}");
    assert_eq!(out[1]["httpStatusCode"], 412, "{body}");
    assert_eq!(out[1]["body"][0]["errorCode"], "PRECONDITION_FAILED");
    assert_eq!(
        env.emu.record("acme", &ids[0]).unwrap()["Subject"],
        "a by Modjo"
    );
    assert_eq!(
        env.emu.record("acme", &ids[1]).unwrap()["Subject"],
        "b by a rep"
    );
    // allOrNone: the 412 rolls the other update back.
    let read = http_date(&last_modified(&env, &ids[0]));
    let body: Value = env
        .send(
            &at,
            Method::POST,
            &format!("{V}/composite"),
            json!({"allOrNone": true, "compositeRequest": [
                {"method": "PATCH", "url": format!("{V}/sobjects/Task/{}", ids[0]), "referenceId": "a",
                 "httpHeaders": {"If-Unmodified-Since": read}, "body": {"Subject": "again"}},
                {"method": "PATCH", "url": format!("{V}/sobjects/Task/{}", ids[1]), "referenceId": "b",
                 "httpHeaders": {"If-Unmodified-Since": "Thu, 01 Jan 2015 00:00:00 GMT"}, "body": {"Subject": "again"}}
            ]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["compositeResponse"][1]["httpStatusCode"], 412);
    assert_eq!(body["compositeResponse"][0]["httpStatusCode"], 400);
    assert_eq!(
        env.emu.record("acme", &ids[0]).unwrap()["Subject"],
        "a by Modjo"
    );
}

/// Accept, Authorization and Content-Type are inherited: setting one in a
/// subrequest fails the whole request with 400.
#[tokio::test]
async fn composite_subrequests_cannot_set_inherited_headers() {
    let env = env().await;
    let at = env.token().await;
    let r = env
        .send(
            &at,
            Method::POST,
            &format!("{V}/composite"),
            json!({"compositeRequest": [
                {"method": "GET", "url": format!("{V}/limits"), "referenceId": "l",
                 "httpHeaders": {"Authorization": "Bearer other"}}
            ]}),
        )
        .await;
    assert_eq!(r.status(), 400);
}
