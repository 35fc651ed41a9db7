//! Opportunity and OpportunityContactRole through Change Data Capture: the
//! scheduled sync's handler against the emulator's Pub/Sub API and moto.

use std::sync::Arc;
use std::time::Duration;

use e2e::faulty::{After, FaultyStore};
use e2e::sf::{ORG, OrgUser, SfWorld, WorldOptions, fields};
use e2e::stack::{CALLBACK_URL, Stack, build_app_with, sync_job_event};
use serde_json::{Value, json};
use sf_emulator::{EventType, Fault, SeedRecord};
use shared::adapters::salesforce::pubsub::PubSubClient;
use shared::adapters::secrets::SecretsManagerStore;
use shared::app::{App, Store};
use shared::domain::{IndexKey, IndexKind, SyncState, SyncStatus, TenantId};
use shared::ports::{CursorStore, PubSubApi, PubSubEvents, RecordStore};
use shared::salesforce::cdc::EventSchema;
use shared::salesforce::pubsub::{PubSubAuth, ReplayPreset, fetch};
use shared::sync::SyncJob;
use shared::sync::handler::{SyncOptions, handle};

const OPPORTUNITY_TOPIC: &str = "/data/OpportunityChangeEvent";

async fn run_job<S: Store>(
    app: &App<S, SecretsManagerStore>,
    stack: &Stack,
    tenant: &TenantId,
) -> Value {
    let jobs = stack.aws.queue(&stack.aws.resources.sync_jobs_queue);
    let syncer = app.syncer(&jobs);
    assert!(syncer.cdc.is_some(), "the Pub/Sub API is configured");
    let event = sync_job_event(tenant, Duration::from_secs(600));
    let response = handle(app, &syncer, event, SyncOptions::default())
        .await
        .expect("handler answers");
    assert_eq!(
        response["batchItemFailures"],
        json!([]),
        "the job succeeded"
    );
    response
}

async fn sync(stack: &Stack, tenant: &TenantId) {
    run_job(&stack.app, stack, tenant).await;
}

/// An account, two contacts, an opportunity with a contact role for Jane.
fn seed(sf: &SfWorld) -> Seeded {
    let ids = sf
        .emu
        .seed(
            ORG,
            &[
                record("Account", Some("acme"), json!({"Name": "Acme", "Website": "https://acme.com"})),
                record("Contact", Some("jane"), json!({"FirstName": "Jane", "LastName": "Doe", "Email": "jane@acme.com", "AccountId": "@acme"})),
                record("Contact", Some("john"), json!({"FirstName": "John", "LastName": "Roe", "Email": "john@acme.com", "AccountId": "@acme"})),
                record(
                    "Opportunity",
                    Some("opp"),
                    json!({"Name": "Acme renewal", "StageName": "Prospecting", "CloseDate": "2027-01-31", "Amount": 5000, "AccountId": "@acme"}),
                ),
                record("OpportunityContactRole", None, json!({"OpportunityId": "@opp", "ContactId": "@jane", "Role": "Decision Maker"})),
            ],
        )
        .expect("seed");
    Seeded {
        account: ids[0].clone(),
        jane: ids[1].clone(),
        john: ids[2].clone(),
        opportunity: ids[3].clone(),
        role: ids[4].clone(),
    }
}

struct Seeded {
    account: String,
    jane: String,
    john: String,
    opportunity: String,
    role: String,
}

fn record(object: &str, reference: Option<&str>, fields_: Value) -> SeedRecord {
    SeedRecord {
        object: object.into(),
        reference: reference.map(str::to_string),
        fields: fields(fields_),
    }
}

async fn stored(
    stack: &Stack,
    tenant: &TenantId,
    id: &str,
) -> Option<serde_json::Map<String, Value>> {
    let records = stack
        .aws
        .store()
        .get_records(tenant, &[id.to_string()])
        .await
        .unwrap();
    records.into_iter().next().map(|r| r.fields)
}

