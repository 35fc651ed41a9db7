//! A realistic org for the call and comment tests: contacts, leads, accounts,
//! opportunities with contact roles and a dialer's Task, synced into the index,
//! with the host `usr_12` mapped to a rep; and helpers to send call events.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use sf_emulator::{SeedRecord, UserSpec};
use shared::adapters::secrets::SecretsManagerStore;
use shared::app::{App, Store};
use shared::calls::handler::handle;
use shared::domain::{MappingSource, TenantId, UserMapping};
use shared::ports::{CallStore, UserMappingStore};
use shared::sync::handler::SyncOptions;

use crate::moto::AwsEnv;
use crate::sf::{ORG, WorldOptions, fields};
use crate::stack::{Stack, lambda_event, sqs_event};

pub struct World {
    pub stack: Stack,
    pub tenant: TenantId,
    pub rep: String,
    pub ids: std::collections::HashMap<String, String>,
}

pub fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An org with contacts, leads, accounts, opportunities and a dialer's Task,
/// synced into the index, with the host `usr_12` mapped to a rep.
pub async fn world() -> World {
    world_with(WorldOptions::default()).await
}

/// As [`world`], on an emulator started with `options`.
pub async fn world_with(options: WorldOptions) -> World {
    let stack = Stack::start(options).await;
    let rep = stack
        .sf
        .emu
        .create_user(
            ORG,
            UserSpec {
                reference: Some("rep".into()),
                username: "rep@acme.test".into(),
                email: "rep@acme.test".into(),
                last_name: "Rep".into(),
                ..Default::default()
            },
        )
        .unwrap()
        .id;
    let r = |object: &str, reference: &str, f: Value| SeedRecord {
        object: object.into(),
        reference: Some(reference.into()),
        fields: fields(f),
    };
    let seeds = vec![
        r(
            "Account",
            "acme",
            json!({"Name": "Acme", "Website": "https://acme.com", "Phone": "+33 1 42 68 53 00"}),
        ),
        r(
            "Account",
            "globex",
            json!({"Name": "Globex", "Website": "globex.fr", "Phone": "+33 1 40 00 00 01"}),
        ),
        // Jane: one contact, open opportunities (one where she is primary).
        r(
            "Contact",
            "jane",
            json!({"FirstName": "Jane", "LastName": "Doe", "Phone": "06 12 34 56 78", "Email": "jane@acme.com", "AccountId": "@acme"}),
        ),
        r(
            "Opportunity",
            "opp_other",
            json!({"Name": "Acme other", "StageName": "Prospecting", "CloseDate": "$today+30d", "AccountId": "@acme", "LastModifiedDate": "$now-1h"}),
        ),
        r(
            "Opportunity",
            "opp_main",
            json!({"Name": "Acme renewal", "StageName": "Prospecting", "CloseDate": "$today+30d", "AccountId": "@acme", "CreatedDate": "$now-30d", "LastModifiedDate": "$now-5d"}),
        ),
        r(
            "Opportunity",
            "opp_closed",
            json!({"Name": "Acme lost", "StageName": "Closed Lost", "CloseDate": "$today-60d", "AccountId": "@acme"}),
        ),
        r(
            "OpportunityContactRole",
            "role1",
            json!({"OpportunityId": "@opp_main", "ContactId": "@jane", "IsPrimary": true}),
        ),
        r(
            "OpportunityContactRole",
            "role2",
            json!({"OpportunityId": "@opp_other", "ContactId": "@jane", "IsPrimary": false}),
        ),
        r(
            "OpportunityContactRole",
            "role3",
            json!({"OpportunityId": "@opp_closed", "ContactId": "@jane", "IsPrimary": true}),
        ),
        // Two contacts share a number: the more recently modified wins.
        r(
            "Contact",
            "old",
            json!({"LastName": "Old", "Phone": "+33 6 55 55 55 55", "AccountId": "@globex", "CreatedDate": "$now-90d", "LastModifiedDate": "$now-60d"}),
        ),
        r(
            "Contact",
            "recent",
            json!({"LastName": "Recent", "MobilePhone": "06 55 55 55 55", "AccountId": "@globex", "CreatedDate": "$now-90d", "LastModifiedDate": "$now-2d"}),
        ),
        // A lead only.
        r(
            "Lead",
            "lead",
            json!({"LastName": "Prospect", "Company": "Initech", "Phone": "+33 6 77 77 77 77"}),
        ),
        // Bob, whose call the dialer already logged.
        r(
            "Contact",
            "bob",
            json!({"FirstName": "Bob", "LastName": "Martin", "Phone": "+33 6 88 88 88 88", "AccountId": "@globex"}),
        ),
        r(
            "Task",
            "dialer",
            json!({"Subject": "Outbound answered call to +33 6 88 88 88 88", "TaskSubtype": "Call", "CallType": "Outbound",
            "CallDisposition": "answered +33688888888", "CallDurationInSeconds": 300, "Status": "Completed", "WhoId": "@bob",
            "OwnerId": "@rep", "Description": "Recording: https://aircall.example/rec/42", "CreatedDate": "$now-1h"}),
        ),
    ];
    stack.sf.emu.seed(ORG, &seeds).unwrap();
    let mut ids = std::collections::HashMap::new();
    for name in [
        "acme",
        "globex",
        "jane",
        "opp_main",
        "opp_other",
        "old",
        "recent",
        "lead",
        "bob",
        "dialer",
    ] {
        ids.insert(name.to_string(), stack.sf.emu.seed_ref(ORG, name).unwrap());
    }
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    sync(&stack, &tenant).await;
    stack
        .aws
        .store()
        .put_mapping(
            &tenant,
            &UserMapping {
                modjo_user_id: "usr_12".into(),
                sf_user_id: rep.clone(),
                source: MappingSource::Manual,
                updated_at: Utc::now(),
            },
        )
        .await
        .unwrap();
    World {
        stack,
        tenant,
        rep,
        ids,
    }
}

