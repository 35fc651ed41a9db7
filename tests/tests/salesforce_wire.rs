//! The client's requests as Salesforce receives them, measured by a recording
//! proxy in front of the emulator (never by the client's own counters): sizes
//! within Salesforce's limits at the deployed batch size, sessions that die
//! twice, the newest API version served, text cut in UTF-16 units, pod addresses,
//! and conditional updates.

use std::time::Duration;

use e2e::moto::AwsEnv;
use e2e::proxy::{Exchange, MAX_REQUEST_HEAD_BYTES};
use e2e::replay::{Received, ReplayServer, Reply};
use e2e::scenario::{World, log, phone_call, task_by_call_object, world_with};
use e2e::sf::{ORG, SfWorld, WorldOptions, fields};
use e2e::stack::{Claims, Stack, api_event, body_json, status};
use e2e::{repo_root, unique};
use serde_json::{Map, Value, json};
use sf_emulator::{FailureKind, Fault};
use shared::adapters::salesforce::SalesforceClient;
use shared::config::SalesforceConfig;
use shared::domain::ConnectionStatus;
use shared::domain::text::utf16_len;
use shared::error::{Classify, ErrorClass};
use shared::ports::{ConnectionStore, SalesforceReads, SalesforceWrites};
use shared::salesforce::soql::{Cond, Select};
use shared::salesforce::sosl::PhoneSearch;
use shared::salesforce::{ConditionalOutcome, ConditionalUpdate, NewRecord, RecordUpdate};
use tokio::time::Instant;
use url::Url;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// The call logger's SQS batch size, as deployed (template.yaml).
fn deployed_call_batch_size() -> usize {
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let queue = template
        .find("Queue: !GetAtt CallEventsQueue.Arn")
        .expect("the call logger's event source");
    let rest = &template[queue..];
    let at = rest.find("BatchSize:").expect("its batch size") + "BatchSize:".len();
    rest[at..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number")
}

fn proxied(w: &World) -> &e2e::proxy::Proxy {
    w.stack.sf.proxy.as_ref().expect("a proxied world")
}

fn over_the_limit(exchanges: &[Exchange]) -> Vec<String> {
    exchanges
        .iter()
        .filter(|e| e.uri.len() > MAX_REQUEST_HEAD_BYTES || e.head_bytes > MAX_REQUEST_HEAD_BYTES)
        .map(|e| format!("{} {} bytes: {}…", e.method, e.head_bytes, &e.uri[..80]))
        .collect()
}

#[tokio::test]
async fn a_deployed_size_batch_of_long_non_ascii_call_ids_stays_within_the_uri_limit() {
    let w = world_with(WorldOptions {
        proxy: true,
        ..Default::default()
    })
    .await;
    let batch = deployed_call_batch_size();
    assert_eq!(batch, 100, "the size this test was written for");
    let ids: Vec<String> = (0..batch)
        .map(|i| format!("{i:03}-{}", "名é".repeat(62)))
        .collect();
    assert!(ids.iter().all(|id| id.chars().count() == 128));
    let phone = |i: usize| format!("+33 6 41 {:02} {:02} {:02}", i / 100, i / 10 % 10, i % 10);
    // Contacts newer than the last sync: the index does not know them, so the
    // phone search runs too, and every call has its own Who.
    w.stack.sf.seed(
        (0..batch)
            .map(|i| {
                (
                    "Contact",
                    json!({"LastName": format!("Zoë {i}"), "Phone": phone(i)}),
                )
            })
            .collect(),
    );
    let bodies: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut call: Value =
                serde_json::from_str(&phone_call(&w.tenant, id, &phone(i))).unwrap();
            call["title"] = json!(format!("Appel n°{i} avec Zoë — 日本語のタイトル"));
            call.to_string()
        })
        .collect();
    proxied(&w).clear();

    let response = log(&w, &bodies).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    for id in &ids {
        assert_eq!(task_by_call_object(&w, id).len(), 1, "{id}");
    }
    let exchanges = proxied(&w).exchanges();
    assert_eq!(over_the_limit(&exchanges), Vec::<String>::new());
    // The encoded lookup of 100 such ids is over 100 KB: it was cut, each part a
    // request of its own.
    let lookups = exchanges
        .iter()
        .filter(|e| {
            e.method == "GET" && e.uri.contains("/query?q=") && e.uri.contains("CallObject")
        })
        .count();
    assert!(lookups >= 7, "{lookups} lookups");
    assert!(exchanges.iter().all(|e| e.status < 400), "{exchanges:?}");
}

