//! The Salesforce client against the emulator (Salesforce's wire protocol) with
//! its tokens in Secrets Manager and its leases in DynamoDB on moto.

use std::time::Duration;

use e2e::moto::AwsEnv;
use e2e::sf::{ORG, SfWorld, WorldOptions, fields};
use futures::TryStreamExt;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};
use sf_emulator::{FailureKind, Fault};
use shared::adapters::salesforce::ApiKind;
use shared::domain::ConnectionStatus;
use shared::error::{Classify, ErrorClass};
use shared::ports::{ConnectionStore, SalesforceReads, SalesforceWrites, SecretStore};
use shared::salesforce::soql::{Cond, Like, Order, Select};
use shared::salesforce::{KeysetQuery, NewRecord, RecordUpdate, SalesforceError};
use tokio::time::Instant;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn contacts(n: usize) -> Vec<(&'static str, Value)> {
    (0..n)
        .map(|i| ("Contact", json!({"LastName": format!("Contact {i:05}"), "Phone": format!("06 12 {:02} {:02} {:02}", i / 10000 % 100, i / 100 % 100, i % 100)})))
        .collect()
}

#[tokio::test]
async fn query_streams_pages_following_next_records_url() {
    let (aws, sf) = (
        AwsEnv::new().await,
        SfWorld::start(WorldOptions::default()).await,
    );
    sf.seed(contacts(4_500));
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets, client) = (aws.store(), aws.secrets(), sf.client());
    let session = client.session(&tenant, &secrets, &store, deadline());

    let soql = Select::new("Contact", &["Id", "LastName"])
        .order_by("LastName", Order::Asc)
        .render()
        .unwrap();
    let pages: Vec<_> = session
        .query_pages::<Map<String, Value>>(&soql, false)
        .try_collect()
        .await
        .unwrap();
    let sizes: Vec<usize> = pages.iter().map(|p| p.records.len()).collect();
    assert_eq!(sizes, [2000, 2000, 500]);
    assert!(pages.iter().all(|p| p.total_size == 4_500));
    assert!(pages[2].done && !pages[0].done);
    let names: Vec<&str> = pages
        .iter()
        .flat_map(|p| p.records.iter())
        .map(|r| r["LastName"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"Contact 00000"));
    assert_eq!(names.last(), Some(&"Contact 04499"));
    // One query and two queryMore: exactly ⌈4500/2000⌉ calls.
    assert_eq!((sf.calls("query"), sf.calls("queryMore")), (1, 2));
    assert_eq!(client.counters().get(ApiKind::Query), 1);
    assert_eq!(client.counters().get(ApiKind::QueryMore), 2);
    // Usage comes from Sforce-Limit-Info.
    let usage = client.usage(&tenant).unwrap();
    assert_eq!((usage.used, usage.max), (3, 100_000));
}

#[tokio::test]
async fn session_expiring_mid_paging_refreshes_and_continues_where_it_stopped() {
    let (aws, sf) = (
        AwsEnv::new().await,
        SfWorld::start(WorldOptions::default()).await,
    );
    // One timestamp for everything: the position must break ties on Id.
    sf.emu.freeze_clock(true);
    sf.seed(contacts(4_100));
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets, client) = (aws.store(), aws.secrets(), sf.client());
    let session = client.session(&tenant, &secrets, &store, deadline());
    let query = KeysetQuery::new("Contact", &["LastName"]);

    let mut stream = Box::pin(session.keyset_pages(query, None));
    let first = stream.try_next().await.unwrap().unwrap();
    assert_eq!(first.records.len(), 2000);
    // The session dies mid-read; its query locator dies with it.
    sf.emu.inject(ORG, Fault::ExpireSessions).unwrap();
    let mut ids: Vec<String> = first
        .records
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    while let Some(page) = stream.try_next().await.unwrap() {
        ids.extend(
            page.records
                .iter()
                .map(|r| r["Id"].as_str().unwrap().to_string()),
        );
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), 4_100, "every record once");
    assert_eq!(unique.len(), 4_100, "no record twice");
    assert_eq!(
        sf.emu
            .query(ORG, "SELECT Id FROM Contact", false)
            .unwrap()
            .len(),
        4_100
    );
    // The refreshed token was persisted for other containers.
    let stored = secrets.get_credentials(&tenant).await.unwrap().unwrap();
    assert!(stored.access_token.is_some());
}

