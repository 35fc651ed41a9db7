//! The scheduled sync through its Lambda handler, against the emulator and moto.

use std::time::Duration;

use e2e::faulty::FaultyStore;
use e2e::sf::{ORG, SfWorld, WorldOptions, fields};
use e2e::stack::{
    Claims, Stack, api_event, body_json, build_app_with, lambda_event, sqs_event, sync_job_event,
};
use serde_json::{Value, json};
use sf_emulator::{Fault, SeedRecord};
use shared::app::{App, Store};
use shared::domain::{ConnectionStatus, IndexKey, IndexKind, SyncState, TenantId};
use shared::ports::{
    ConnectionStore, CursorStore, RecordStore, SalesforceSessions, SalesforceWrites,
};
use shared::sync::SyncJob;
use shared::sync::handler::{SyncOptions, handle};

/// One sync-jobs SQS delivery through the handler; the queue's batch response.
async fn run_job<S: Store>(
    app: &App<S, shared::adapters::secrets::SecretsManagerStore>,
    stack: &Stack,
    tenant: &TenantId,
    options: SyncOptions,
) -> Value {
    let jobs = stack.aws.queue(&stack.aws.resources.sync_jobs_queue);
    let syncer = app.syncer(&jobs);
    let event = sync_job_event(tenant, Duration::from_secs(600));
    handle(app, &syncer, event, options)
        .await
        .expect("handler answers")
}

async fn sync(stack: &Stack, tenant: &TenantId) -> Value {
    run_job(&stack.app, stack, tenant, SyncOptions::default()).await
}

fn seed_org(sf: &SfWorld, contacts: usize) {
    let mut records = vec![
        SeedRecord {
            object: "Account".into(),
            reference: Some("acme".into()),
            fields: fields(
                json!({"Name": "Acme", "Website": "https://www.acme.com", "Phone": "+33 1 42 68 53 00"}),
            ),
        },
        SeedRecord {
            object: "Contact".into(),
            reference: Some("jane".into()),
            fields: fields(
                json!({"FirstName": "Jane", "LastName": "Doe", "Email": "Jane@Acme.com", "Phone": "06 12 34 56 78", "MobilePhone": "+33 7 81 23 45 67", "AccountId": "@acme"}),
            ),
        },
        SeedRecord {
            object: "Lead".into(),
            reference: None,
            fields: fields(
                json!({"LastName": "Lead", "Company": "Prospect", "Phone": "+1 (415) 555-0132", "Email": "lead@prospect.io"}),
            ),
        },
        SeedRecord {
            object: "Opportunity".into(),
            reference: Some("opp".into()),
            fields: fields(
                json!({"Name": "Acme renewal", "StageName": "Prospecting", "CloseDate": "2027-01-31", "AccountId": "@acme"}),
            ),
        },
        SeedRecord {
            object: "OpportunityContactRole".into(),
            reference: None,
            fields: fields(
                json!({"OpportunityId": "@opp", "ContactId": "@jane", "IsPrimary": true, "Role": "Decision Maker"}),
            ),
        },
        SeedRecord {
            object: "EmailMessage".into(),
            reference: Some("mail".into()),
            fields: fields(
                json!({"Subject": "Proposal", "Status": "3", "MessageDate": "2026-11-20T09:00:00.000+0000", "RelatedToId": "@opp", "FromAddress": "bob@modjo.ai"}),
            ),
        },
        SeedRecord {
            object: "EmailMessageRelation".into(),
            reference: None,
            fields: fields(
                json!({"EmailMessageId": "@mail", "RelationId": "@jane", "RelationType": "ToAddress"}),
            ),
        },
        SeedRecord {
            object: "Task".into(),
            reference: None,
            fields: fields(
                json!({"Subject": "Email: follow-up", "TaskSubtype": "Email", "WhoId": "@jane", "WhatId": "@opp", "ActivityDate": "2026-11-21", "Status": "Completed"}),
            ),
        },
        SeedRecord {
            object: "Task".into(),
            reference: None,
            fields: fields(
                json!({"Subject": "A call, not an email", "TaskSubtype": "Call", "WhoId": "@jane", "Status": "Completed"}),
            ),
        },
    ];
    for i in 0..contacts {
        records.push(SeedRecord {
            object: "Contact".into(),
            reference: None,
            fields: fields(json!({"LastName": format!("Bulk {i:05}"), "Phone": format!("06 40 {:02} {:02} {:02}", i / 10000 % 100, i / 100 % 100, i % 100), "AccountId": "@acme"})),
        });
    }
    sf.emu.seed(ORG, &records).expect("seed");
}