#[tokio::test]
async fn the_comment_renderer_and_lookups_by_id_stay_within_the_limit_too() {
    let sf = SfWorld::start(WorldOptions {
        proxy: true,
        ..Default::default()
    })
    .await;
    let aws = AwsEnv::new().await;
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets, client) = (aws.store(), aws.secrets(), sf.client());
    let session = client.session(&tenant, &secrets, &store, deadline());
    let ids = sf.seed(
        (0..900)
            .map(|i| {
                (
                    "Task",
                    json!({"Subject": format!("Task {i}"), "Description": "x"}),
                )
            })
            .collect(),
    );
    let proxy = sf.proxy.as_ref().unwrap();
    proxy.clear();
    let select = Select::new("Task", &["Id", "Description"]).filter(Cond::is_in("Id", ids.clone()));
    let rows = session.query_select(&select, false).await.unwrap();
    assert_eq!(rows.len(), 900, "each record once");
    let exchanges = proxy.exchanges();
    assert_eq!(over_the_limit(&exchanges), Vec::<String>::new());
    assert!(exchanges.len() >= 2, "cut: {}", exchanges.len());

    // A phone search of many numbers: cut below 4,000 characters of search text.
    let numbers: Vec<String> = (0..400).map(|i| format!("+33 6 12 {i:06}")).collect();
    proxy.clear();
    let search = PhoneSearch::new(numbers).returning("Contact", &["Id"]);
    session.search_phones(&search).await.unwrap();
    let searches = proxy.exchanges();
    assert!(searches.len() >= 2, "{} searches", searches.len());
    assert_eq!(over_the_limit(&searches), Vec::<String>::new());
}

#[tokio::test]
async fn a_session_refused_again_after_a_refresh_is_retried_never_reauth() {
    let sf = SfWorld::start(WorldOptions {
        proxy: true,
        ..Default::default()
    })
    .await;
    let aws = AwsEnv::new().await;
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets, client) = (aws.store(), aws.secrets(), sf.client());
    let soql = Select::new("User", &["Id"]).render().unwrap();
    let session = client.session(&tenant, &secrets, &store, deadline());
    session
        .query_all_pages::<Value>(&soql, false)
        .await
        .unwrap();
    let proxy = sf.proxy.as_ref().unwrap();
    proxy.clear();

    // The session dies. After the refresh, the retried request meets a 503, and
    // the sessions die again before the next attempt.
    sf.emu.inject(ORG, Fault::ExpireSessions).unwrap();
    let emu = sf.emu.clone();
    proxy.after(move |x| {
        let refreshed = x.uri.starts_with("/services/oauth2/token") && x.status == 200;
        if refreshed {
            emu.inject(
                ORG,
                Fault::FailNext {
                    count: 1,
                    kind: FailureKind::ServerUnavailable,
                },
            )
            .unwrap();
        }
        refreshed
    });
    let emu = sf.emu.clone();
    proxy.after(move |x| {
        let unavailable = x.status == 503;
        if unavailable {
            emu.inject(ORG, Fault::ExpireSessions).unwrap();
        }
        unavailable
    });
    let users = session
        .query_all_pages::<Value>(&soql, false)
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
    let seen: Vec<(String, u16)> = proxy
        .exchanges()
        .iter()
        .map(|x| (x.uri.split('?').next().unwrap().to_string(), x.status))
        .collect();
    let query = format!(
        "/services/data/v{}/query",
        shared::config::DEFAULT_API_VERSION
    );
    let token = "/services/oauth2/token".to_string();
    assert_eq!(
        seen,
        [
            (query.clone(), 401),
            (token.clone(), 200),
            (query.clone(), 503),
            (query.clone(), 401),
            (token, 200),
            (query, 200),
        ]
    );
    let connection = store.get_connection(&tenant).await.unwrap().unwrap();
    assert_eq!(connection.status, ConnectionStatus::Connected);

    // Sessions that die after every refresh: retryable, and the connection stays
    // connected (only the token endpoint refusing the refresh token means reconnect).
    let emu = sf.emu.clone();
    proxy.after(move |x| {
        if x.uri.starts_with("/services/oauth2/token") && x.status == 200 {
            emu.inject(ORG, Fault::ExpireSessions).unwrap();
        }
        false
    });
    sf.emu.inject(ORG, Fault::ExpireSessions).unwrap();
    let err = session
        .query_all_pages::<Value>(&soql, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("INVALID_SESSION_ID"));
    assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
    let connection = store.get_connection(&tenant).await.unwrap().unwrap();
    assert_eq!(connection.status, ConnectionStatus::Connected);
}