pub async fn sync(stack: &Stack, tenant: &TenantId) {
    let jobs = stack.aws.queue(&stack.aws.resources.sync_jobs_queue);
    let calls = stack.aws.queue(&stack.aws.resources.call_events_queue);
    let syncer = stack.app.syncer(&jobs).with_call_replay(&calls);
    let answer = shared::sync::handler::handle(
        &stack.app,
        &syncer,
        crate::stack::sync_job_event(tenant, Duration::from_secs(300)),
        SyncOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]));
}

pub fn call(tenant: &TenantId, id: &str, direction: &str, participants: Value) -> String {
    json!({
        "version": 1, "tenantId": tenant, "callId": id,
        "url": format!("https://app.modjo.ai/calls/{id}"), "title": format!("Call {id}"),
        "direction": direction, "startedAt": rfc(Utc::now() - chrono::Duration::minutes(62)), "durationSeconds": 754,
        "hostUserId": "usr_12", "source": {"provider": "aircall", "externalCallId": "1874923"},
        "participants": participants, "summary": "Pricing and next steps."
    })
    .to_string()
}

pub fn phone_call(tenant: &TenantId, id: &str, phone: &str) -> String {
    call(
        tenant,
        id,
        "outbound",
        json!([
            {"role": "external", "name": "Someone", "phone": phone},
            {"role": "internal", "userId": "usr_12", "email": "bob@modjo.ai"}
        ]),
    )
}

pub async fn log_with<S: Store>(
    app: &App<S, SecretsManagerStore>,
    aws: &AwsEnv,
    bodies: &[String],
) -> SqsBatchResponse {
    let dlq = aws.queue(&aws.resources.dead_letter_queues[&aws.resources.call_events_queue]);
    let source = aws.queue(&aws.resources.call_events_queue);
    let logger = app.call_logger(&source, &dlq);
    let event: SqsEvent = serde_json::from_value(sqs_event("call-events", bodies)).unwrap();
    handle(
        app,
        &logger,
        &source,
        lambda_event(event, Duration::from_secs(120)),
    )
    .await
}