#[tokio::test]
async fn keyset_read_resumes_from_a_stored_position() {
    let (aws, sf) = (
        AwsEnv::new().await,
        SfWorld::start(WorldOptions::default()).await,
    );
    sf.emu.freeze_clock(true);
    sf.seed(contacts(2_500));
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets, client) = (aws.store(), aws.secrets(), sf.client());
    let session = client.session(&tenant, &secrets, &store, deadline());
    let first = Box::pin(session.keyset_pages(KeysetQuery::new("Contact", &[]), None))
        .try_next()
        .await
        .unwrap()
        .unwrap();
    let position = first.position.clone().unwrap();
    // A later job starts from the stored position: exactly the rest.
    let rest: Vec<_> = session
        .keyset_pages(KeysetQuery::new("Contact", &[]), Some(position))
        .try_collect()
        .await
        .unwrap();
    let count: usize = rest.iter().map(|p| p.records.len()).sum();
    assert_eq!(count, 500);
    assert!(rest.last().unwrap().done);
}

#[tokio::test]
async fn new_containers_reuse_the_persisted_access_token() {
    let (aws, sf) = (
        AwsEnv::new().await,
        SfWorld::start(WorldOptions::default()).await,
    );
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets) = (aws.store(), aws.secrets());
    let soql = Select::new("User", &["Id"]).render().unwrap();
    let first = sf.client();
    first
        .session(&tenant, &secrets, &store, deadline())
        .query_all_pages::<Value>(&soql, false)
        .await
        .unwrap();
    let token = secrets
        .get_credentials(&tenant)
        .await
        .unwrap()
        .unwrap()
        .access_token
        .unwrap();

    // A second "container" (a new client, empty cache) uses the stored token as is.
    let second = sf.client();
    second
        .session(&tenant, &secrets, &store, deadline())
        .query_all_pages::<Value>(&soql, false)
        .await
        .unwrap();
    let after = secrets
        .get_credentials(&tenant)
        .await
        .unwrap()
        .unwrap()
        .access_token
        .unwrap();
    assert_eq!(
        token.expose_secret(),
        after.expose_secret(),
        "no second refresh"
    );
}

#[tokio::test]
async fn rotation_survives_concurrent_refreshes_from_two_containers() {
    let (aws, sf) = (
        AwsEnv::new().await,
        SfWorld::start(WorldOptions {
            rotate_refresh_tokens: true,
            ..Default::default()
        })
        .await,
    );
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets) = (aws.store(), aws.secrets());
    let soql = Select::new("User", &["Id"]).render().unwrap();
    let before = secrets
        .get_credentials(&tenant)
        .await
        .unwrap()
        .unwrap()
        .refresh_token
        .unwrap();

    for round in 0..3 {
        // Two containers, each with several concurrent tasks, all needing a refresh.
        let (a, b) = (sf.client(), sf.client());
        let runs = (0..6).map(|i| {
            let client = if i % 2 == 0 { &a } else { &b };
            let (store, secrets, tenant, soql) = (&store, &secrets, &tenant, &soql);
            async move {
                client
                    .session(tenant, secrets, store, deadline())
                    .query_all_pages::<Value>(soql, false)
                    .await
            }
        });
        for result in futures::future::join_all(runs).await {
            result.unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        sf.emu.inject(ORG, Fault::ExpireSessions).unwrap();
    }
    // The stored refresh token rotated and is the live one.
    let after = secrets
        .get_credentials(&tenant)
        .await
        .unwrap()
        .unwrap()
        .refresh_token
        .unwrap();
    assert_ne!(before.expose_secret(), after.expose_secret());
    let fresh = sf.client();
    fresh
        .session(&tenant, &secrets, &store, deadline())
        .query_all_pages::<Value>(&soql, false)
        .await
        .unwrap();
    let connection = store.get_connection(&tenant).await.unwrap().unwrap();
    assert_eq!(connection.status, ConnectionStatus::Connected);
}

