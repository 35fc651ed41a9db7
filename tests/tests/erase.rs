//! Erasing a person (GDPR), a tenant's purge and the retention of stored calls
//! (issue 19), through the API handler, against the emulator and moto. What is
//! left is read with a Scan of the whole table, compressed messages unpacked.

use std::io::Read;

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::scenario::*;
use e2e::stack::{Claims, api_event, body_json, status};
use serde_json::{Value, json};
use shared::domain::{ApiUsage, CallState, IndexKey, IndexKind};
use shared::ports::{
    CallStore as _, ConnectionStore as _, RecordStore as _, SalesforceSessions, SecretStore as _,
};
use shared::work::update_connection;

/// Every item of the table, as text (binary attributes gunzipped).
async fn scan(w: &World) -> Vec<(String, String, String)> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = w
            .stack
            .aws
            .clients
            .dynamodb
            .scan()
            .table_name(&w.stack.aws.resources.table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap();
        for item in out.items.unwrap_or_default() {
            let text = |k: &str| match item.get(k) {
                Some(AttributeValue::S(s)) => s.clone(),
                _ => String::new(),
            };
            let (pk, sk) = (text("pk"), text("sk"));
            let mut body = format!("{item:?}");
            for v in item.values() {
                if let AttributeValue::B(blob) = v {
                    let mut unpacked = String::new();
                    flate2::read::GzDecoder::new(blob.as_ref())
                        .read_to_string(&mut unpacked)
                        .unwrap();
                    body.push_str(&unpacked);
                }
            }
            items.push((pk, sk, body));
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return items,
        }
    }
}

async fn post_erasure(w: &World, body: Value) -> (u16, Value) {
    let r = w
        .stack
        .api(api_event(
            "POST",
            "/integrations/salesforce/erasures",
            Some(body),
            Claims::admin(w.tenant.as_str()),
        ))
        .await;
    (status(&r), body_json(&r))
}

/// Jane with an email on her timeline and an email Task, and three calls that
/// name her: matched by her number, by her address (a long, compressed message),
/// and one left unmatched whose participant is called by her name.
async fn jane_everywhere() -> World {
    let w = world().await;
    let user = w.stack.sf.user();
    let mail = user
        .create(
            "EmailMessage",
            json!({"Subject": "Proposal for Jane Doe", "Status": "3", "MessageDate": "2026-11-20T09:00:00.000+0000",
                   "RelatedToId": w.ids["opp_main"], "FromAddress": "bob@modjo.ai", "ToAddress": "jane@acme.com"}),
        )
        .await;
    user.create(
        "EmailMessageRelation",
        json!({"EmailMessageId": mail, "RelationId": w.ids["jane"], "RelationType": "ToAddress"}),
    )
    .await;
    user.create(
        "Task",
        json!({"Subject": "Email: follow-up with Jane", "TaskSubtype": "Email", "WhoId": w.ids["jane"],
               "ActivityDate": "2026-11-21", "Status": "Completed"}),
    )
    .await;
    sync(&w.stack, &w.tenant).await;
    let long_summary = format!("Jane Doe asked about pricing. {}", "Notes. ".repeat(300));
    log(
        &w,
        &[
            phone_call(&w.tenant, "call_phone", "+33612345678"),
            call(
                &w.tenant,
                "call_email",
                "inbound",
                json!([
                    {"role": "external", "name": "J. Doe", "email": "Jane@Acme.com"},
                    {"role": "internal", "userId": "usr_12", "email": "bob@modjo.ai", "note": long_summary}
                ]),
            ),
            call(
                &w.tenant,
                "call_unmatched",
                "outbound",
                json!([
                    {"role": "external", "name": "Jane Doe", "phone": "+33 7 00 00 00 01"},
                    {"role": "internal", "userId": "usr_12", "email": "bob@modjo.ai"}
                ]),
            ),
        ],
    )
    .await;
    assert_eq!(
        outcome(&w, "call_phone").await.who_id,
        Some(w.ids["jane"].clone())
    );
    assert_eq!(
        outcome(&w, "call_email").await.who_id,
        Some(w.ids["jane"].clone())
    );
    assert_eq!(
        outcome(&w, "call_unmatched").await.state,
        CallState::Unmatched
    );
    w
}