/// One field of a stored record (which must be stored).
async fn stored_field(stack: &Stack, tenant: &TenantId, id: &str, field: &str) -> Value {
    stored(stack, tenant, id)
        .await
        .unwrap_or_else(|| panic!("{id} is stored"))
        .remove(field)
        .unwrap_or(Value::Null)
}

/// A salesperson edits a record in Salesforce (over REST, so CDC sees it).
async fn edit(stack: &Stack, object: &str, id: &str, fields: Value) {
    stack.sf.user().update(object, id, fields).await;
}

/// An edit the change event bus does not carry (CDC is off for its moment).
async fn edit_unseen_by_the_bus(stack: &Stack, object: &str, id: &str, fields: Value) {
    stack.sf.emu.set_cdc(ORG, object, false).unwrap();
    edit(stack, object, id, fields).await;
    stack.sf.emu.set_cdc(ORG, object, true).unwrap();
}

async fn opportunities_of(stack: &Stack, tenant: &TenantId, contact: &str) -> Vec<String> {
    let key = IndexKey {
        kind: IndexKind::ContactOpportunity,
        value: contact.to_string(),
    };
    let mut ids: Vec<String> = stack
        .aws
        .store()
        .query_index(tenant, &key)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| e.data["OpportunityId"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

async fn status(stack: &Stack, tenant: &TenantId, object: &str) -> SyncStatus {
    stack
        .aws
        .store()
        .sync_statuses(tenant)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.object == object)
        .unwrap_or_else(|| panic!("a status for {object}"))
}

/// The object's last run read change events.
fn assert_fed_by_cdc(status: &SyncStatus) {
    let note = status.message.as_deref().unwrap_or("");
    assert!(note.starts_with("Change Data Capture: "), "{status:?}");
}

/// The object's last run re-synced it through its SOQL cursor.
fn assert_resynced(status: &SyncStatus) {
    assert_fed_by_cdc(status);
    assert!(
        status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("after a re-sync through the SOQL cursor")),
        "{status:?}"
    );
}

#[tokio::test]
async fn creates_partial_updates_nulls_and_deletes_arrive_without_a_rest_call() {
    let stack = Stack::start(WorldOptions::with_cdc()).await;
    let org = seed(&stack.sf);
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    sync(&stack, &tenant).await;
    // The first subscription starts with a SOQL re-sync.
    let first = status(&stack, &tenant, "Opportunity").await;
    assert_eq!(first.records_written, 1);
    assert_resynced(&first);
    assert_eq!(
        opportunities_of(&stack, &tenant, &org.jane).await,
        std::slice::from_ref(&org.opportunity)
    );

    // A salesperson works in Salesforce.
    let user = stack.sf.user();
    user.update(
        "Opportunity",
        &org.opportunity,
        json!({"StageName": "Negotiation/Review", "Amount": null}),
    )
    .await;
    let second = user
        .create(
            "Opportunity",
            json!({"Name": "Acme expansion", "StageName": "Qualification", "CloseDate": "2027-03-31", "Amount": 12000, "AccountId": org.account}),
        )
        .await;
    let johns_role = user
        .create(
            "OpportunityContactRole",
            json!({"OpportunityId": second, "ContactId": org.john, "Role": "Economic Buyer"}),
        )
        .await;
    user.delete("OpportunityContactRole", &org.role).await;

    stack.sf.emu.reset_counters(ORG).unwrap();
    sync(&stack, &tenant).await;

    // Only the changed fields moved; the nulled one is null; the rest is kept.
    let opp = stored(&stack, &tenant, &org.opportunity)
        .await
        .expect("still stored");
    assert_eq!(opp["StageName"], "Negotiation/Review");
    assert_eq!(opp["Amount"], Value::Null);
    assert_eq!(opp["Name"], "Acme renewal");
    assert_eq!(opp["CloseDate"], "2027-01-31");
    // The new opportunity, whole.
    let created = stored(&stack, &tenant, &second).await.expect("created");
    assert_eq!(created["Name"], "Acme expansion");
    assert_eq!(created["Amount"].as_f64(), Some(12000.0));
    assert_eq!(created["AccountId"], json!(org.account));
    // Contact → opportunity follows the roles: Jane's went, John's came.
    assert!(
        opportunities_of(&stack, &tenant, &org.jane)
            .await
            .is_empty()
    );
    assert_eq!(
        opportunities_of(&stack, &tenant, &org.john).await,
        std::slice::from_ref(&second)
    );
    assert!(stored(&stack, &tenant, &org.role).await.is_none());
    assert!(stored(&stack, &tenant, &johns_role).await.is_some());

    // No REST call for either object: the other eight each cost their one query.
    let opp_status = status(&stack, &tenant, "Opportunity").await;
    let role_status = status(&stack, &tenant, "OpportunityContactRole").await;
    assert_eq!((opp_status.api_calls, role_status.api_calls), (0, 0));
    assert_eq!(
        (opp_status.records_written, opp_status.records_deleted),
        (2, 0)
    );
    assert_eq!(
        (role_status.records_written, role_status.records_deleted),
        (1, 1)
    );
    assert_eq!(stack.sf.total_calls(), 8);

    // A deleted opportunity leaves the store.
    user.delete("Opportunity", &second).await;
    sync(&stack, &tenant).await;
    assert!(stored(&stack, &tenant, &second).await.is_none());
    assert_eq!(
        status(&stack, &tenant, "Opportunity").await.records_deleted,
        1
    );
}