#[tokio::test]
async fn revoked_refresh_token_gives_needs_reauth_and_sets_the_status() {
    let (aws, sf) = (
        AwsEnv::new().await,
        SfWorld::start(WorldOptions::default()).await,
    );
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets, client) = (aws.store(), aws.secrets(), sf.client());
    sf.emu.inject(ORG, Fault::RevokeRefreshTokens).unwrap();
    let soql = Select::new("User", &["Id"]).render().unwrap();
    let err = client
        .session(&tenant, &secrets, &store, deadline())
        .query_all_pages::<Value>(&soql, false)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::NeedsReauth, "{err}");
    let connection = store.get_connection(&tenant).await.unwrap().unwrap();
    assert_eq!(connection.status, ConnectionStatus::NeedsReauth);
    assert!(connection.status_reason.unwrap().contains("reconnect"));
    // Nothing was dropped: the credentials are still there for the admin to fix.
    assert!(secrets.get_credentials(&tenant).await.unwrap().is_some());
}

#[tokio::test]
async fn transient_503_is_retried_then_succeeds() {
    let (aws, sf) = (
        AwsEnv::new().await,
        SfWorld::start(WorldOptions::default()).await,
    );
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets, client) = (aws.store(), aws.secrets(), sf.client());
    let session = client.session(&tenant, &secrets, &store, deadline());
    let soql = Select::new("User", &["Id"]).render().unwrap();
    session
        .query_all_pages::<Value>(&soql, false)
        .await
        .unwrap();
    sf.emu.reset_counters(ORG).unwrap();

    sf.emu
        .inject(
            ORG,
            Fault::FailNext {
                count: 2,
                kind: FailureKind::ServerUnavailable,
            },
        )
        .unwrap();
    let users = session
        .query_all_pages::<Value>(&soql, false)
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(sf.calls("query"), 3, "two failures and the success");

    sf.emu
        .inject(
            ORG,
            Fault::FailNext {
                count: 1,
                kind: FailureKind::UnableToLockRow,
            },
        )
        .unwrap();
    let id = session
        .create("Account", &fields(json!({"Name": "Locked Inc"})))
        .await
        .unwrap();
    assert!(id.starts_with("001"));

    // Out of time: the retryable error comes back instead of a hang.
    sf.emu
        .inject(
            ORG,
            Fault::FailNext {
                count: 100,
                kind: FailureKind::ServerUnavailable,
            },
        )
        .unwrap();
    let short = client.session(
        &tenant,
        &secrets,
        &store,
        Instant::now() + Duration::from_millis(700),
    );
    let err = short
        .query_all_pages::<Value>(&soql, false)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
}

#[tokio::test]
async fn limit_exceeded_is_retryable_and_recorded() {
    let (aws, sf) = (
        AwsEnv::new().await,
        SfWorld::start(WorldOptions {
            api_daily_limit: Some(5_000),
            ..Default::default()
        })
        .await,
    );
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets, client) = (aws.store(), aws.secrets(), sf.client());
    let session = client.session(&tenant, &secrets, &store, deadline());
    let soql = Select::new("User", &["Id"]).render().unwrap();

    sf.emu
        .inject(ORG, Fault::SetApiUsage { used: 4_100 })
        .unwrap();
    session
        .query_all_pages::<Value>(&soql, false)
        .await
        .unwrap();
    let usage = client.usage(&tenant).unwrap();
    assert_eq!((usage.used, usage.max), (4_101, 5_000));

    sf.emu
        .inject(ORG, Fault::SetApiUsage { used: 5_000 })
        .unwrap();
    let before = sf.total_calls();
    let err = session
        .query_all_pages::<Value>(&soql, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("REQUEST_LIMIT_EXCEEDED"));
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert!(
        !err.is_transient(),
        "not retried in a loop: the allocation stays spent"
    );
    assert_eq!(sf.total_calls(), before, "one attempt only");
    assert!(client.usage(&tenant).unwrap().used >= 5_000);
}