/// Nothing of Jane is left: no address, number or name anywhere; her id only in
/// her tombstone, in the calls' links (which mirror the Salesforce Tasks) and as
/// a sync position.
async fn assert_nothing_of_jane_left(w: &World) {
    let jane = &w.ids["jane"];
    let items = scan(w).await;
    assert!(items.len() > 20, "the rest of the tenant is kept");
    for (pk, sk, body) in &items {
        let lower = body.to_lowercase();
        for needle in ["jane", "doe", "+33612345678", "06 12 34 56 78", "612345678"] {
            assert!(
                !lower.contains(needle),
                "{needle:?} left in {pk} / {sk}: {body}"
            );
        }
        if body.contains(jane.as_str()) {
            assert!(
                sk == &format!("ERASED#{jane}")
                    || (pk.starts_with("C#") && sk == "OUTCOME")
                    // The sync's position: the last record it read, until the next.
                    || sk == "CURSOR#Contact",
                "Jane's id left in {pk} / {sk}"
            );
        }
    }
    // The calls are kept.
    for call in ["call_phone", "call_email", "call_unmatched"] {
        let o = outcome(w, call).await;
        assert!(o.message.unwrap().contains("[erased]"), "{call}");
    }
}

async fn erase_jane_by(body: Value) {
    let w = jane_everywhere().await;
    let (code, answer) = post_erasure(&w, body).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["complete"], true);
    assert_eq!(answer["erased"]["records"], 1);
    // The email (its relation to Jane and the message) and the email Task.
    assert_eq!(answer["erased"]["timelineItems"], 3, "{answer}");
    assert_eq!(answer["erased"]["opportunityRoles"], 3, "{answer}");
    assert_eq!(answer["erased"]["callsRedacted"], 3, "{answer}");
    assert_eq!(answer["salesforce"]["touched"], false);
    assert_eq!(answer["salesforce"]["stillHolds"], "yes");
    assert_eq!(answer["salesforce"]["recordIds"], json!([w.ids["jane"]]));
    assert_eq!(answer["salesforce"]["apiRequests"], 1);
    assert_nothing_of_jane_left(&w).await;
    // The audit trail says an erasure happened, not whom.
    let trail = w.stack.aws.store().audit_trail(&w.tenant).await.unwrap();
    let entry = trail.iter().find(|e| e.action == "person_erased").unwrap();
    assert_eq!(entry.actor, "usr_admin");
    assert!(entry.detail.as_deref().unwrap().contains("HMAC-SHA256 "));
}

#[tokio::test]
async fn an_erasure_by_email_leaves_nothing_of_the_person() {
    erase_jane_by(json!({"email": " Jane@ACME.com "})).await;
}

#[tokio::test]
async fn an_erasure_by_phone_leaves_nothing_of_the_person() {
    erase_jane_by(json!({"phone": "06 12 34 56 78"})).await;
}

#[tokio::test]
async fn an_erasure_by_record_id_leaves_nothing_of_the_person() {
    let w = jane_everywhere().await;
    let (code, answer) = post_erasure(&w, json!({"recordId": w.ids["jane"]})).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["erased"]["records"], 1);
    assert_eq!(answer["erased"]["callsRedacted"], 3, "{answer}");
    assert_eq!(answer["salesforce"]["stillHolds"], "yes");
    assert_nothing_of_jane_left(&w).await;
}

#[tokio::test]
async fn a_later_sync_does_not_bring_the_person_back() {
    let w = jane_everywhere().await;
    let (code, _) = post_erasure(&w, json!({"email": "jane@acme.com"})).await;
    assert_eq!(code, 200);
    // Salesforce still holds Jane, and she changes: the sync reads her again.
    w.stack
        .sf
        .user()
        .update("Contact", &w.ids["jane"], json!({"Title": "CFO"}))
        .await;
    sync(&w.stack, &w.tenant).await;
    let store = w.stack.aws.store();
    assert!(
        store
            .get_records(&w.tenant, &[w.ids["jane"].clone()])
            .await
            .unwrap()
            .is_empty()
    );
    let key = IndexKey {
        kind: IndexKind::Email,
        value: "jane@acme.com".into(),
    };
    assert!(store.query_index(&w.tenant, &key).await.unwrap().is_empty());
    assert_nothing_of_jane_left(&w).await;
}

#[tokio::test]
async fn over_budget_the_answer_says_unknown_and_the_erasure_happens() {
    let w = jane_everywhere().await;
    update_connection(&w.stack.aws.store(), &w.tenant, |c| {
        c.api_usage = Some(ApiUsage {
            used: 99,
            max: 100,
            observed_at: chrono::Utc::now(),
        });
        true
    })
    .await
    .unwrap();
    let (code, answer) = post_erasure(&w, json!({"email": "jane@acme.com"})).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["salesforce"]["stillHolds"], "unknown");
    assert_eq!(answer["salesforce"]["apiRequests"], 0);
    assert_eq!(answer["erased"]["records"], 1);
}