#[tokio::test]
async fn undelete_and_gap_events_read_those_records_again() {
    let stack = Stack::start(WorldOptions::with_cdc()).await;
    let org = seed(&stack.sf);
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    sync(&stack, &tenant).await;
    let user = stack.sf.user();

    user.delete("Opportunity", &org.opportunity).await;
    sync(&stack, &tenant).await;
    assert!(stored(&stack, &tenant, &org.opportunity).await.is_none());

    // UNDELETE: the event is re-read whole by id (one queryAll).
    stack.sf.emu.undelete(ORG, &[&org.opportunity]).unwrap();
    sync(&stack, &tenant).await;
    let back = stored(&stack, &tenant, &org.opportunity)
        .await
        .expect("undeleted");
    assert_eq!(back["Name"], "Acme renewal");
    assert_eq!(status(&stack, &tenant, "Opportunity").await.api_calls, 1);

    // A change the bus could not carry: GAP_UPDATE names the record, which is read again.
    edit_unseen_by_the_bus(
        &stack,
        "Opportunity",
        &org.opportunity,
        json!({"Name": "Renamed during a gap"}),
    )
    .await;
    stack
        .sf
        .emu
        .inject_gap(ORG, EventType::GapUpdate, &[&org.opportunity])
        .unwrap();
    sync(&stack, &tenant).await;
    assert_eq!(
        stored_field(&stack, &tenant, &org.opportunity, "Name").await,
        "Renamed during a gap"
    );
    let after_gap = status(&stack, &tenant, "Opportunity").await;
    assert_eq!((after_gap.api_calls, after_gap.records_written), (1, 1));
}

#[tokio::test]
async fn gap_overflow_resyncs_the_object_through_its_cursor() {
    let stack = Stack::start(WorldOptions::with_cdc()).await;
    let org = seed(&stack.sf);
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    sync(&stack, &tenant).await;
    edit_unseen_by_the_bus(
        &stack,
        "OpportunityContactRole",
        &org.role,
        json!({"ContactId": org.john}),
    )
    .await;
    stack
        .sf
        .emu
        .inject_gap_overflow(ORG, "OpportunityContactRole")
        .unwrap();

    sync(&stack, &tenant).await;
    assert!(
        opportunities_of(&stack, &tenant, &org.jane)
            .await
            .is_empty()
    );
    assert_eq!(
        opportunities_of(&stack, &tenant, &org.john).await,
        std::slice::from_ref(&org.opportunity)
    );
    let role = status(&stack, &tenant, "OpportunityContactRole").await;
    assert_resynced(&role);
    assert_eq!((role.api_calls, role.records_written), (1, 1));
}