#[tokio::test]
async fn collections_map_each_result_to_its_input() {
    let (aws, sf) = (
        AwsEnv::new().await,
        SfWorld::start(WorldOptions::default()).await,
    );
    let contact = sf
        .seed(vec![("Contact", json!({"LastName": "Doe"}))])
        .remove(0);
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets, client) = (aws.store(), aws.secrets(), sf.client());
    let session = client.session(&tenant, &secrets, &store, deadline());

    let task = |subject: &str, who: &str| NewRecord {
        object: "Task",
        fields: fields(
            json!({"Subject": subject, "TaskSubtype": "Call", "WhoId": who, "Status": "Completed"}),
        ),
    };
    let mut records: Vec<NewRecord> = (0..450)
        .map(|i| task(&format!("Call {i}"), &contact))
        .collect();
    records[1] = task("bad who", "003000000000000AAA");
    records[201]
        .fields
        .insert("Description".into(), json!("x".repeat(32_001)));
    let results = session.create_many(&records).await.unwrap();
    assert_eq!(results.len(), 450);
    assert_eq!(
        sf.calls("collectionsCreate"),
        3,
        "450 records in 3 requests of ≤ 200"
    );
    for (i, r) in results.iter().enumerate() {
        match i {
            1 => assert_eq!(r.errors[0].code, "INVALID_CROSS_REFERENCE_KEY", "{r:?}"),
            201 => assert_eq!(r.errors[0].code, "STRING_TOO_LONG", "{r:?}"),
            _ => assert!(
                r.success && r.id.as_deref().is_some_and(|id| id.starts_with("00T")),
                "{i}: {r:?}"
            ),
        }
    }
    let created = sf.emu.records(ORG, "Task", false).unwrap();
    assert_eq!(created.len(), 448);

    // Updates: results in order; a bad field value fails only its record.
    let ids: Vec<String> = results
        .iter()
        .filter_map(|r| r.id.clone())
        .take(3)
        .collect();
    let updates: Vec<RecordUpdate> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| RecordUpdate {
            object: "Task",
            id: id.clone(),
            fields: if i == 1 {
                fields(json!({"TaskSubtype": "Email"}))
            } else {
                fields(json!({"Description": format!("updated {i}")}))
            },
        })
        .collect();
    let results = session.update_many(&updates).await.unwrap();
    assert!(results[0].success && results[2].success);
    assert!(!results[1].success);
    assert_eq!(results[1].errors[0].code, "INVALID_FIELD_FOR_INSERT_UPDATE");
}