async fn phone_hits(stack: &Stack, tenant: &TenantId, e164: &str) -> Vec<String> {
    let key = IndexKey {
        kind: IndexKind::Phone,
        value: e164.into(),
    };
    stack
        .aws
        .store()
        .query_index(tenant, &key)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.record_id)
        .collect()
}

#[tokio::test]
async fn first_sync_of_a_seeded_org_over_several_pages() {
    let stack = Stack::start(WorldOptions::default()).await;
    stack.sf.backdate(Duration::from_secs(600));
    seed_org(&stack.sf, 4_500);
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    stack.sf.emu.reset_counters(ORG).unwrap();

    let response = sync(&stack, &tenant).await;
    assert_eq!(response["batchItemFailures"], json!([]));

    // Every object read: Contact in ⌈4501/2000⌉ = 3 pages, every other object in 1.
    assert_eq!(stack.sf.calls("queryMore"), 2);
    assert_eq!(
        stack.sf.calls("query") + stack.sf.calls("queryAll"),
        10,
        "one first page per object"
    );
    assert_eq!(
        stack.sf.total_calls(),
        12,
        "nothing more than the query pages"
    );

    let statuses = stack.aws.store().sync_statuses(&tenant).await.unwrap();
    assert_eq!(statuses.len(), 10);
    assert!(
        statuses.iter().all(|s| s.state == SyncState::UpToDate),
        "{statuses:?}"
    );
    let contact = statuses.iter().find(|s| s.object == "Contact").unwrap();
    assert_eq!(
        (
            contact.records_read,
            contact.records_written,
            contact.api_calls
        ),
        (4_501, 4_501, 3)
    );

    // Indexes: phones in E.164 for every phone field, email, domain, roles, timelines.
    let jane = stack
        .sf
        .emu
        .query(ORG, "SELECT Id FROM Contact WHERE LastName = 'Doe'", false)
        .unwrap()[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        phone_hits(&stack, &tenant, "+33612345678").await,
        vec![jane.clone()]
    );
    assert_eq!(
        phone_hits(&stack, &tenant, "+33781234567").await,
        vec![jane.clone()]
    );
    assert_eq!(
        phone_hits(&stack, &tenant, "+14155550132").await.len(),
        1,
        "lead phone"
    );
    assert_eq!(
        phone_hits(&stack, &tenant, "+33142685300").await.len(),
        1,
        "account phone"
    );
    assert_eq!(
        phone_hits(&stack, &tenant, "+33640000042").await.len(),
        1,
        "bulk contacts indexed"
    );
    let store = stack.aws.store();
    let email = store
        .query_index(
            &tenant,
            &IndexKey {
                kind: IndexKind::Email,
                value: "jane@acme.com".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(email[0].record_id, jane);
    let domain = store
        .query_index(
            &tenant,
            &IndexKey {
                kind: IndexKind::Domain,
                value: "acme.com".into(),
            },
        )
        .await
        .unwrap();
    assert!(domain.iter().any(|e| e.object == "Account"));
    let roles = store
        .query_index(
            &tenant,
            &IndexKey {
                kind: IndexKind::ContactOpportunity,
                value: jane.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].data["IsPrimary"], true);

    // The record with its email timeline, through the read API: the email (via its
    // relation) and the email Task, newest first; the call Task is not an email.
    let record = stack
        .api(api_event(
            "GET",
            &format!("/integrations/salesforce/records/{jane}"),
            None,
            Claims::member(tenant.as_str()),
        ))
        .await;
    let record = body_json(&record);
    assert_eq!(record["fields"]["LastName"], "Doe");
    let subjects: Vec<&str> = record["emailTimeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["fields"]["Subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["Email: follow-up", "Proposal"]);

    // Status through integration-api.
    let view = body_json(
        &stack
            .api(api_event(
                "GET",
                "/integrations/salesforce/sync",
                None,
                Claims::member(tenant.as_str()),
            ))
            .await,
    );
    assert_eq!(view["objects"].as_array().unwrap().len(), 10);
    assert!(view["lastSyncAt"].is_string());
    assert!(
        stack
            .aws
            .store()
            .get_connection(&tenant)
            .await
            .unwrap()
            .unwrap()
            .api_usage
            .is_some()
    );

    // Nothing changed: the next sync writes nothing, one call per object (only
    // the admin user, created after the backdated seed, is in the look-back).
    stack.sf.emu.reset_counters(ORG).unwrap();
    sync(&stack, &tenant).await;
    assert_eq!(stack.sf.total_calls(), 10);
    let statuses = stack.aws.store().sync_statuses(&tenant).await.unwrap();
    assert!(
        statuses
            .iter()
            .all(|s| s.records_written == 0 && s.records_read <= 1),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn incremental_sync_follows_edits_deletes_and_phone_changes() {
    let stack = Stack::start(WorldOptions::default()).await;
    stack.sf.backdate(Duration::from_secs(600));
    seed_org(&stack.sf, 10);
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    sync(&stack, &tenant).await;
    let jane = stack
        .sf
        .emu
        .query(ORG, "SELECT Id FROM Contact WHERE LastName = 'Doe'", false)
        .unwrap()[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let bulk = stack
        .sf
        .emu
        .query(
            ORG,
            "SELECT Id FROM Contact WHERE LastName = 'Bulk 00003'",
            false,
        )
        .unwrap()[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        phone_hits(&stack, &tenant, "+33640000003").await,
        vec![bulk.clone()]
    );

    // Edits in Salesforce, a second later.
    stack.sf.emu.advance(Duration::from_secs(2));
    let session = stack.app.sessions().open(
        &tenant,
        tokio::time::Instant::now() + Duration::from_secs(30),
    );
    session.update("Contact", &jane, &fields(json!({"Phone": "+33 6 99 99 99 99", "MobilePhone": null, "Email": "jane.doe@acme.com"}))).await.unwrap();
    session.delete("Contact", &bulk).await.unwrap();
    let role = stack
        .sf
        .emu
        .query(ORG, "SELECT Id FROM OpportunityContactRole", false)
        .unwrap()[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    session
        .delete("OpportunityContactRole", &role)
        .await
        .unwrap();

    stack.sf.emu.reset_counters(ORG).unwrap();
    sync(&stack, &tenant).await;
    // Old entries gone, new ones there.
    assert!(phone_hits(&stack, &tenant, "+33612345678").await.is_empty());
    assert!(phone_hits(&stack, &tenant, "+33781234567").await.is_empty());
    assert_eq!(
        phone_hits(&stack, &tenant, "+33699999999").await,
        vec![jane.clone()]
    );
    let store = stack.aws.store();
    assert!(
        store
            .query_index(
                &tenant,
                &IndexKey {
                    kind: IndexKind::Email,
                    value: "jane@acme.com".into()
                }
            )
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .query_index(
                &tenant,
                &IndexKey {
                    kind: IndexKind::Email,
                    value: "jane.doe@acme.com".into()
                }
            )
            .await
            .unwrap()
            .len(),
        1
    );
    // The deleted contact and role are gone with their entries.
    assert!(
        store
            .get_records(&tenant, std::slice::from_ref(&bulk))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(phone_hits(&stack, &tenant, "+33640000003").await.is_empty());
    assert!(
        store
            .query_index(
                &tenant,
                &IndexKey {
                    kind: IndexKind::ContactOpportunity,
                    value: jane.clone()
                }
            )
            .await
            .unwrap()
            .is_empty()
    );
    let statuses = store.sync_statuses(&tenant).await.unwrap();
    let contact = statuses.iter().find(|s| s.object == "Contact").unwrap();
    assert_eq!(
        (
            contact.records_read,
            contact.records_written,
            contact.records_deleted
        ),
        (2, 1, 1)
    );
    // Incremental: one query per object, deletes read through queryAll.
    assert_eq!(stack.sf.total_calls(), 10);
}

#[tokio::test]
async fn an_edit_in_the_cursors_own_second_is_not_lost() {
    let stack = Stack::start(WorldOptions::default()).await;
    // SystemModstamp has second precision: an edit within the second the cursor
    // points at sorts before the cursor.
    stack.sf.emu.freeze_clock(true);
    seed_org(&stack.sf, 3);
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    sync(&stack, &tenant).await;
    let cursor = stack
        .aws
        .store()
        .get_cursor(&tenant, "Contact")
        .await
        .unwrap()
        .unwrap();
    let session = stack.app.sessions().open(
        &tenant,
        tokio::time::Instant::now() + Duration::from_secs(30),
    );
    session
        .update(
            "Contact",
            &cursor.last_id,
            &fields(json!({"Email": "same.second@acme.com"})),
        )
        .await
        .unwrap();

    sync(&stack, &tenant).await;
    let stored = stack
        .aws
        .store()
        .get_records(&tenant, std::slice::from_ref(&cursor.last_id))
        .await
        .unwrap();
    assert_eq!(stored[0].fields["Email"], "same.second@acme.com");
    let statuses = stack.aws.store().sync_statuses(&tenant).await.unwrap();
    let contact = statuses.iter().find(|s| s.object == "Contact").unwrap();
    // The look-back read the second again; only the edited contact was written.
    assert_eq!((contact.records_read, contact.records_written), (4, 1));
}

#[tokio::test]
async fn ties_on_one_timestamp_across_page_and_job_boundaries() {
    let stack = Stack::start(WorldOptions::default()).await;
    stack.sf.emu.freeze_clock(true);
    stack.sf.backdate(Duration::from_secs(600));
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    // 1,800 contacts at one second, then 500 sharing the next: the first page
    // (2,000) ends in the middle of the 500.
    let seed = |range: std::ops::Range<usize>| {
        let records: Vec<SeedRecord> = range
            .map(|i| SeedRecord {
                object: "Contact".into(),
                reference: None,
                fields: fields(json!({"LastName": format!("T{i:05}")})),
            })
            .collect();
        stack.sf.emu.seed(ORG, &records).unwrap();
    };
    seed(0..1_800);
    stack.sf.emu.advance(Duration::from_secs(1));
    seed(1_800..2_300);
    // The job stops after its first page (the deadline is already near) and hands over.
    let hurried = SyncOptions {
        stop_before_deadline: Duration::from_secs(600),
        requests_end_before_deadline: Duration::from_secs(1),
    };
    run_job(&stack.app, &stack, &tenant, hurried).await;
    let queued = stack.aws.drain(&stack.aws.resources.sync_jobs_queue).await;
    assert_eq!(queued.len(), 1, "a continuation was queued");
    assert_eq!(SyncJob::parse(&queued[0]).unwrap().reason, "continuation");
    let cursor = stack.aws.store().get_cursor(&tenant, "User").await.unwrap();
    assert!(cursor.is_some());
    // Let the continuation run to the end, however many hops it takes.
    for _ in 0..20 {
        if stack
            .aws
            .store()
            .sync_statuses(&tenant)
            .await
            .unwrap()
            .iter()
            .filter(|s| s.state == SyncState::UpToDate)
            .count()
            == 9
        {
            break;
        }
        run_job(&stack.app, &stack, &tenant, hurried).await;
    }
    let statuses = stack.aws.store().sync_statuses(&tenant).await.unwrap();
    let contact = statuses.iter().find(|s| s.object == "Contact").unwrap();
    assert_eq!(
        contact.total_records_read, 2_300,
        "every record read exactly once: {contact:?}"
    );
    let ids: Vec<String> = stack
        .sf
        .emu
        .query(ORG, "SELECT Id FROM Contact", false)
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    let stored = stack.aws.store().get_records(&tenant, &ids).await.unwrap();
    assert_eq!(stored.len(), 2_300);
    // And a further run never loops on the tie.
    stack.sf.emu.reset_counters(ORG).unwrap();
    sync(&stack, &tenant).await;
    assert_eq!(stack.sf.total_calls(), 10);
}

#[tokio::test]
async fn crash_between_page_write_and_cursor_save_loses_nothing_and_duplicates_nothing() {
    let stack = Stack::start(WorldOptions::default()).await;
    seed_org(&stack.sf, 4_000);
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    let faulty = FaultyStore::new(stack.aws.store());
    let app = build_app_with(
        &stack.aws,
        &stack.sf,
        faulty.clone(),
        Duration::from_secs(600),
        e2e::stack::CALLBACK_URL,
    );

    // User and Account save their cursors; Contact's first page is written, then the
    // process dies before its cursor is saved.
    faulty.crash_on_cursor_write(3);
    let failed = run_job(&app, &stack, &tenant, SyncOptions::default()).await;
    assert_eq!(
        failed["batchItemFailures"].as_array().unwrap().len(),
        1,
        "retryable: SQS delivers the job again"
    );
    assert!(
        stack
            .aws
            .store()
            .get_cursor(&tenant, "Contact")
            .await
            .unwrap()
            .is_none(),
        "the cursor did not move past the unsaved page"
    );
    assert_eq!(
        phone_hits(&stack, &tenant, "+33640000000").await.len(),
        1,
        "the page itself was written"
    );

    // SQS redelivers; the job resumes from the last saved cursor and rewrites the page.
    let ok = run_job(&app, &stack, &tenant, SyncOptions::default()).await;
    assert_eq!(ok["batchItemFailures"], json!([]));
    let ids: Vec<String> = stack
        .sf
        .emu
        .query(ORG, "SELECT Id FROM Contact", false)
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        stack
            .aws
            .store()
            .get_records(&tenant, &ids)
            .await
            .unwrap()
            .len(),
        4_001
    );
    // Each phone entry exactly once, on both sides of the crash.
    for e164 in [
        "+33640000000",
        "+33640001999",
        "+33640002000",
        "+33640003999",
    ] {
        assert_eq!(phone_hits(&stack, &tenant, e164).await.len(), 1, "{e164}");
    }
    let statuses = stack.aws.store().sync_statuses(&tenant).await.unwrap();
    assert!(
        statuses.iter().all(|s| s.state == SyncState::UpToDate),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn two_concurrent_jobs_for_one_tenant_only_one_runs() {
    let stack = Stack::start(WorldOptions::default()).await;
    seed_org(&stack.sf, 100);
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    stack
        .sf
        .emu
        .inject(ORG, Fault::Latency { ms: 150 })
        .unwrap();
    stack.sf.emu.reset_counters(ORG).unwrap();
    let jobs = stack.aws.queue(&stack.aws.resources.sync_jobs_queue);
    let syncer = stack.app.syncer(&jobs);
    let a = handle(
        &stack.app,
        &syncer,
        sync_job_event(&tenant, Duration::from_secs(600)),
        SyncOptions::default(),
    );
    let b = handle(
        &stack.app,
        &syncer,
        sync_job_event(&tenant, Duration::from_secs(600)),
        SyncOptions::default(),
    );
    let (ra, rb) = tokio::join!(a, b);
    assert_eq!(ra.unwrap()["batchItemFailures"], json!([]));
    assert_eq!(
        rb.unwrap()["batchItemFailures"],
        json!([]),
        "the second job is acknowledged, not retried"
    );
    assert_eq!(stack.sf.total_calls(), 10, "one job's worth of API calls");
}

#[tokio::test]
async fn fan_out_queues_connected_tenants_and_skips_the_others() {
    let stack = Stack::start(WorldOptions::default()).await;
    let connected = stack.sf.connect_tenant(&stack.aws).await;
    let waiting = stack.sf.connect_tenant(&stack.aws).await;
    let mut c = stack
        .aws
        .store()
        .get_connection(&waiting)
        .await
        .unwrap()
        .unwrap();
    c.status = ConnectionStatus::NeedsReauth;
    stack.aws.store().save_connection(&c).await.unwrap();

    let schedule: Value = serde_json::from_str(
        &std::fs::read_to_string(e2e::repo_root().join("events/scheduled-sync/schedule.json"))
            .unwrap(),
    )
    .unwrap();
    let jobs = stack.aws.queue(&stack.aws.resources.sync_jobs_queue);
    let syncer = stack.app.syncer(&jobs);
    let answer = handle(
        &stack.app,
        &syncer,
        lambda_event(schedule, Duration::from_secs(60)),
        SyncOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(answer, json!({"queued": 1, "skipped": 1}));
    let queued = stack
        .aws
        .drain_grouped(&stack.aws.resources.sync_jobs_queue)
        .await;
    assert_eq!(queued.len(), 1);
    assert_eq!(SyncJob::parse(&queued[0].1).unwrap().tenant_id, connected);
    // The job is in its tenant's message group (fair queue).
    assert_eq!(queued[0].0.as_deref(), Some(connected.as_str()));

    // A job for the tenant that must reconnect does nothing and costs nothing.
    stack.sf.emu.reset_counters(ORG).unwrap();
    let answer = sync(&stack, &waiting).await;
    assert_eq!(answer["batchItemFailures"], json!([]));
    assert_eq!(stack.sf.total_calls(), 0);
    // A malformed job is refused without a retry loop.
    let event = lambda_event(
        sqs_event(
            "sync-jobs",
            &["{\"version\":1}".to_string(), "not json".to_string()],
        ),
        Duration::from_secs(60),
    );
    let answer = handle(&stack.app, &syncer, event, SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]));
}

#[tokio::test]
async fn sync_pauses_at_the_api_budget_and_says_so() {
    let stack = Stack::start(WorldOptions {
        api_daily_limit: Some(5_000),
        ..Default::default()
    })
    .await;
    seed_org(&stack.sf, 10);
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    stack.sf.emu.reset_counters(ORG).unwrap();
    stack
        .sf
        .emu
        .inject(ORG, Fault::SetApiUsage { used: 4_100 })
        .unwrap();

    sync(&stack, &tenant).await;
    // One call told us the usage (82 %); the sync paused before the next object.
    assert_eq!(stack.sf.calls("query"), 1);
    let view = body_json(
        &stack
            .api(api_event(
                "GET",
                "/integrations/salesforce/sync",
                None,
                Claims::member(tenant.as_str()),
            ))
            .await,
    );
    let paused: Vec<&Value> = view["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["state"] == "paused")
        .collect();
    assert_eq!(paused.len(), 1);
    assert!(
        paused[0]["message"]
            .as_str()
            .unwrap()
            .contains("82% of its daily API allocation"),
        "{view}"
    );

    // The next job knows the usage already: no call at all.
    let before = stack.sf.total_calls();
    sync(&stack, &tenant).await;
    assert_eq!(stack.sf.total_calls(), before);
    // Later (the stored reading has aged), under the threshold again: it resumes.
    stack
        .sf
        .emu
        .inject(ORG, Fault::SetApiUsage { used: 100 })
        .unwrap();
    let mut c = stack
        .aws
        .store()
        .get_connection(&tenant)
        .await
        .unwrap()
        .unwrap();
    c.api_usage.as_mut().unwrap().observed_at -= chrono::Duration::hours(2);
    stack.aws.store().save_connection(&c).await.unwrap();
    // A new container: its client has not seen the old usage.
    let fresh = build_app_with(
        &stack.aws,
        &stack.sf,
        stack.aws.store(),
        Duration::from_secs(600),
        e2e::stack::CALLBACK_URL,
    );
    run_job(&fresh, &stack, &tenant, SyncOptions::default()).await;
    let statuses = stack.aws.store().sync_statuses(&tenant).await.unwrap();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| s.state == SyncState::UpToDate)
            .count(),
        10
    );
}

#[tokio::test]
async fn invalid_sync_jobs_go_to_the_dead_letter_queue_with_their_reason() {
    let stack = Stack::start(WorldOptions::default()).await;
    let jobs = stack.aws.queue(&stack.aws.resources.sync_jobs_queue);
    let dlq_url =
        stack.aws.resources.dead_letter_queues[&stack.aws.resources.sync_jobs_queue].clone();
    let dlq = stack.aws.queue(&dlq_url);
    let syncer = stack.app.syncer(&jobs).with_dead_letters(&dlq);
    let bodies = vec!["{not a job".to_string(), json!({"version": 1}).to_string()];
    let event = lambda_event(sqs_event("sync-jobs", &bodies), Duration::from_secs(60));
    let answer = handle(&stack.app, &syncer, event, SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]));
    let dead = stack.aws.drain_with_reasons(&dlq_url).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    for (body, reason) in &dead {
        assert!(bodies.contains(body));
        assert!(!reason.is_empty(), "{body}: the reason travels with it");
    }
    // A dead-letter queue that refuses the message: SQS keeps the job.
    let gone = stack.aws.queue(&format!("{dlq_url}-missing"));
    let syncer = stack.app.syncer(&jobs).with_dead_letters(&gone);
    let event = lambda_event(
        sqs_event("sync-jobs", &bodies[..1]),
        Duration::from_secs(60),
    );
    let answer = handle(&stack.app, &syncer, event, SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(answer["batchItemFailures"].as_array().unwrap().len(), 1);
}