#[tokio::test]
async fn a_batch_that_overflowed_is_not_replayed_over_its_resync() {
    let stack = Stack::start(WorldOptions::with_cdc()).await;
    let org = seed(&stack.sf);
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    sync(&stack, &tenant).await;
    // Two edits in the same instant: the bus carries the first, then overflows.
    let user = stack.sf.user();
    stack.sf.emu.freeze_clock(true);
    user.update(
        "Opportunity",
        &org.opportunity,
        json!({"Name": "First edit"}),
    )
    .await;
    edit_unseen_by_the_bus(
        &stack,
        "Opportunity",
        &org.opportunity,
        json!({"Name": "Second edit"}),
    )
    .await;
    stack
        .sf
        .emu
        .inject_gap_overflow(ORG, "Opportunity")
        .unwrap();
    stack.sf.emu.freeze_clock(false);

    sync(&stack, &tenant).await;
    // The re-sync read the second edit; the batch's older event must not undo it.
    assert_eq!(
        stored_field(&stack, &tenant, &org.opportunity, "Name").await,
        "Second edit"
    );
    assert_resynced(&status(&stack, &tenant, "Opportunity").await);
}

#[tokio::test]
async fn a_quiet_orgs_first_subscription_keeps_the_position_its_keepalive_gives() {
    let stack = Stack::start(WorldOptions::with_cdc()).await;
    let org = seed(&stack.sf);
    // Salesforce answers an idle subscription only with a keepalive (within 270 s),
    // later than the sync's short wait before it re-syncs and its 3 s of idle.
    stack.sf.emu.set_pubsub_keepalive(Duration::from_secs(8));
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    sync(&stack, &tenant).await;
    assert_resynced(&status(&stack, &tenant, "Opportunity").await);
    assert!(
        stack
            .aws
            .store()
            .get_replay_id(&tenant, OPPORTUNITY_TOPIC)
            .await
            .unwrap()
            .is_some(),
        "the keepalive's replay id is stored"
    );

    // So the next job reads the change from the feed, without a re-sync.
    edit(
        &stack,
        "Opportunity",
        &org.opportunity,
        json!({"Name": "Changed between two jobs"}),
    )
    .await;
    sync(&stack, &tenant).await;
    assert_eq!(
        stored_field(&stack, &tenant, &org.opportunity, "Name").await,
        "Changed between two jobs"
    );
    let opp = status(&stack, &tenant, "Opportunity").await;
    assert_fed_by_cdc(&opp);
    assert!(
        !opp.message.as_deref().unwrap_or("").contains("re-sync"),
        "{opp:?}"
    );
    assert_eq!(opp.api_calls, 0);
}

#[tokio::test]
async fn a_first_answer_later_than_the_job_leaves_the_rest_to_a_continuation() {
    let stack = Stack::start(WorldOptions::with_cdc()).await;
    let org = seed(&stack.sf);
    stack.sf.emu.set_pubsub_keepalive(Duration::from_secs(600));
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    let jobs = stack.aws.queue(&stack.aws.resources.sync_jobs_queue);
    let syncer = stack.app.syncer(&jobs);
    // The job may run for 8 s: the subscription's first answer would come later.
    let event = sync_job_event(&tenant, Duration::from_secs(30));
    let hurried = SyncOptions {
        stop_before_deadline: Duration::from_secs(22),
        requests_end_before_deadline: Duration::from_secs(5),
    };
    let response = handle(&stack.app, &syncer, event, hurried)
        .await
        .expect("handler answers");
    assert_eq!(response["batchItemFailures"], json!([]));

    // The re-sync ran; no position is stored, and a continuation carries on.
    let opp = status(&stack, &tenant, "Opportunity").await;
    assert_eq!(opp.state, SyncState::Continuing, "{opp:?}");
    assert!(
        stored(&stack, &tenant, &org.opportunity).await.is_some(),
        "the re-sync's records are stored"
    );
    assert_eq!(
        stack
            .aws
            .store()
            .get_replay_id(&tenant, OPPORTUNITY_TOPIC)
            .await
            .unwrap(),
        None
    );
    let queued = stack.aws.drain(&stack.aws.resources.sync_jobs_queue).await;
    assert_eq!(queued.len(), 1, "a continuation was queued");
    assert_eq!(SyncJob::parse(&queued[0]).unwrap().reason, "continuation");
}