/// The call logger's write: a batch's new Tasks and its enriched Tasks go as
/// sObject Collections inside one composite request, one API call in all.
#[tokio::test]
async fn creates_and_updates_share_one_composite_request() {
    let (aws, sf) = (
        AwsEnv::new().await,
        SfWorld::start(WorldOptions::default()).await,
    );
    let mut seeded = sf.seed(vec![
        ("Contact", json!({"LastName": "Doe"})),
        (
            "Task",
            json!({"Subject": "Dialer 1", "Status": "Completed"}),
        ),
        (
            "Task",
            json!({"Subject": "Dialer 2", "Status": "Completed"}),
        ),
    ]);
    let contact = seeded.remove(0);
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets, client) = (aws.store(), aws.secrets(), sf.client());
    let session = client.session(&tenant, &secrets, &store, deadline());
    let task = |subject: String, who: &str| NewRecord {
        object: "Task",
        fields: fields(json!({"Subject": subject, "WhoId": who, "Status": "Completed"})),
    };
    let update = |id: &str, description: String| RecordUpdate {
        object: "Task",
        id: id.to_string(),
        fields: fields(json!({ "Description": description })),
    };

    // 250 creates (two collections) and two updates (one): three collections
    // in one composite request.
    let mut creates: Vec<NewRecord> = (0..250)
        .map(|i| task(format!("Call {i}"), &contact))
        .collect();
    creates[210] = task("bad who".into(), "003000000000000AAA");
    let updates = vec![
        update(&seeded[0], "x".repeat(32_001)),
        update(&seeded[1], "enriched".into()),
    ];
    sf.emu.reset_counters(ORG).unwrap();
    let written = session.write_many(&creates, &updates).await.unwrap();
    assert_eq!(sf.total_calls(), 1, "one API call for both sides");
    assert_eq!(sf.calls("composite"), 1);
    let created = written.created.unwrap();
    assert_eq!(created.len(), 250);
    for (i, r) in created.iter().enumerate() {
        if i == 210 {
            assert_eq!(r.errors[0].code, "INVALID_CROSS_REFERENCE_KEY", "{r:?}");
        } else {
            assert!(r.success, "{i}: {r:?}");
        }
    }
    let stored = sf
        .emu
        .record(ORG, created[249].id.as_deref().unwrap())
        .unwrap();
    assert_eq!(stored["Subject"], "Call 249", "results are in input order");
    let updated = written.updated.unwrap();
    assert_eq!(updated[0].errors[0].code, "STRING_TOO_LONG");
    assert!(updated[1].success);
    assert_eq!(
        sf.emu.record(ORG, &seeded[1]).unwrap()["Description"],
        "enriched"
    );

    // One side alone is a plain collections request, not a composite.
    sf.emu.reset_counters(ORG).unwrap();
    let written = session
        .write_many(&[], &[update(&seeded[1], "again".into())])
        .await
        .unwrap();
    assert!(written.updated.unwrap()[0].success);
    assert_eq!(sf.calls("collectionsUpdate"), 1);
    assert_eq!(sf.total_calls(), 1);

    // A collection Salesforce refuses as a whole fails its side only: the
    // other side's records are written and answered.
    let mut bad = update(&seeded[1], "never".into());
    bad.fields.insert("NoSuchField__c".into(), json!("x"));
    let written = session
        .write_many(&[task("kept".into(), &contact)], &[bad])
        .await
        .unwrap();
    assert!(written.updated.is_err(), "{:?}", written.updated);
    let kept = written.created.unwrap();
    assert_eq!(
        sf.emu.record(ORG, kept[0].id.as_deref().unwrap()).unwrap()["Subject"],
        "kept"
    );
    assert_eq!(
        sf.emu.record(ORG, &seeded[1]).unwrap()["Description"],
        "again"
    );
}