#[tokio::test]
async fn bad_identifiers_and_members_are_refused() {
    let w = world().await;
    for (body, field) in [
        (json!({}), "email"),
        (
            json!({"email": "jane@acme.com", "phone": "0612345678"}),
            "email",
        ),
        (json!({"email": "not an address"}), "email"),
        (json!({"phone": "12"}), "phone"),
        (json!({"recordId": w.ids["acme"]}), "recordId"),
        (json!({"recordId": "003' OR Id != '"}), "recordId"),
    ] {
        let (code, answer) = post_erasure(&w, body.clone()).await;
        assert_eq!(code, 400, "{body}: {answer}");
        assert_eq!(answer["field"], field, "{body}");
    }
    let r = w
        .stack
        .api(api_event(
            "POST",
            "/integrations/salesforce/erasures",
            Some(json!({"email": "jane@acme.com"})),
            Claims::member(w.tenant.as_str()),
        ))
        .await;
    assert_eq!(status(&r), 403);
    let jane = IndexKey {
        kind: IndexKind::Email,
        value: "jane@acme.com".into(),
    };
    let store = w.stack.aws.store();
    assert_eq!(store.query_index(&w.tenant, &jane).await.unwrap().len(), 1);
}

#[tokio::test]
async fn stored_calls_expire_after_the_tenants_retention() {
    let w = world().await;
    let ttl_of = |call_id: &'static str| {
        let w = &w;
        async move {
            let item = w
                .stack
                .aws
                .clients
                .dynamodb
                .get_item()
                .table_name(&w.stack.aws.resources.table)
                .key("pk", AttributeValue::S(format!("C#{}#{call_id}", w.tenant)))
                .key("sk", AttributeValue::S("OUTCOME".into()))
                .send()
                .await
                .unwrap()
                .item
                .unwrap();
            match item.get("ttl") {
                Some(AttributeValue::N(n)) => n.parse::<i64>().unwrap(),
                other => panic!("no ttl: {other:?}"),
            }
        }
    };
    log(&w, &[phone_call(&w.tenant, "call_a", "+33612345678")]).await;
    let started = outcome(&w, "call_a").await.started_at.unwrap();
    assert_eq!(ttl_of("call_a").await, started.timestamp() + 400 * 86_400);

    // The admin keeps calls 45 days: new writes follow.
    let settings = |days: u16| json!({"consumerKey": "ignored", "instanceUrl": "ignored", "retentionDays": days});
    let current = body_json(
        &w.stack
            .api(api_event(
                "GET",
                "/integrations/salesforce/settings",
                None,
                Claims::admin(w.tenant.as_str()),
            ))
            .await,
    );
    let mut body = settings(45);
    body["consumerKey"] = current["consumerKey"].clone();
    body["instanceUrl"] = current["instanceUrl"].clone();
    let put = |body: Value| {
        w.stack.api(api_event(
            "PUT",
            "/integrations/salesforce/settings",
            Some(body),
            Claims::admin(w.tenant.as_str()),
        ))
    };
    let mut too_short = body.clone();
    too_short["retentionDays"] = json!(7);
    let r = put(too_short).await;
    assert_eq!(status(&r), 400);
    assert_eq!(body_json(&r)["field"], "retentionDays");
    let r = put(body).await;
    assert_eq!(status(&r), 200, "{}", body_json(&r));
    assert_eq!(body_json(&r)["retentionDays"], 45);
    log(&w, &[phone_call(&w.tenant, "call_b", "+33688888888")]).await;
    let started = outcome(&w, "call_b").await.started_at.unwrap();
    assert_eq!(ttl_of("call_b").await, started.timestamp() + 45 * 86_400);
}