/// The versions the emulator serves, newest last.
async fn served_versions(base_url: &str) -> Vec<String> {
    let list: Vec<Value> = reqwest::get(format!("{base_url}/services/data/"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut versions: Vec<(u32, String)> = list
        .iter()
        .filter_map(|v| v["version"].as_str())
        .filter_map(|v| Some((v.split_once('.')?.0.parse().ok()?, v.to_string())))
        .collect();
    versions.sort();
    versions.into_iter().map(|(_, v)| v).collect()
}

#[tokio::test]
async fn the_client_works_on_the_newest_version_served_and_defaults_to_a_year_old_one() {
    let sf = SfWorld::start(WorldOptions {
        proxy: true,
        ..Default::default()
    })
    .await;
    let versions = served_versions(sf.base_url()).await;
    assert!(
        versions.contains(&shared::config::DEFAULT_API_VERSION.to_string()),
        "{versions:?}"
    );
    let newest = versions.last().unwrap().clone();
    let aws = AwsEnv::new().await;
    let tenant = sf.connect_tenant(&aws).await;
    let client = SalesforceClient::new(&SalesforceConfig {
        api_version: newest.clone(),
        ..sf.config()
    })
    .unwrap();
    let (store, secrets) = (aws.store(), aws.secrets());
    let session = client.session(&tenant, &secrets, &store, deadline());
    let contact = sf.seed(vec![(
        "Contact",
        json!({"LastName": "Doe", "Phone": "06 12 34 56 78"}),
    )]);
    let created = session
        .create_many(&[NewRecord {
            object: "Task",
            fields: fields(json!({"Subject": "Call", "TaskSubtype": "Call", "WhoId": contact[0]})),
        }])
        .await
        .unwrap();
    let task = created[0].id.clone().unwrap();
    let updated = session
        .update_many(&[RecordUpdate {
            object: "Task",
            id: task.clone(),
            fields: fields(json!({"Description": "updated"})),
        }])
        .await
        .unwrap();
    assert!(updated[0].success, "{updated:?}");
    let select = Select::new("Task", &["Id", "Description"]).filter(Cond::is_in("Id", [task]));
    let rows = session.query_select(&select, false).await.unwrap();
    assert_eq!(rows[0]["Description"], "updated");
    let search = PhoneSearch::new(["0612345678".to_string()]).returning("Contact", &["Id"]);
    assert_eq!(session.search_phones(&search).await.unwrap().len(), 1);
    let proxy = sf.proxy.as_ref().unwrap();
    let api: Vec<Exchange> = proxy
        .exchanges()
        .into_iter()
        .filter(|x| x.uri.starts_with("/services/data/v"))
        .collect();
    assert!(!api.is_empty());
    assert!(
        api.iter()
            .all(|x| x.uri.starts_with(&format!("/services/data/v{newest}/"))),
        "{api:?}"
    );
}

#[tokio::test]
async fn subjects_are_cut_in_utf16_units() {
    let w = world_with(WorldOptions::default()).await;
    // 200 emoji: 200 characters, 400 UTF-16 units.
    let mut call: Value =
        serde_json::from_str(&phone_call(&w.tenant, "call_emoji", "+33612345678")).unwrap();
    call["title"] = json!("😀".repeat(200));
    let response = log(&w, &[call.to_string()]).await;
    assert!(response.batch_item_failures.is_empty());
    let task = &task_by_call_object(&w, "call_emoji")[0];
    let subject = task["Subject"].as_str().unwrap();
    assert_eq!(utf16_len(subject), 255, "{subject}");
    assert_eq!(subject, format!("{}…", "😀".repeat(127)));
    let description = task["Description"].as_str().unwrap();
    assert!(utf16_len(description) <= 32_000);
}

#[tokio::test]
async fn a_pod_address_signs_in_at_salesforces_login_host_and_the_admin_is_told() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = unique("acme");
    let saved = stack
        .api(api_event(
            "PUT",
            "/integrations/salesforce/settings",
            Some(json!({
                "consumerKey": stack.sf.app.consumer_key,
                "consumerSecret": stack.sf.app.consumer_secret,
                "instanceUrl": "https://eu40.lightning.force.com/lightning/page/home",
            })),
            Claims::admin(&tenant),
        ))
        .await;
    assert_eq!(status(&saved), 200, "{:?}", body_json(&saved));
    let saved = body_json(&saved);
    assert_eq!(saved["instanceUrl"], "https://eu40.salesforce.com");
    assert_eq!(saved["loginUrl"], "https://login.salesforce.com");
    let notes: Vec<&str> = saved["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("eu40.lightning.force.com"),
        "{}",
        notes[0]
    );
    assert!(
        notes[0].contains("https://login.salesforce.com"),
        "{}",
        notes[0]
    );
    let connect = stack
        .api(api_event(
            "POST",
            "/integrations/salesforce/connect",
            None,
            Claims::admin(&tenant),
        ))
        .await;
    assert_eq!(status(&connect), 200, "{:?}", body_json(&connect));
    let url = Url::parse(body_json(&connect)["authorizeUrl"].as_str().unwrap()).unwrap();
    assert_eq!(url.host_str(), Some("login.salesforce.com"));
    assert_eq!(url.path(), "/services/oauth2/authorize");

    // A sandbox pod signs in at test.salesforce.com.
    let saved = stack
        .api(api_event(
            "PUT",
            "/integrations/salesforce/settings",
            Some(json!({
                "consumerKey": stack.sf.app.consumer_key,
                "consumerSecret": stack.sf.app.consumer_secret,
                "instanceUrl": "cs42.salesforce.com",
            })),
            Claims::admin(&tenant),
        ))
        .await;
    assert_eq!(body_json(&saved)["loginUrl"], "https://test.salesforce.com");
}

/// What the scripted org answers to each conditional update of a composite
/// request: by record id, the status of its subrequest.
fn composite_answer(statuses: &'static [(&'static str, u16)]) -> impl Fn(&Received) -> Reply {
    move |request: &Received| {
        let body = request.json();
        let answers: Vec<Value> = body["compositeRequest"]
            .as_array()
            .unwrap()
            .iter()
            .map(|sub| {
                let url = sub["url"].as_str().unwrap();
                let status = statuses
                    .iter()
                    .find(|(id, _)| url.ends_with(id))
                    .map_or(204, |(_, s)| *s);
                let body = match status {
                    204 => Value::Null,
                    412 => json!([{"errorCode": "PRECONDITION_FAILED", "message": "The record was modified"}]),
                    _ => json!([{"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]),
                };
                json!({"body": body, "httpHeaders": {}, "httpStatusCode": status, "referenceId": sub["referenceId"]})
            })
            .collect();
        Reply::json(200, json!({ "compositeResponse": answers }).to_string())
    }
}

#[tokio::test]
async fn conditional_updates_send_if_unmodified_since_25_per_call_and_say_what_happened() {
    let aws = AwsEnv::new().await;
    let server = ReplayServer::start().await;
    let client = ReplayServer::client(&[&server]);
    let tenant = server.connect_tenant(&aws, Some("00Dx!token")).await;
    server.respond(
        "POST",
        &ReplayServer::data("composite"),
        composite_answer(&[("00T000000000002AAA", 412), ("00T000000000003AAA", 404)]),
    );
    let read_at = chrono::DateTime::parse_from_rfc3339("2026-11-28T11:02:07.000Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut updates: Vec<ConditionalUpdate> = (1..=30)
        .map(|i| ConditionalUpdate {
            object: "Task",
            id: format!("00T{i:012}AAA"),
            fields: fields(json!({"Description": format!("block {i}")})),
            unmodified_since: read_at,
        })
        .collect();
    updates[4].id = "../../limits".into();
    let (store, secrets) = (aws.store(), aws.secrets());
    let outcomes = client
        .session(&tenant, &secrets, &store, deadline())
        .update_if_unmodified(&updates)
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 30);
    assert!(matches!(outcomes[0], ConditionalOutcome::Updated));
    assert!(
        matches!(outcomes[1], ConditionalOutcome::Modified),
        "{:?}",
        outcomes[1]
    );
    match &outcomes[2] {
        ConditionalOutcome::Failed(e) => {
            assert_eq!(e.code(), Some("ENTITY_IS_DELETED"));
            assert_eq!(e.class(), ErrorClass::Permanent);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&outcomes[4], ConditionalOutcome::Failed(e) if e.class() == ErrorClass::Permanent)
    );
    assert!(
        outcomes[5..]
            .iter()
            .all(|o| matches!(o, ConditionalOutcome::Updated))
    );

    // What Salesforce received: 29 valid records in two calls of ≤ 25, each
    // subrequest a PATCH of its row with the date it was read, as an HTTP-date.
    let calls = server.received_on(&ReplayServer::data("composite"));
    let sizes: Vec<usize> = calls
        .iter()
        .map(|c| c.json()["compositeRequest"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [25, 4]);
    let first = &calls[0].json()["compositeRequest"][0];
    assert_eq!(first["method"], "PATCH");
    assert_eq!(
        first["url"],
        ReplayServer::data("sobjects/Task/00T000000000001AAA")
    );
    assert_eq!(
        first["httpHeaders"],
        json!({"If-Unmodified-Since": "Sat, 28 Nov 2026 11:02:07 GMT"})
    );
    assert_eq!(first["body"], json!({"Description": "block 1"}));
    assert_eq!(calls[0].json()["allOrNone"], false);
}

/// Against the emulator's conditional requests (issue 15 item 10, emulator side,
/// on branch h1-emulator): a rep's edit made after the read is never overwritten.
#[tokio::test]
async fn a_conditional_update_never_overwrites_an_edit_made_after_the_read() {
    let sf = SfWorld::start(WorldOptions::default()).await;
    let aws = AwsEnv::new().await;
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets, client) = (aws.store(), aws.secrets(), sf.client());
    let session = client.session(&tenant, &secrets, &store, deadline());
    let ids = sf.seed(vec![
        (
            "Task",
            json!({"Subject": "kept", "Description": "rep text"}),
        ),
        (
            "Task",
            json!({"Subject": "untouched", "Description": "old"}),
        ),
    ]);
    let read = |id: &str| -> Map<String, Value> {
        sf.emu
            .record(ORG, id)
            .unwrap()
            .as_object()
            .cloned()
            .unwrap()
    };
    let last_modified = |r: &Map<String, Value>| {
        chrono::DateTime::parse_from_str(
            r["LastModifiedDate"].as_str().unwrap(),
            "%Y-%m-%dT%H:%M:%S%.3f%z",
        )
        .unwrap()
        .with_timezone(&chrono::Utc)
    };
    let (edited, untouched) = (read(&ids[0]), read(&ids[1]));
    // The rep saves an edit a few seconds after the render read the Task.
    sf.emu.advance(Duration::from_secs(5));
    sf.user()
        .update("Task", &ids[0], json!({"Description": "rep text, edited"}))
        .await;
    let outcomes = session
        .update_if_unmodified(&[
            ConditionalUpdate {
                object: "Task",
                id: ids[0].clone(),
                fields: fields(json!({"Description": "rendered"})),
                unmodified_since: last_modified(&edited),
            },
            ConditionalUpdate {
                object: "Task",
                id: ids[1].clone(),
                fields: fields(json!({"Description": "rendered"})),
                unmodified_since: last_modified(&untouched),
            },
        ])
        .await
        .unwrap();
    assert!(
        matches!(outcomes[0], ConditionalOutcome::Modified),
        "{:?}",
        outcomes[0]
    );
    assert!(
        matches!(outcomes[1], ConditionalOutcome::Updated),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(read(&ids[0])["Description"], "rep text, edited");
    assert_eq!(read(&ids[1])["Description"], "rendered");
    assert_eq!(sf.calls("composite"), 1, "both in one call");
}