pub async fn log(w: &World, bodies: &[String]) -> SqsBatchResponse {
    log_with(&w.stack.app, &w.stack.aws, bodies).await
}

/// The call as the platform reads it: `GET calls/{callId}` through the API, as
/// a member of the tenant.
pub async fn read_call(w: &World, call_id: &str) -> Value {
    let r = w
        .stack
        .api(crate::stack::api_event(
            "GET",
            &format!("/integrations/salesforce/calls/{call_id}"),
            None,
            crate::stack::Claims::member(w.tenant.as_str()),
        ))
        .await;
    crate::stack::body_json(&r)
}

pub fn tasks(w: &World) -> Vec<Value> {
    w.stack.sf.emu.records(ORG, "Task", false).unwrap()
}

pub fn task_by_call_object(w: &World, call_id: &str) -> Vec<Value> {
    tasks(w)
        .into_iter()
        .filter(|t| t["CallObject"] == format!("modjo:{call_id}"))
        .collect()
}

pub async fn outcome(w: &World, call_id: &str) -> shared::domain::CallOutcome {
    w.stack
        .aws
        .store()
        .get_outcome(&w.tenant, call_id)
        .await
        .unwrap()
        .expect("an outcome")
}

/// The call's claim, expired: as when SQS redelivers a call whose invocation
/// died (its claim outlives no invocation).
pub async fn expire_claim(w: &World, call_id: &str) {
    let mut o = outcome(w, call_id).await;
    o.claimed_until = Some(Utc::now() - chrono::Duration::seconds(1));
    w.stack
        .aws
        .store()
        .save_outcome(&w.tenant, &o)
        .await
        .unwrap();
}

/// A comment event on `call_id`, updated at 11:`updated_minute` on 28 Nov 2026.
pub fn comment(
    w: &World,
    call_id: &str,
    id: &str,
    action: &str,
    text: &str,
    at: u32,
    updated_minute: u32,
) -> String {
    let updated = Utc
        .with_ymd_and_hms(2026, 11, 28, 11, updated_minute, 0)
        .unwrap()
        .to_rfc3339();
    json!({"version": 1, "tenantId": w.tenant, "callId": call_id, "commentId": id, "action": action,
           "authorUserId": "usr_40", "authorName": "Alice Martin", "text": text, "atSecond": at,
           "createdAt": "2026-11-28T11:00:00Z", "updatedAt": updated})
    .to_string()
}

pub async fn comments(w: &World, bodies: &[String]) -> SqsBatchResponse {
    comments_with(&w.stack.app, &w.stack.aws, bodies).await
}

/// [`comments`] through another app (another store in front of the same table).
pub async fn comments_with<S: Store>(
    app: &App<S, SecretsManagerStore>,
    aws: &AwsEnv,
    bodies: &[String],
) -> SqsBatchResponse {
    let dlq = aws.queue(&aws.resources.dead_letter_queues[&aws.resources.comment_events_queue]);
    let source = aws.queue(&aws.resources.comment_events_queue);
    let sync = app.comment_sync(&dlq);
    let event: SqsEvent = serde_json::from_value(sqs_event("comment-events", bodies)).unwrap();
    shared::comments::handler::handle(
        app,
        &sync,
        &source,
        lambda_event(event, Duration::from_secs(60)),
    )
    .await
}

/// A logged call to Jane; its Task's id.
pub async fn logged_call(w: &World, call_id: &str) -> String {
    assert!(
        log(w, &[phone_call(&w.tenant, call_id, "+33612345678")])
            .await
            .batch_item_failures
            .is_empty()
    );
    task_by_call_object(w, call_id)[0]["Id"]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn description(w: &World, task: &str) -> String {
    w.stack.sf.emu.record(ORG, task).unwrap()["Description"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

pub fn shown(description: &str) -> Vec<String> {
    description
        .lines()
        .filter(|l| l.starts_with('['))
        .map(str::to_string)
        .collect()
}