#[tokio::test]
async fn hostile_strings_match_exactly_their_record() {
    let (aws, sf) = (
        AwsEnv::new().await,
        SfWorld::start(WorldOptions::default()).await,
    );
    let hostile = [
        "O'Brien",
        "back\\slash",
        "quote\" and ' both",
        "new\nline",
        "tab\there",
        "x' OR LastName != '",
        "%",
        "_",
        "50%_off",
        "名前 ☎ émile",
        "\\' OR ''='",
        "trailing\\",
    ];
    let long = "L".repeat(79) + "'";
    let mut names: Vec<String> = hostile.iter().map(|s| s.to_string()).collect();
    names.push(long);
    sf.seed(
        names
            .iter()
            .map(|n| ("Contact", json!({"LastName": n})))
            .collect(),
    );
    sf.seed(vec![
        ("Contact", json!({"LastName": "Innocent"})),
        ("Contact", json!({"LastName": "50 percent off"})),
    ]);
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets, client) = (aws.store(), aws.secrets(), sf.client());
    let session = client.session(&tenant, &secrets, &store, deadline());

    for name in &names {
        let soql = Select::new("Contact", &["Id", "LastName"])
            .filter(Cond::eq("LastName", name.as_str()))
            .render()
            .unwrap();
        let found = session
            .query_all_pages::<Map<String, Value>>(&soql, false)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{name:?} → {found:?}");
        assert_eq!(found[0]["LastName"], json!(name));
    }
    // LIKE: user wildcards are literal.
    let like = |pattern: Like| async {
        let soql = Select::new("Contact", &["LastName"])
            .filter(Cond::like("LastName", pattern))
            .render()
            .unwrap();
        let found = session
            .query_all_pages::<Map<String, Value>>(&soql, false)
            .await
            .unwrap();
        let mut names: Vec<String> = found
            .iter()
            .map(|r| r["LastName"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(like(Like::Exact("%".into())).await, ["%"]);
    assert_eq!(like(Like::Contains("%_".into())).await, ["50%_off"]);
    assert_eq!(
        like(Like::StartsWith("50".into())).await,
        ["50 percent off", "50%_off"]
    );
    // Over Salesforce's literal limit: refused before sending.
    let err = Select::new("Contact", &["Id"])
        .filter(Cond::eq("LastName", "y".repeat(4_001)))
        .render();
    assert!(err.is_err());
}

#[tokio::test]
async fn sosl_phone_search_is_escaped_and_finds_variants() {
    let (aws, sf) = (
        AwsEnv::new().await,
        SfWorld::start(WorldOptions::default()).await,
    );
    sf.seed(vec![
        (
            "Contact",
            json!({"LastName": "National", "Phone": "06 12 34 56 78"}),
        ),
        (
            "Contact",
            json!({"LastName": "International", "MobilePhone": "+33 6 12 34 56 78"}),
        ),
        (
            "Lead",
            json!({"LastName": "Lead", "Company": "X", "Phone": "06.12.34.56.78"}),
        ),
        (
            "Contact",
            json!({"LastName": "Other", "Phone": "06 99 99 99 99"}),
        ),
    ]);
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets, client) = (aws.store(), aws.secrets(), sf.client());
    let session = client.session(&tenant, &secrets, &store, deadline());
    let e164 = shared::domain::normalize::phone_e164("+33 6 12 34 56 78", "FR").unwrap();
    let search = shared::salesforce::sosl::PhoneSearch::new(
        shared::domain::normalize::phone_search_variants(&e164),
    )
    .returning("Contact", &["Id", "LastName"])
    .returning("Lead", &["Id", "LastName"])
    .render()
    .unwrap();
    let found = session.search(&search).await.unwrap();
    let mut names: Vec<&str> = found
        .iter()
        .map(|r| r["LastName"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["International", "Lead", "National"]);
    assert_eq!(sf.calls("search"), 1, "every variant in one search");

    // Hostile input: only its digits reach the query, which stays valid.
    for (hostile, expect_request) in [
        ("0612} RETURNING User(Id", true),
        ("\" OR * AND NOT {x}", false),
        ("\\", false),
        ("{}[]()^~*:+-?&|! 0699", true),
    ] {
        let search = shared::salesforce::sosl::PhoneSearch::new([hostile.to_string()])
            .returning("Contact", &["Id"]);
        match search.render() {
            Some(q) => {
                assert!(expect_request, "{hostile:?}");
                let found = session
                    .search(&q)
                    .await
                    .unwrap_or_else(|e| panic!("{hostile:?}: {e}"));
                assert!(found.is_empty(), "{hostile:?}");
            }
            None => assert!(
                !expect_request,
                "{hostile:?}: nothing to search, no request"
            ),
        }
    }
}

#[tokio::test]
async fn instance_url_attacks_are_refused_before_any_request() {
    let (aws, sf) = (
        AwsEnv::new().await,
        SfWorld::start(WorldOptions::default()).await,
    );
    let tenant = sf.connect_tenant(&aws).await;
    let (store, secrets, client) = (aws.store(), aws.secrets(), sf.client());
    let soql = Select::new("User", &["Id"]).render().unwrap();
    let attacks = [
        "http://acme.my.salesforce.com",
        "https://169.254.169.254",
        "https://evil.com",
        "https://salesforce.com.evil.com",
        "https://acme.my.salesforce.com@evil.com",
        "https://127.0.0.1",
        "https://acme.my.salesforce.com.",
        // The emulator itself on another port is not the allowed origin.
        &sf.base_url()
            .replace("http://127.0.0.1:", "http://127.0.0.1:1"),
    ];
    for attack in attacks {
        let mut creds = sf.credentials(None);
        let (refresh, access) = sf.mint_refresh_token();
        creds.refresh_token = Some(refresh.into());
        creds.access_token = access.map(Into::into);
        creds.instance_url = attack.to_string();
        creds.login_url = attack.to_string();
        secrets.put_credentials(&tenant, &creds).await.unwrap();
        client.forget(&tenant);
        sf.emu.reset_counters(ORG).unwrap();
        let err = client
            .session(&tenant, &secrets, &store, deadline())
            .query_all_pages::<Value>(&soql, false)
            .await
            .unwrap_err();
        assert!(matches!(err, SalesforceError::Url(_)), "{attack}: {err}");
        assert_eq!(sf.total_calls(), 0, "{attack}: a request was sent");
    }
}