#[tokio::test]
async fn one_event_for_several_records_updates_each_of_them() {
    let stack = Stack::start(WorldOptions::with_cdc()).await;
    seed(&stack.sf);
    let more = stack
        .sf
        .emu
        .seed(
            ORG,
            &(0..3)
                .map(|i| record("Opportunity", None, json!({"Name": format!("Deal {i}"), "StageName": "Prospecting", "CloseDate": "2027-02-28"})))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    sync(&stack, &tenant).await;

    stack
        .sf
        .user()
        .update_all("Opportunity", &more, json!({"StageName": "Closed Won"}))
        .await;
    let last = stack
        .sf
        .emu
        .cdc_events(ORG)
        .unwrap()
        .pop()
        .expect("an event");
    assert_eq!(
        last.record_ids.len(),
        3,
        "one event names the three records"
    );

    sync(&stack, &tenant).await;
    for id in &more {
        let opp = stored(&stack, &tenant, id).await.unwrap();
        assert_eq!(opp["StageName"], "Closed Won");
        assert!(opp["Name"].as_str().unwrap().starts_with("Deal "));
    }
    assert_eq!(
        status(&stack, &tenant, "Opportunity").await.records_written,
        3
    );
}

#[tokio::test]
async fn an_expired_replay_id_is_recovered_with_no_lost_change() {
    let stack = Stack::start(WorldOptions::with_cdc()).await;
    let org = seed(&stack.sf);
    let other = stack
        .sf
        .emu
        .seed(
            ORG,
            &[record(
                "Opportunity",
                None,
                json!({"Name": "Other", "StageName": "Prospecting", "CloseDate": "2027-02-28"}),
            )],
        )
        .unwrap()
        .remove(0);
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    sync(&stack, &tenant).await;
    let noted = stack
        .aws
        .store()
        .get_replay_id(&tenant, OPPORTUNITY_TOPIC)
        .await
        .unwrap()
        .expect("replay id stored");

    // A change, then the sync stops for longer than the 72-hour retention.
    edit(
        &stack,
        "Opportunity",
        &org.opportunity,
        json!({"Name": "Changed before the outage"}),
    )
    .await;
    stack.sf.emu.advance(Duration::from_secs(73 * 3600));
    edit(
        &stack,
        "Opportunity",
        &other,
        json!({"StageName": "Closed Lost"}),
    )
    .await;

    sync(&stack, &tenant).await;
    assert_eq!(
        stored_field(&stack, &tenant, &org.opportunity, "Name").await,
        "Changed before the outage"
    );
    assert_eq!(
        stored_field(&stack, &tenant, &other, "StageName").await,
        "Closed Lost"
    );
    let opp = status(&stack, &tenant, "Opportunity").await;
    assert_resynced(&opp);
    let renewed = stack
        .aws
        .store()
        .get_replay_id(&tenant, OPPORTUNITY_TOPIC)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(renewed, noted, "subscribed again from a fresh position");

    // And the feed goes on from there.
    edit(
        &stack,
        "Opportunity",
        &other,
        json!({"Name": "After recovery"}),
    )
    .await;
    sync(&stack, &tenant).await;
    assert_eq!(
        stored_field(&stack, &tenant, &other, "Name").await,
        "After recovery"
    );
    assert_eq!(status(&stack, &tenant, "Opportunity").await.api_calls, 0);
}

#[tokio::test]
async fn changes_made_during_the_resync_are_not_lost() {
    edit_during_the_resync(None).await;
}

#[tokio::test]
async fn changes_made_during_the_resync_are_not_lost_when_the_first_answer_is_late() {
    // The re-sync starts before the subscription's first answer (a keepalive
    // after 8 s), and runs while the job waits for it.
    edit_during_the_resync(Some(Duration::from_secs(8))).await;
}

async fn edit_during_the_resync(keepalive: Option<Duration>) {
    let stack = Stack::start(WorldOptions::with_cdc()).await;
    if let Some(every) = keepalive {
        stack.sf.emu.set_pubsub_keepalive(every);
    }
    let org = seed(&stack.sf);
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    let store = FaultyStore::new(stack.aws.store());
    // Right after the re-sync wrote its page of opportunities, a salesperson edits one.
    let user: OrgUser = stack.sf.user();
    let id = org.opportunity.clone();
    store.after(After::Cursor("Opportunity".into()), move || async move {
        user.update(
            "Opportunity",
            &id,
            json!({"Name": "Edited during the re-sync"}),
        )
        .await;
    });
    let app = build_app_with(
        &stack.aws,
        &stack.sf,
        store,
        Duration::from_secs(600),
        CALLBACK_URL,
    );

    run_job(&app, &stack, &tenant).await;
    assert_eq!(
        stored_field(&stack, &tenant, &org.opportunity, "Name").await,
        "Edited during the re-sync"
    );
}

#[tokio::test]
async fn without_change_data_capture_the_sync_polls_and_says_so() {
    let stack = Stack::start(WorldOptions {
        cdc: Some(vec!["OpportunityContactRole".into()]),
        ..WorldOptions::default()
    })
    .await;
    let org = seed(&stack.sf);
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    sync(&stack, &tenant).await;
    let opp = status(&stack, &tenant, "Opportunity").await;
    assert_eq!(
        opp.message.as_deref(),
        Some("Change Data Capture is not enabled for Opportunity; polling instead")
    );
    assert_eq!((opp.records_written, opp.api_calls), (1, 1));
    let role = status(&stack, &tenant, "OpportunityContactRole").await;
    assert_fed_by_cdc(&role);

    // Polling keeps Opportunity up to date.
    edit(
        &stack,
        "Opportunity",
        &org.opportunity,
        json!({"StageName": "Closed Won"}),
    )
    .await;
    sync(&stack, &tenant).await;
    assert_eq!(
        stored_field(&stack, &tenant, &org.opportunity, "StageName").await,
        "Closed Won"
    );

    // The admin turns it on: the next sync subscribes.
    stack.sf.emu.set_cdc(ORG, "Opportunity", true).unwrap();
    sync(&stack, &tenant).await;
    let opp = status(&stack, &tenant, "Opportunity").await;
    assert_fed_by_cdc(&opp);
    edit(
        &stack,
        "Opportunity",
        &org.opportunity,
        json!({"StageName": "Closed Lost"}),
    )
    .await;
    sync(&stack, &tenant).await;
    assert_eq!(
        stored_field(&stack, &tenant, &org.opportunity, "StageName").await,
        "Closed Lost"
    );
    assert_eq!(status(&stack, &tenant, "Opportunity").await.api_calls, 0);
}

#[tokio::test]
async fn two_concurrent_jobs_of_a_tenant_only_one_consumes_the_feed() {
    let stack = Stack::start(WorldOptions::with_cdc()).await;
    let org = seed(&stack.sf);
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    sync(&stack, &tenant).await;
    edit(
        &stack,
        "Opportunity",
        &org.opportunity,
        json!({"Name": "Once"}),
    )
    .await;
    stack
        .sf
        .emu
        .inject(ORG, Fault::Latency { ms: 150 })
        .unwrap();

    let jobs = stack.aws.queue(&stack.aws.resources.sync_jobs_queue);
    let syncer = stack.app.syncer(&jobs);
    let event = || sync_job_event(&tenant, Duration::from_secs(600));
    let (a, b) = tokio::join!(
        handle(&stack.app, &syncer, event(), SyncOptions::default()),
        handle(&stack.app, &syncer, event(), SyncOptions::default())
    );
    assert_eq!(a.unwrap()["batchItemFailures"], json!([]));
    assert_eq!(
        b.unwrap()["batchItemFailures"],
        json!([]),
        "the second job is acknowledged"
    );
    assert_eq!(
        stored_field(&stack, &tenant, &org.opportunity, "Name").await,
        "Once"
    );
    let opp = status(&stack, &tenant, "Opportunity").await;
    assert_eq!(
        opp.records_written, 1,
        "the event was applied by one job: {opp:?}"
    );
}

#[tokio::test]
async fn a_token_expiring_during_the_subscription_is_renewed() {
    let stack = Arc::new(Stack::start(WorldOptions::with_cdc()).await);
    seed(&stack.sf);
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    let store = FaultyStore::new(stack.aws.store());
    let app = build_app_with(
        &stack.aws,
        &stack.sf,
        store.clone(),
        Duration::from_secs(600),
        CALLBACK_URL,
    );
    run_job(&app, &stack, &tenant).await;

    // 150 new opportunities: more than one batch of 100 events.
    let created = stack
        .sf
        .emu
        .seed(
            ORG,
            &(0..150)
                .map(|i| record("Opportunity", None, json!({"Name": format!("Deal {i:03}"), "StageName": "Prospecting", "CloseDate": "2027-02-28"})))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    // Once the first batch is applied, the access token expires (2 h idle).
    let clock = stack.clone();
    store.after(
        After::ReplayId(OPPORTUNITY_TOPIC.into()),
        move || async move {
            clock.sf.emu.advance(Duration::from_secs(2 * 3600 + 60));
        },
    );
    run_job(&app, &stack, &tenant).await;

    let stored_ids = stack
        .aws
        .store()
        .get_records(&tenant, &created)
        .await
        .unwrap();
    assert_eq!(
        stored_ids.len(),
        150,
        "every change arrived across the renewal"
    );
    let opp = status(&stack, &tenant, "Opportunity").await;
    assert_eq!((opp.records_written, opp.api_calls), (150, 0), "{opp:?}");
}

/// The emulator's own ContactChangeEvent schema, decoded by the product: a
/// compound field's members are named through the nested `N-0x…` bitmaps.
#[tokio::test]
async fn nested_fields_of_a_compound_address_are_decoded() {
    let sf = SfWorld::start(WorldOptions {
        cdc: Some(vec!["Contact".into()]),
        ..WorldOptions::default()
    })
    .await;
    let jane = sf
        .seed(vec![(
            "Contact",
            json!({"LastName": "Doe", "MailingCity": "Paris"}),
        )])
        .remove(0);
    sf.user()
        .update(
            "Contact",
            &jane,
            json!({"MailingCity": "Lyon", "MailingCountry": "France", "Title": "CFO"}),
        )
        .await;

    let (_, access) = sf.mint_refresh_token();
    let config = sf.config();
    let endpoint = config.pubsub_endpoint.as_ref().unwrap();
    let auth = PubSubAuth {
        access_token: access.unwrap().into(),
        instance_url: sf.base_url().to_string(),
        tenant_id: sf.org_id.clone(),
    };
    let mut client = PubSubClient::connect(endpoint, auth).await.unwrap();
    let mut subscription = client
        .subscribe(fetch(
            "/data/ContactChangeEvent",
            ReplayPreset::Earliest,
            Vec::new(),
            10,
        ))
        .await
        .unwrap();
    let mut events = Vec::new();
    while events.len() < 2 {
        let response = subscription.message().await.unwrap().unwrap();
        events.extend(response.events.into_iter().filter_map(|e| e.event));
    }
    let update = &events[1];
    let schema = client.get_schema(&update.schema_id).await.unwrap();
    let schema = EventSchema::parse(&schema.schema_json).unwrap();
    let change = schema.decode(&update.payload).unwrap();
    assert_eq!(change.record_ids, [jane]);
    for field in ["MailingAddress.City", "MailingAddress.Country", "Title"] {
        assert!(
            change.changed.iter().any(|f| f == field),
            "{field} in {:?}",
            change.changed
        );
    }
    assert!(!change.changed.iter().any(|f| f == "LastName"));
    assert_eq!(change.values["Title"], "CFO");
}