#[tokio::test]
async fn a_purge_removes_every_item_of_the_tenant_but_its_audit_trail() {
    let w = jane_everywhere().await;
    // Another tenant's items in the same table stay.
    let other = shared::domain::TenantId::parse("acme2").unwrap();
    let store = w.stack.aws.store();
    store
        .save_outcome(
            &other,
            &shared::domain::CallOutcome::new("call_x", CallState::Unmatched, chrono::Utc::now()),
        )
        .await
        .unwrap();
    let before = scan(&w).await.len();
    // One read only: the purge stops part way, and says so.
    let first = shared::erase::purge::Purger::new(&store)
        .reads_per_request(1)
        .purge(&w.tenant)
        .await
        .unwrap();
    assert!(!first.done);
    assert!(first.deleted["calls"] >= 3, "{first:?}");
    assert!(scan(&w).await.len() < before);

    let r = w
        .stack
        .api(api_event(
            "DELETE",
            "/integrations/salesforce/connection?purge=true",
            None,
            Claims::admin(w.tenant.as_str()),
        ))
        .await;
    assert_eq!(status(&r), 200, "{}", body_json(&r));
    let answer = body_json(&r);
    assert_eq!(answer["purge"]["done"], true, "{answer}");
    assert!(
        answer["purge"]["deleted"]["records"].as_u64().unwrap() > 10,
        "{answer}"
    );

    let tenant_prefixes = [
        format!("T#{}", w.tenant),
        format!("R#{}#", w.tenant),
        format!("I#{}#", w.tenant),
        format!("C#{}#", w.tenant),
    ];
    let left: Vec<(String, String)> = scan(&w)
        .await
        .into_iter()
        .map(|(pk, sk, _)| (pk, sk))
        .filter(|(pk, _)| {
            tenant_prefixes
                .iter()
                .any(|p| pk == p || pk.starts_with(p.as_str()))
        })
        .collect();
    assert!(!left.is_empty(), "the audit trail is kept");
    for (pk, sk) in &left {
        assert!(sk.starts_with("AUDIT#"), "{pk} / {sk} left");
    }
    let trail = store.audit_trail(&w.tenant).await.unwrap();
    assert!(trail.iter().any(|e| e.action == "disconnected"));
    assert!(trail.iter().any(|e| e.action == "tenant_purged"));
    assert!(
        w.stack
            .aws
            .secrets()
            .get_credentials(&w.tenant)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store.get_outcome(&other, "call_x").await.unwrap().is_some(),
        "another tenant's call"
    );
    assert!(store.get_connection(&w.tenant).await.unwrap().is_none());

    // Asked again: nothing left to do.
    let r = w
        .stack
        .api(api_event(
            "DELETE",
            "/integrations/salesforce/connection?purge=true",
            None,
            Claims::admin(w.tenant.as_str()),
        ))
        .await;
    assert_eq!(status(&r), 200);
    assert_eq!(body_json(&r)["purge"]["done"], true);
}

#[tokio::test]
async fn a_large_erasure_goes_on_with_its_cursor() {
    use shared::erase::service::Eraser;
    let w = jane_everywhere().await;
    let app = &w.stack.app;
    let session = app.sessions().open(
        &w.tenant,
        tokio::time::Instant::now() + std::time::Duration::from_secs(10),
    );
    // One call per page, and no time for a second page: a request per call.
    let eraser = Eraser::new(&app.store, &session, vec![7; 32], app.config.budget)
        .walking_calls(1, std::time::Duration::ZERO);
    let mut input = shared::erase::EraseInput {
        email: Some("jane@acme.com".into()),
        ..Default::default()
    };
    let mut requests = 0;
    let mut redacted = 0;
    let last = loop {
        requests += 1;
        let report = eraser.erase(&w.tenant, "usr_admin", &input).await.unwrap();
        redacted += report.erased.calls_redacted;
        if report.complete {
            break report;
        }
        assert_eq!(report.erased.records, 0, "records go last");
        assert!(report.salesforce.is_none());
        input.cursor = report.cursor;
    };
    assert!(requests >= 3, "{requests} requests");
    assert_eq!(redacted, 3);
    assert_eq!(last.erased.records, 1);
    assert_nothing_of_jane_left(&w).await;

    // A forged cursor is refused.
    let (code, answer) =
        post_erasure(&w, json!({"email": "jane@acme.com", "cursor": "forged"})).await;
    assert_eq!(code, 400, "{answer}");
    assert_eq!(answer["field"], "cursor");
}

#[tokio::test]
async fn change_data_capture_does_not_bring_the_person_back() {
    use shared::ports::CursorStore as _;
    let w = world_with(e2e::sf::WorldOptions::with_cdc()).await;
    // The second job reads change events (the first re-synced through SOQL).
    sync(&w.stack, &w.tenant).await;
    let (code, answer) = post_erasure(&w, json!({"email": "jane@acme.com"})).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["erased"]["opportunityRoles"], 3, "{answer}");

    // A salesperson adds Jane to an opportunity: a change event carries it.
    let role = w
        .stack
        .sf
        .user()
        .create(
            "OpportunityContactRole",
            json!({"OpportunityId": w.ids["opp_other"], "ContactId": w.ids["jane"], "Role": "Influencer"}),
        )
        .await;
    sync(&w.stack, &w.tenant).await;
    let store = w.stack.aws.store();
    let status = store
        .sync_statuses(&w.tenant)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.object == "OpportunityContactRole")
        .unwrap();
    let note = status.message.as_deref().unwrap_or("");
    assert!(note.starts_with("Change Data Capture: "), "{status:?}");
    assert!(
        store
            .get_records(&w.tenant, &[role])
            .await
            .unwrap()
            .is_empty()
    );
    let roles = IndexKey {
        kind: IndexKind::ContactOpportunity,
        value: w.ids["jane"].clone(),
    };
    assert!(
        store
            .query_index(&w.tenant, &roles)
            .await
            .unwrap()
            .is_empty()
    );
}
