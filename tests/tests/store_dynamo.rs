//! The DynamoDB adapter against moto: every item family round-trips, and the
//! conditional writes that guard leases, idempotency and single-use state hold.

use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use chrono::{DateTime, TimeZone, Utc};
use e2e::moto::AwsEnv;
use e2e::unique;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use shared::domain::*;
use shared::ports::*;

fn tenant() -> TenantId {
    TenantId::parse(&unique("acme")).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

#[tokio::test]
async fn connection_round_trip_and_optimistic_conflict() {
    let env = AwsEnv::new().await;
    let store = env.store();
    let t = tenant();
    assert_eq!(store.get_connection(&t).await.unwrap(), None);

    let mut conn = Connection::new(t.clone(), at(0));
    conn.instance_url = Some("https://acme.my.salesforce.com".into());
    conn.api_usage = Some(ApiUsage {
        used: 12,
        max: 15_000,
        observed_at: at(1),
    });
    let v1 = store.save_connection(&conn).await.unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(store.get_connection(&t).await.unwrap(), Some(v1.clone()));

    // Creating it again (version 0) conflicts: it already exists.
    let err = store.save_connection(&conn).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    // Two writers read version 1; the first wins, the second gets a conflict.
    let mut a = v1.clone();
    a.status = ConnectionStatus::Connected;
    let mut b = v1.clone();
    b.status = ConnectionStatus::NeedsReauth;
    let a = store.save_connection(&a).await.unwrap();
    assert_eq!(a.version, 2);
    let err = store.save_connection(&b).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    assert_eq!(
        shared::error::Classify::class(&err),
        shared::error::ErrorClass::Retryable
    );
    assert_eq!(
        store.get_connection(&t).await.unwrap().unwrap().status,
        ConnectionStatus::Connected
    );
}

#[tokio::test]
async fn status_index_lists_tenants_by_status_across_pages() {
    let env = AwsEnv::new().await;
    let store = env.store().with_page_size(2);
    let mut connected = Vec::new();
    for i in 0..7 {
        let mut c = Connection::new(tenant(), at(i));
        c.status = if i % 3 == 0 {
            ConnectionStatus::NeedsReauth
        } else {
            ConnectionStatus::Connected
        };
        if c.status == ConnectionStatus::Connected {
            connected.push(c.tenant_id.clone());
        }
        store.save_connection(&c).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        pages += 1;
        let page = store
            .tenants_with_status(ConnectionStatus::Connected, token)
            .await
            .unwrap();
        seen.extend(page.items);
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    seen.sort();
    connected.sort();
    assert_eq!(seen, connected);
    assert!(pages >= 2, "expected several pages, got {pages}");

    // Moving a tenant to needs_reauth moves it in the index too.
    let moved = store.get_connection(&connected[0]).await.unwrap().unwrap();
    store
        .save_connection(&Connection {
            status: ConnectionStatus::NeedsReauth,
            ..moved
        })
        .await
        .unwrap();
    let store = env.store();
    let page = store
        .tenants_with_status(ConnectionStatus::Connected, None)
        .await
        .unwrap();
    assert!(!page.items.contains(&connected[0]));
    assert_eq!(page.items.len(), connected.len() - 1);

    // A forged page token is refused, not passed to DynamoDB.
    assert!(
        store
            .tenants_with_status(ConnectionStatus::Connected, Some("garbage".into()))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn audit_trail_is_kept_in_order() {
    let env = AwsEnv::new().await;
    let store = env.store();
    let t = tenant();
    for (i, action) in ["settings_saved", "connected", "disconnected"]
        .iter()
        .enumerate()
    {
        store
            .append_audit(
                &t,
                &AuditEntry {
                    at: at(i as i64),
                    actor: "usr_1".into(),
                    action: action.to_string(),
                    detail: None,
                },
            )
            .await
            .unwrap();
    }
    let trail = store.audit_trail(&t).await.unwrap();
    let actions: Vec<_> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["settings_saved", "connected", "disconnected"]);
    assert!(store.audit_trail(&tenant()).await.unwrap().is_empty());
}

#[tokio::test]
async fn user_mappings_manual_wins_over_auto() {
    let env = AwsEnv::new().await;
    let store = env.store();
    let t = tenant();
    let auto = |sf: &str| UserMapping {
        modjo_user_id: "usr_12".into(),
        sf_user_id: sf.into(),
        source: MappingSource::Auto,
        updated_at: at(0),
    };
    assert!(store.put_mapping(&t, &auto("005A")).await.unwrap());
    // Auto may replace auto.
    assert!(store.put_mapping(&t, &auto("005B")).await.unwrap());
    let manual = UserMapping {
        source: MappingSource::Manual,
        sf_user_id: "005M".into(),
        ..auto("")
    };
    assert!(store.put_mapping(&t, &manual).await.unwrap());
    // Auto never replaces manual.
    assert!(!store.put_mapping(&t, &auto("005C")).await.unwrap());
    assert_eq!(
        store
            .get_mapping(&t, "usr_12")
            .await
            .unwrap()
            .unwrap()
            .sf_user_id,
        "005M"
    );

    let other = UserMapping {
        modjo_user_id: "usr_13".into(),
        ..auto("005D")
    };
    store.put_mapping(&t, &other).await.unwrap();
    let mut all = store.list_mappings(&t).await.unwrap();
    all.sort_by(|a, b| a.modjo_user_id.cmp(&b.modjo_user_id));
    assert_eq!(all, vec![manual.clone(), other]);

    assert!(store.delete_mapping(&t, "usr_12").await.unwrap());
    assert!(!store.delete_mapping(&t, "usr_12").await.unwrap());
    assert_eq!(store.get_mapping(&t, "usr_12").await.unwrap(), None);
}

#[tokio::test]
async fn cursor_round_trip() {
    let env = AwsEnv::new().await;
    let store = env.store();
    let t = tenant();
    assert_eq!(store.get_cursor(&t, "Contact").await.unwrap(), None);
    let cursor = SyncCursor {
        object: "Contact".into(),
        system_modstamp: at(60),
        last_id: "003000000000001AAA".into(),
        updated_at: at(61),
        caught_up: true,
    };
    store.put_cursor(&t, &cursor).await.unwrap();
    assert_eq!(store.get_cursor(&t, "Contact").await.unwrap(), Some(cursor));
    assert_eq!(store.get_cursor(&t, "Lead").await.unwrap(), None);
}

#[tokio::test]
async fn lease_is_exclusive_until_it_expires_then_taken_over() {
    let env = AwsEnv::new().await;
    let store = env.store();
    let t = tenant();
    let ttl = Duration::from_secs(60);

    let a = store
        .acquire_lease(&t, "sync", "job-a", ttl, at(0))
        .await
        .unwrap();
    assert_eq!(a.as_ref().map(|l| l.holder.as_str()), Some("job-a"));
    // Another holder cannot take a live lease.
    assert_eq!(
        store
            .acquire_lease(&t, "sync", "job-b", ttl, at(30))
            .await
            .unwrap(),
        None
    );
    // Its holder can extend it.
    let renewed = store
        .acquire_lease(&t, "sync", "job-a", ttl, at(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renewed.expires_at, at(110));
    assert_eq!(
        store
            .acquire_lease(&t, "sync", "job-b", ttl, at(100))
            .await
            .unwrap(),
        None
    );
    // Once expired, another holder takes it over.
    let b = store
        .acquire_lease(&t, "sync", "job-b", ttl, at(111))
        .await
        .unwrap();
    assert_eq!(b.map(|l| l.holder), Some("job-b".to_string()));
    // The previous holder can no longer release it.
    assert!(!store.release_lease(&t, "sync", "job-a").await.unwrap());
    assert!(store.release_lease(&t, "sync", "job-b").await.unwrap());
    // Released: free for anyone. Leases are per tenant and per name.
    assert!(
        store
            .acquire_lease(&t, "sync", "job-c", ttl, at(112))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .acquire_lease(&t, "refresh", "job-d", ttl, at(112))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .acquire_lease(&tenant(), "sync", "job-e", ttl, at(112))
            .await
            .unwrap()
            .is_some()
    );

    // The lease item carries a TTL so DynamoDB cleans abandoned ones.
    let item = raw_item(&env, &format!("T#{t}"), "LEASE#sync").await;
    let ttl_attr = item
        .get("ttl")
        .and_then(|v| v.as_n().ok())
        .expect("ttl attribute");
    assert!(ttl_attr.parse::<i64>().unwrap() > at(112).timestamp());
}

#[tokio::test]
async fn concurrent_lease_acquisition_has_one_winner() {
    let env = AwsEnv::new().await;
    let store = env.store();
    let t = tenant();
    let attempts = (0..8).map(|i| {
        let store = store.clone();
        let t = t.clone();
        async move {
            store
                .acquire_lease(
                    &t,
                    "sync",
                    &format!("job-{i}"),
                    Duration::from_secs(60),
                    at(0),
                )
                .await
                .unwrap()
        }
    });
    let winners = futures::future::join_all(attempts)
        .await
        .into_iter()
        .flatten()
        .count();
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn records_and_index_entries_follow_changes() {
    let env = AwsEnv::new().await;
    let store = env.store();
    let t = tenant();
    let phone = |v: &str| IndexKey {
        kind: IndexKind::Phone,
        value: v.into(),
    };
    let email = |v: &str| IndexKey {
        kind: IndexKind::Email,
        value: v.into(),
    };
    let contact = |keys: Vec<IndexKey>, modstamp: i64| {
        CrmRecord {
        object: "Contact".into(),
        id: "003000000000001AAA".into(),
        system_modstamp: at(modstamp),
        fields: json!({"FirstName": "Jane", "LastName": "Doe", "Phone": "06 12 34 56 78", "AccountId": null, "Amount": 12.5})
            .as_object()
            .unwrap()
            .clone(),
        index_keys: keys,
    }
    };
    let entries = |r: &CrmRecord| -> Vec<IndexEntry> {
        r.index_keys
            .iter()
            .map(|k| IndexEntry {
                key: k.clone(),
                object: r.object.clone(),
                record_id: r.id.clone(),
                data: Default::default(),
            })
            .collect()
    };

    let v1 = contact(vec![phone("+33612345678"), email("jane@acme.com")], 0);
    store
        .apply_record_changes(
            &t,
            &[RecordChange::Upsert {
                index: entries(&v1),
                record: v1.clone(),
                previous_keys: vec![],
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_records(&t, std::slice::from_ref(&v1.id))
            .await
            .unwrap(),
        vec![v1.clone()]
    );
    let hits = store.query_index(&t, &phone("+33612345678")).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].record_id, v1.id);
    // Another tenant sees nothing.
    assert!(
        store
            .query_index(&tenant(), &phone("+33612345678"))
            .await
            .unwrap()
            .is_empty()
    );

    // The phone changes: the old entry goes, the new one appears, email stays.
    let v2 = contact(vec![phone("+33700000000"), email("jane@acme.com")], 10);
    store
        .apply_record_changes(
            &t,
            &[RecordChange::Upsert {
                index: entries(&v2),
                record: v2.clone(),
                previous_keys: v1.index_keys.clone(),
            }],
        )
        .await
        .unwrap();
    assert!(
        store
            .query_index(&t, &phone("+33612345678"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .query_index(&t, &phone("+33700000000"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .query_index(&t, &email("jane@acme.com"))
            .await
            .unwrap()
            .len(),
        1
    );

    // Deleted: the record and every entry go.
    store
        .apply_record_changes(
            &t,
            &[RecordChange::Delete {
                id: v2.id.clone(),
                previous_keys: v2.index_keys.clone(),
            }],
        )
        .await
        .unwrap();
    assert!(
        store
            .get_records(&t, std::slice::from_ref(&v2.id))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .query_index(&t, &phone("+33700000000"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .query_index(&t, &email("jane@acme.com"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn large_batches_are_chunked_and_read_back() {
    let env = AwsEnv::new().await;
    let store = env.store();
    let t = tenant();
    let records: Vec<CrmRecord> = (0..260)
        .map(|i| CrmRecord {
            object: "Account".into(),
            id: format!("001{i:012}AAA"),
            system_modstamp: at(i),
            fields: json!({"Name": format!("Account {i}"), "Website": "acme.com"})
                .as_object()
                .unwrap()
                .clone(),
            index_keys: vec![IndexKey {
                kind: IndexKind::Domain,
                value: "acme.com".into(),
            }],
        })
        .collect();
    let changes: Vec<RecordChange> = records
        .iter()
        .map(|r| RecordChange::Upsert {
            record: r.clone(),
            index: vec![IndexEntry {
                key: r.index_keys[0].clone(),
                object: "Account".into(),
                record_id: r.id.clone(),
                data: Default::default(),
            }],
            previous_keys: vec![],
        })
        .collect();
    store.apply_record_changes(&t, &changes).await.unwrap();
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let mut back = store.get_records(&t, &ids).await.unwrap();
    back.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(back, records);
    let domain = store
        .query_index(
            &t,
            &IndexKey {
                kind: IndexKind::Domain,
                value: "acme.com".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(domain.len(), 260);
}

#[tokio::test]
async fn call_outcomes_versioned_and_waiting_index() {
    let env = AwsEnv::new().await;
    let store = env.store();
    let t = tenant();
    let outcome = |call: &str, state| CallOutcome {
        reason: Some("tenant needs to reconnect".into()),
        message: Some("{\"version\":1}".into()),
        ..CallOutcome::new(call, state, at(0))
    };
    let w1 = store
        .save_outcome(&t, &outcome("call_1", CallState::Waiting))
        .await
        .unwrap();
    store
        .save_outcome(&t, &outcome("call_2", CallState::Waiting))
        .await
        .unwrap();
    store
        .save_outcome(&t, &outcome("call_3", CallState::Created))
        .await
        .unwrap();
    // A second first-write of the same call loses: this is what makes logging idempotent.
    assert!(matches!(
        store
            .save_outcome(&t, &outcome("call_1", CallState::InProgress))
            .await,
        Err(StoreError::Conflict(_))
    ));

    let waiting = store.waiting_calls(&t, None).await.unwrap();
    let mut ids: Vec<_> = waiting.items.iter().map(|o| o.call_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["call_1", "call_2"]);

    // Once logged, the call leaves the waiting index.
    let done = CallOutcome {
        state: CallState::Created,
        task_id: Some("00T000000000001AAA".into()),
        reason: None,
        ..w1
    };
    let done = store.save_outcome(&t, &done).await.unwrap();
    assert_eq!(done.version, 2);
    assert_eq!(store.get_outcome(&t, "call_1").await.unwrap(), Some(done));
    let waiting = store.waiting_calls(&t, None).await.unwrap();
    assert_eq!(waiting.items.len(), 1);
    assert!(
        store
            .waiting_calls(&tenant(), None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn comments_newest_update_wins() {
    let env = AwsEnv::new().await;
    let store = env.store();
    let t = tenant();
    let comment = |text: &str, updated: i64, deleted: bool| StoredComment {
        call_id: "call_1".into(),
        comment_id: "cmt_1".into(),
        author_name: "Alice Martin".into(),
        text: text.into(),
        at_second: 195,
        updated_at: at(updated),
        deleted,
    };
    assert!(
        store
            .upsert_comment(&t, &comment("v1", 10, false))
            .await
            .unwrap()
    );
    assert!(
        store
            .upsert_comment(&t, &comment("v2", 20, false))
            .await
            .unwrap()
    );
    // Late and duplicated events lose.
    assert!(
        !store
            .upsert_comment(&t, &comment("v1", 10, false))
            .await
            .unwrap()
    );
    assert!(
        !store
            .upsert_comment(&t, &comment("v2", 20, false))
            .await
            .unwrap()
    );
    // A delete is a tombstone; an older upsert cannot resurrect it.
    assert!(
        store
            .upsert_comment(&t, &comment("", 30, true))
            .await
            .unwrap()
    );
    assert!(
        !store
            .upsert_comment(&t, &comment("v2", 25, false))
            .await
            .unwrap()
    );
    let stored = store.comments_for_call(&t, "call_1").await.unwrap();
    assert_eq!(stored, vec![comment("", 30, true)]);
    // The outcome and the comments share the call's partition without mixing.
    assert_eq!(store.get_outcome(&t, "call_1").await.unwrap(), None);
}

#[tokio::test]
async fn oauth_state_is_single_use_and_expires() {
    let env = AwsEnv::new().await;
    let store = env.store();
    let t = tenant();
    let pending = |nonce: &str, expires: i64| PendingAuthorization {
        nonce: nonce.into(),
        user_id: "usr_1".into(),
        pkce_verifier: SecretString::from("verifier-0123456789-0123456789-0123456789abc"),
        expires_at: at(expires),
    };
    store.put_pending(&t, &pending("n1", 600)).await.unwrap();
    // The same nonce cannot be stored twice.
    assert!(store.put_pending(&t, &pending("n1", 600)).await.is_err());

    // Another tenant cannot consume it.
    assert!(
        store
            .take_pending(&tenant(), "n1", at(1))
            .await
            .unwrap()
            .is_none()
    );
    let taken = store
        .take_pending(&t, "n1", at(1))
        .await
        .unwrap()
        .expect("first use");
    assert_eq!(taken.user_id, "usr_1");
    assert_eq!(
        taken.pkce_verifier.expose_secret(),
        "verifier-0123456789-0123456789-0123456789abc"
    );
    // Second use fails.
    assert!(store.take_pending(&t, "n1", at(2)).await.unwrap().is_none());

    // Expired: refused even though DynamoDB's TTL has not removed it yet.
    store.put_pending(&t, &pending("n2", 600)).await.unwrap();
    let item = raw_item(&env, &format!("T#{t}"), "OAUTH#n2").await;
    assert_eq!(
        item.get("ttl")
            .and_then(|v| v.as_n().ok())
            .map(String::as_str),
        Some(at(600).timestamp().to_string().as_str())
    );
    assert!(
        store
            .take_pending(&t, "n2", at(601))
            .await
            .unwrap()
            .is_none()
    );

    // Concurrent callbacks with one state: exactly one wins.
    store.put_pending(&t, &pending("n3", 600)).await.unwrap();
    let takes = (0..6).map(|_| {
        let store = store.clone();
        let t = t.clone();
        async move { store.take_pending(&t, "n3", at(1)).await.unwrap() }
    });
    assert_eq!(
        futures::future::join_all(takes)
            .await
            .into_iter()
            .flatten()
            .count(),
        1
    );
}

#[tokio::test]
async fn table_has_ttl_enabled() {
    let env = AwsEnv::new().await;
    let ttl = env
        .clients
        .dynamodb
        .describe_time_to_live()
        .table_name(&env.resources.table)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.attribute_name.as_deref(), Some("ttl"));
    assert_eq!(ttl.time_to_live_status, Some(TimeToLiveStatus::Enabled));
}

async fn raw_item(
    env: &AwsEnv,
    pk: &str,
    sk: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    env.clients
        .dynamodb
        .get_item()
        .table_name(&env.resources.table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("item exists")
}

#[tokio::test]
async fn calls_are_listed_newest_first_filtered_and_paged() {
    let env = AwsEnv::new().await;
    let store = env.store();
    let t = tenant();
    let other = tenant();
    let states = [
        CallState::Created,
        CallState::Failed,
        CallState::Unmatched,
        CallState::Failed,
        CallState::Enriched,
        CallState::Waiting,
        CallState::Failed,
    ];
    for (i, state) in states.iter().enumerate() {
        let outcome = CallOutcome::new(&format!("call_{i}"), *state, at(i as i64 * 60));
        store.save_outcome(&t, &outcome).await.unwrap();
    }
    // Another workspace's newest call never shows.
    store
        .save_outcome(
            &other,
            &CallOutcome::new("theirs", CallState::Failed, at(9_999)),
        )
        .await
        .unwrap();
    // An update moves a call to the top.
    let mut first = store.get_outcome(&t, "call_0").await.unwrap().unwrap();
    first.updated_at = at(1_000);
    store.save_outcome(&t, &first).await.unwrap();

    let ids = |page: &Page<CallOutcome>| -> Vec<String> {
        page.items.iter().map(|o| o.call_id.clone()).collect()
    };
    let mut all = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store.recent_calls(&t, None, 3, cursor).await.unwrap();
        assert!(page.items.len() <= 3);
        all.extend(ids(&page));
        pages += 1;
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(
        all,
        [
            "call_0", "call_6", "call_5", "call_4", "call_3", "call_2", "call_1"
        ]
    );
    assert!(pages >= 3, "{pages} pages of at most 3");

    let failed = store
        .recent_calls(&t, Some(CallState::Failed), 2, None)
        .await
        .unwrap();
    assert_eq!(ids(&failed), ["call_6", "call_3"]);
    let rest = store
        .recent_calls(&t, Some(CallState::Failed), 2, failed.next.clone())
        .await
        .unwrap();
    assert_eq!(ids(&rest), ["call_1"]);
    // Another workspace's cursor does not open this one's calls, nor the reverse.
    let theirs = store
        .recent_calls(&other, None, 3, failed.next.clone())
        .await;
    assert!(matches!(theirs, Err(StoreError::Rejected(_))), "{theirs:?}");

    // A cursor is checked, not trusted.
    let forged = store
        .recent_calls(&t, None, 3, Some("eyJwayI6IngifQ".into()))
        .await;
    assert!(matches!(forged, Err(StoreError::Rejected(_))), "{forged:?}");
}

#[tokio::test]
async fn the_modjo_user_directory_is_replaced_whole() {
    let env = AwsEnv::new().await;
    let store = env.store();
    let t = tenant();
    let user = |id: &str| ModjoUser {
        id: id.into(),
        email: format!("{id}@modjo.test"),
        name: Some(id.to_uppercase()),
    };
    let many: Vec<ModjoUser> = (0..60).map(|i| user(&format!("usr_{i:02}"))).collect();
    store.replace_modjo_users(&t, &many).await.unwrap();
    assert_eq!(store.modjo_users(&t).await.unwrap().len(), 60);
    store
        .replace_modjo_users(&t, &[user("usr_07"), user("usr_new")])
        .await
        .unwrap();
    let left: Vec<String> = store
        .modjo_users(&t)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(left, ["usr_07", "usr_new"]);
    assert!(store.modjo_users(&tenant()).await.unwrap().is_empty());
}
