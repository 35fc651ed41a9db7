//! The call logger (DESIGN §6): every call in Salesforce exactly once, on the
//! right records, with the fewest API calls.
//!
//! Per SQS batch and tenant: matching reads the local index (no API call), SOSL
//! only for numbers the index does not know (one search), one query finds both
//! the Tasks we created before (by `CallObject`) and the dialers' Tasks, then one
//! collections create and one collections update write everything.
//!
//! Exactly once: a call is claimed in DynamoDB (conditional write) before any
//! Salesforce work, so concurrent deliveries do not both write; and the Task we
//! create carries `CallObject = modjo:<callId>`, so a retry after a crash between
//! the Salesforce write and the DynamoDB write finds it instead of creating another.

pub mod event;
pub mod handler;
pub mod matching;
pub mod render;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Map, Value, json};

use crate::app::{App, Store};
pub use crate::batch::{Delivery, Verdict};
use crate::domain::normalize;
use crate::domain::{
    ApiUsage, CallOutcome, CallState, Connection, ConnectionStatus, IndexEntry, IndexKey,
    IndexKind, LinkedRecord, TenantId,
};
use crate::error::{Classify, ErrorClass, WorkError};
use crate::ports::{JobQueue, SecretStore, StoreError};
use crate::salesforce::id::same_id;
use crate::salesforce::keyset::parse_datetime;
use crate::salesforce::limits::{BudgetDecision, Work, decide};
use crate::salesforce::soql::{Cond, Literal, Select};
use crate::salesforce::sosl::PhoneSearch;
use crate::salesforce::{ApiError, NewRecord, RecordUpdate, SalesforceError, Session, Usage};
use crate::sync::objects::{CONTACT_PHONES, LEAD_PHONES};
use event::{CallEvent, Direction, Role};
use matching::{Candidate, Decision, Kind, MatchPolicy, OpportunityCandidate};

/// How long a claim protects a call being logged.
const CLAIM_TTL: Duration = Duration::from_secs(180);
/// Dialer Tasks are looked for from this long before the call starts...
const DIALER_BEFORE: i64 = 10 * 60;
/// ...to this long after it ends (Aircall updates its Task ~30 s after hang-up).
const DIALER_AFTER: i64 = 15 * 60;
/// A kept message is cut beyond this (DynamoDB items are at most 400 KB).
const KEPT_MESSAGE_BYTES: usize = 64 * 1024;

/// A call claimed by this invocation, and what was decided for it.
struct Claimed {
    delivery: usize,
    call: CallEvent,
    outcome: CallOutcome,
    decision: Option<Decision>,
    owner: Option<(String, &'static str)>,
    names: HashMap<String, String>,
    body: String,
}

fn keep(body: &str) -> String {
    if body.len() <= KEPT_MESSAGE_BYTES {
        return body.to_string();
    }
    let mut end = KEPT_MESSAGE_BYTES;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated: {} bytes in all]", &body[..end], body.len())
}

/// Where a call was left: the state recorded for it, or the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Settled {
    State(CallState),
    DeadLettered,
}

pub struct CallLogger<'a, S, K, Q> {
    pub app: &'a App<S, K>,
    /// The call-events dead-letter queue: messages that name no usable tenant.
    pub dead_letters: &'a Q,
    /// Calls settled since [`CallLogger::take_settled`] was last called.
    settled: std::sync::Mutex<HashMap<Settled, u64>>,
}

impl<'a, S: Store, K: SecretStore, Q: JobQueue> CallLogger<'a, S, K, Q> {
    pub fn new(app: &'a App<S, K>, dead_letters: &'a Q) -> Self {
        Self {
            app,
            dead_letters,
            settled: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// How many calls were left in each place since the last call (the
    /// handler's metrics, per batch).
    pub fn take_settled(&self) -> HashMap<Settled, u64> {
        self.settled
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }

    fn count(&self, settled: Settled) {
        if let Ok(mut s) = self.settled.lock() {
            *s.entry(settled).or_default() += 1;
        }
    }

    /// Processes one SQS batch; the verdict of each delivery, in order.
    pub async fn log_batch(
        &self,
        deliveries: &[Delivery],
        deadline: tokio::time::Instant,
    ) -> Vec<Verdict> {
        let mut verdicts = vec![Verdict::Done; deliveries.len()];
        let mut by_tenant: Vec<(TenantId, Vec<(usize, CallEvent)>)> = Vec::new();
        for (i, d) in deliveries.iter().enumerate() {
            match CallEvent::parse(&d.body) {
                Ok(call) => match by_tenant.iter_mut().find(|(t, _)| *t == call.tenant_id) {
                    Some((_, calls)) => calls.push((i, call)),
                    None => by_tenant.push((call.tenant_id.clone(), vec![(i, call)])),
                },
                Err(invalid) => verdicts[i] = self.refuse(d, invalid).await,
            }
        }
        for (tenant, calls) in by_tenant {
            // Duplicates inside one batch: the first copy does the work.
            let mut seen = HashSet::new();
            let mut unique = Vec::new();
            for (i, call) in calls {
                if seen.insert(call.call_id.clone()) {
                    unique.push((i, call));
                } else {
                    verdicts[i] = Verdict::Retry;
                }
            }
            for (i, verdict) in self.log_tenant(&tenant, unique, deliveries, deadline).await {
                verdicts[i] = verdict;
            }
        }
        verdicts
    }

    /// A message that cannot be a valid call: recorded against the call when it
    /// names one of a known tenant, else sent to the dead-letter queue. Never retried.
    async fn refuse(&self, d: &Delivery, invalid: event::Invalid) -> Verdict {
        tracing::warn!(message_id = %d.message_id, reason = %invalid.reason, "call event refused");
        if let (Some(tenant), Some(call_id)) = (&invalid.tenant, &invalid.call_id) {
            if let Ok(Some(_)) = self.app.store.get_connection(tenant).await {
                let reason = format!("invalid message: {}", invalid.reason);
                match self
                    .record(tenant, call_id, CallState::Failed, &reason, &d.body)
                    .await
                {
                    Ok(()) => return Verdict::Done,
                    Err(e) if e.class().is_retryable() => return Verdict::Retry,
                    Err(e) => tracing::error!(error = %e, "could not record the refusal"),
                }
            }
        }
        let reason = match &invalid.tenant {
            Some(_) if invalid.call_id.is_some() => format!("unknown tenant: {}", invalid.reason),
            _ => invalid.reason.clone(),
        };
        match self.dead_letters.dead_letter(&keep(&d.body), &reason).await {
            Ok(()) => {
                self.count(Settled::DeadLettered);
                Verdict::Done
            }
            Err(e) => {
                tracing::error!(error = %e, "could not dead-letter a refused message");
                Verdict::Retry
            }
        }
    }

    /// A permanent failure, recorded with the message unless the call was already logged.
    /// Records a call that will not be logged now (`state`), with the reason and
    /// the message kept; a call already logged keeps its final state.
    async fn record(
        &self,
        tenant: &TenantId,
        call_id: &str,
        state: CallState,
        reason: &str,
        body: &str,
    ) -> Result<(), StoreError> {
        let existing = self.app.store.get_outcome(tenant, call_id).await?;
        if existing.as_ref().is_some_and(CallOutcome::is_final) {
            return Ok(());
        }
        let outcome = CallOutcome {
            reason: Some(reason.to_string()),
            message: Some(keep(body)),
            version: existing.map_or(0, |e| e.version),
            ..CallOutcome::new(call_id, state, Utc::now())
        };
        self.app.store.save_outcome(tenant, &outcome).await?;
        self.count(Settled::State(state));
        Ok(())
    }

    async fn log_tenant(
        &self,
        tenant: &TenantId,
        calls: Vec<(usize, CallEvent)>,
        deliveries: &[Delivery],
        deadline: tokio::time::Instant,
    ) -> Vec<(usize, Verdict)> {
        let all_retry = |calls: &[(usize, CallEvent)]| {
            calls.iter().map(|(i, _)| (*i, Verdict::Retry)).collect()
        };
        let connection = match self.app.store.get_connection(tenant).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                let mut out = Vec::new();
                for (i, call) in &calls {
                    let reason = format!("unknown tenant {tenant}: no Salesforce connection");
                    tracing::warn!(tenant_id = %tenant, call_id = %call.call_id, "{reason}");
                    let verdict = match self
                        .dead_letters
                        .dead_letter(&keep(&deliveries[*i].body), &reason)
                        .await
                    {
                        Ok(()) => {
                            self.count(Settled::DeadLettered);
                            Verdict::Done
                        }
                        Err(_) => Verdict::Retry,
                    };
                    out.push((*i, verdict));
                }
                return out;
            }
            Err(e) => {
                tracing::warn!(tenant_id = %tenant, error = %e, "store unavailable");
                return all_retry(&calls);
            }
        };
        let parking = match connection.status {
            ConnectionStatus::Connected => self.budget_exhausted(tenant, &connection),
            ConnectionStatus::NeedsReauth => {
                Some("waiting: the Salesforce connection must be re-authorised".to_string())
            }
            ConnectionStatus::Pending => {
                Some("waiting: Salesforce is not connected yet".to_string())
            }
            ConnectionStatus::Disconnected => None,
        };
        if connection.status == ConnectionStatus::Disconnected {
            let mut out = Vec::new();
            for (i, call) in &calls {
                let r = self
                    .record(
                        tenant,
                        &call.call_id,
                        CallState::Failed,
                        "Salesforce is disconnected",
                        &deliveries[*i].body,
                    )
                    .await;
                out.push((
                    *i,
                    if r.is_ok() {
                        Verdict::Done
                    } else {
                        Verdict::Retry
                    },
                ));
            }
            return out;
        }
        if let Some(reason) = parking {
            return self.park(tenant, &calls, deliveries, &reason).await;
        }

        // Claim: from here on, no other invocation works on these calls.
        let mut claimed: Vec<Claimed> = Vec::new();
        let mut verdicts = Vec::new();
        for (i, call) in calls {
            match self.claim(tenant, &call, &deliveries[i].body).await {
                Ok(Some(outcome)) => claimed.push(Claimed {
                    delivery: i,
                    call,
                    outcome,
                    decision: None,
                    owner: None,
                    names: HashMap::new(),
                    body: deliveries[i].body.clone(),
                }),
                Ok(None) => verdicts.push((i, Verdict::Done)), // already logged
                Err(ClaimRefused) => verdicts.push((i, Verdict::Retry)),
            }
        }
        if claimed.is_empty() {
            return verdicts;
        }
        let session =
            self.app
                .salesforce
                .session(tenant, &self.app.secrets, &self.app.store, deadline);
        match self.log_claimed(&session, &connection, &mut claimed).await {
            Ok(results) => verdicts.extend(results),
            Err(e) => {
                let class = e.class();
                tracing::warn!(tenant_id = %tenant, error = %e, class = %class, "batch not logged");
                for w in claimed {
                    let verdict = match class {
                        ErrorClass::NeedsReauth => {
                            let reason = "waiting: the Salesforce connection must be re-authorised";
                            self.settle(
                                tenant,
                                w.outcome,
                                CallState::Waiting,
                                Some(reason.into()),
                                &w.body,
                            )
                            .await
                        }
                        ErrorClass::Retryable => {
                            self.release(tenant, w.outcome, &e.to_string()).await
                        }
                        ErrorClass::Permanent => {
                            self.settle(
                                tenant,
                                w.outcome,
                                CallState::Failed,
                                Some(e.to_string()),
                                &w.body,
                            )
                            .await
                        }
                    };
                    verdicts.push((w.delivery, verdict));
                }
            }
        }
        verdicts
    }

    /// The reason to defer, when the org's usage is at or above the call-logging threshold.
    fn budget_exhausted(&self, tenant: &TenantId, connection: &Connection) -> Option<String> {
        // The most recent fresh reading: this container's, or the one a job stored.
        let live = self.app.salesforce.usage(tenant).map(Usage::to_api_usage);
        let usage = [live, connection.api_usage]
            .into_iter()
            .flatten()
            .filter(ApiUsage::is_fresh)
            .max_by_key(|u| u.observed_at)?;
        match decide(
            &self.app.config.budget,
            Work::CallLogging,
            usage.used,
            usage.max,
        ) {
            BudgetDecision::Wait {
                used_percent,
                threshold,
            } => Some(format!(
                "waiting: the org has used {used_percent}% of its daily API allocation (call logging waits at {threshold}%)"
            )),
            BudgetDecision::Proceed => None,
        }
    }

    /// Parks calls as `waiting` with their message, to be replayed later.
    async fn park(
        &self,
        tenant: &TenantId,
        calls: &[(usize, CallEvent)],
        deliveries: &[Delivery],
        reason: &str,
    ) -> Vec<(usize, Verdict)> {
        let mut out = Vec::new();
        for (i, call) in calls {
            let parked = self
                .record(
                    tenant,
                    &call.call_id,
                    CallState::Waiting,
                    reason,
                    &deliveries[*i].body,
                )
                .await;
            let verdict = match parked {
                Ok(()) => Verdict::Done,
                Err(_) => Verdict::Retry,
            };
            tracing::info!(tenant_id = %tenant, call_id = %call.call_id, reason, "call parked");
            out.push((*i, verdict));
        }
        out
    }

    /// Takes the call for this invocation. `Ok(None)`: already logged (a duplicate).
    async fn claim(
        &self,
        tenant: &TenantId,
        call: &CallEvent,
        body: &str,
    ) -> Result<Option<CallOutcome>, ClaimRefused> {
        let now = Utc::now();
        let existing = self
            .app
            .store
            .get_outcome(tenant, &call.call_id)
            .await
            .map_err(|_| ClaimRefused)?;
        match &existing {
            Some(o) if o.is_final() => return Ok(None),
            Some(o)
                if o.state == CallState::InProgress
                    && o.claimed_until.is_some_and(|until| until > now) =>
            {
                return Err(ClaimRefused);
            }
            _ => {}
        }
        let outcome = CallOutcome {
            claimed_until: Some(now + chrono::Duration::from_std(CLAIM_TTL).unwrap_or_default()),
            message: Some(keep(body)),
            version: existing.as_ref().map_or(0, |e| e.version),
            task_id: existing.as_ref().and_then(|e| e.task_id.clone()),
            ..CallOutcome::new(&call.call_id, CallState::InProgress, now)
        };
        // A conditional write: of two concurrent deliveries, one wins.
        self.app
            .store
            .save_outcome(tenant, &outcome)
            .await
            .map(Some)
            .map_err(|_| ClaimRefused)
    }

    /// Ends a claim with a final state.
    async fn settle(
        &self,
        tenant: &TenantId,
        claim: CallOutcome,
        state: CallState,
        reason: Option<String>,
        body: &str,
    ) -> Verdict {
        let outcome = CallOutcome {
            state,
            reason,
            claimed_until: None,
            message: Some(keep(body)),
            updated_at: Utc::now(),
            ..claim
        };
        match self.app.store.save_outcome(tenant, &outcome).await {
            Ok(_) => {
                self.count(Settled::State(state));
                Verdict::Done
            }
            Err(e) => {
                tracing::warn!(tenant_id = %tenant, call_id = %outcome.call_id, error = %e, "outcome not saved; SQS will redeliver");
                Verdict::Retry
            }
        }
    }

    /// Gives the call back (a retryable failure): the claim ends now, SQS redelivers.
    async fn release(&self, tenant: &TenantId, claim: CallOutcome, why: &str) -> Verdict {
        let outcome = CallOutcome {
            claimed_until: Some(Utc::now()),
            reason: Some(format!("retrying: {why}")),
            ..claim
        };
        let _ = self.app.store.save_outcome(tenant, &outcome).await;
        Verdict::Retry
    }

    async fn log_claimed(
        &self,
        session: &Session<'_, K, S>,
        connection: &Connection,
        work: &mut [Claimed],
    ) -> Result<Vec<(usize, Verdict)>, WorkError> {
        let tenant = session.tenant().clone();
        let policy = connection.match_policy;
        self.decide_all(session, connection, work, &policy).await?;

        // One lookup: Tasks we created (by CallObject) and the dialers' call Tasks.
        let existing = self.lookup_tasks(session, work).await?;
        let mut creates: Vec<(usize, NewRecord)> = Vec::new();
        let mut updates: Vec<(usize, RecordUpdate, CallState)> = Vec::new();
        let mut unmatched = Vec::new();
        let mut taken: HashSet<String> = HashSet::new();
        for (k, w) in work.iter().enumerate() {
            let comments = self
                .app
                .store
                .comments_for_call(&tenant, &w.call.call_id)
                .await?;
            let call_object = w.call.call_object();
            if let Some(ours) = existing
                .iter()
                .find(|t| t.get("CallObject").and_then(Value::as_str) == Some(call_object.as_str()))
            {
                // Created before (the outcome write was lost): refresh its block only.
                let id = ours
                    .get("Id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                taken.insert(id.clone());
                let current = ours.get("Description").and_then(Value::as_str);
                let merged = render::merge_description(current, &w.call, &comments);
                let mut fields = Map::new();
                if let Some(m) = merged.filter(|m| Some(m.as_str()) != current) {
                    fields.insert("Description".into(), Value::String(m));
                }
                updates.push((
                    k,
                    RecordUpdate {
                        object: "Task",
                        id,
                        fields,
                    },
                    CallState::Created,
                ));
                continue;
            }
            let Some(decision) = w
                .decision
                .clone()
                .filter(|d| d.who.is_some() || d.what.is_some())
            else {
                unmatched.push(k);
                continue;
            };
            if let Some(dialer) =
                find_dialer_task(&existing, w, &decision, &taken, &connection.phone_region)
            {
                let id = dialer
                    .get("Id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                taken.insert(id.clone());
                let current = dialer.get("Description").and_then(Value::as_str);
                let Some(merged) = render::merge_description(current, &w.call, &comments) else {
                    unmatched.push(k);
                    continue;
                };
                let mut fields = Map::new();
                fields.insert("Description".into(), Value::String(merged));
                updates.push((
                    k,
                    RecordUpdate {
                        object: "Task",
                        id,
                        fields,
                    },
                    CallState::Enriched,
                ));
                continue;
            }
            let description =
                render::merge_description(None, &w.call, &comments).unwrap_or_default();
            creates.push((
                k,
                NewRecord {
                    object: "Task",
                    fields: task_fields(w, &decision, description),
                },
            ));
        }

        let mut verdicts = Vec::new();
        for k in unmatched {
            let w = &work[k];
            let reason = w
                .decision
                .as_ref()
                .map_or("no participant to match".to_string(), |d| d.reason.clone());
            let v = self
                .settle(
                    &tenant,
                    w.outcome.clone(),
                    CallState::Unmatched,
                    Some(reason),
                    &w.body,
                )
                .await;
            verdicts.push((w.delivery, v));
        }
        // One collections create, one collections update (200 records per request).
        let created = if creates.is_empty() {
            Vec::new()
        } else {
            session
                .create_many(&creates.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>())
                .await?
        };
        let real_updates: Vec<&(usize, RecordUpdate, CallState)> = updates
            .iter()
            .filter(|(_, u, _)| !u.fields.is_empty())
            .collect();
        let updated = if real_updates.is_empty() {
            Vec::new()
        } else {
            session
                .update_many(
                    &real_updates
                        .iter()
                        .map(|(_, u, _)| u.clone())
                        .collect::<Vec<_>>(),
                )
                .await?
        };
        for ((k, _), result) in creates.iter().zip(created) {
            let v = self
                .finish(
                    &tenant,
                    &work[*k],
                    result.success,
                    result.id,
                    &result.errors,
                    CallState::Created,
                )
                .await;
            verdicts.push((work[*k].delivery, v));
        }
        let mut update_results = updated.into_iter();
        for (k, update, state) in &updates {
            let state = *state;
            let v = if update.fields.is_empty() {
                self.finish(
                    &tenant,
                    &work[*k],
                    true,
                    Some(update.id.clone()),
                    &[],
                    state,
                )
                .await
            } else {
                match update_results.next() {
                    Some(r) => {
                        self.finish(
                            &tenant,
                            &work[*k],
                            r.success,
                            Some(update.id.clone()),
                            &r.errors,
                            state,
                        )
                        .await
                    }
                    None => Verdict::Retry,
                }
            };
            verdicts.push((work[*k].delivery, v));
        }
        Ok(verdicts)
    }

    async fn finish(
        &self,
        tenant: &TenantId,
        w: &Claimed,
        success: bool,
        task_id: Option<String>,
        errors: &[crate::salesforce::ApiError],
        state: CallState,
    ) -> Verdict {
        let decision = w.decision.clone();
        if !success {
            let codes: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.code, e.message))
                .collect();
            if errors.iter().any(ApiError::is_transient_row_error) {
                return self
                    .release(tenant, w.outcome.clone(), &codes.join("; "))
                    .await;
            }
            tracing::warn!(tenant_id = %tenant, call_id = %w.call.call_id, errors = ?codes, "Salesforce refused the Task");
            return self
                .settle(
                    tenant,
                    w.outcome.clone(),
                    CallState::Failed,
                    Some(format!("Salesforce refused the Task: {}", codes.join("; "))),
                    &w.body,
                )
                .await;
        }
        let mut linked = Vec::new();
        if let Some(who) = decision.as_ref().and_then(|d| d.who.as_ref()) {
            linked.push(LinkedRecord {
                id: who.id.clone(),
                object: match who.kind {
                    Kind::Contact => "Contact",
                    Kind::Lead => "Lead",
                    Kind::Account => "Account",
                }
                .into(),
                name: who.name.clone(),
            });
        }
        if let Some((id, object)) = decision.as_ref().and_then(|d| d.what.clone()) {
            linked.push(LinkedRecord {
                name: w.names.get(&id).cloned(),
                id,
                object: object.into(),
            });
        }
        let outcome = CallOutcome {
            task_id,
            who_id: decision
                .as_ref()
                .and_then(|d| d.who.as_ref().map(|c| c.id.clone())),
            what_id: decision
                .as_ref()
                .and_then(|d| d.what.as_ref().map(|(id, _)| id.clone())),
            owner_id: w.owner.as_ref().map(|(id, _)| id.clone()),
            linked,
            ..w.outcome.clone()
        };
        let reason = decision.map(|d| match &w.owner {
            Some((_, source)) => format!("{}; owner: {source}", d.reason),
            None => d.reason,
        });
        tracing::info!(tenant_id = %tenant, call_id = %w.call.call_id, state = ?state, task_id = ?outcome.task_id, "call logged");
        self.settle(tenant, outcome, state, reason, &w.body).await
    }

    /// Matching (index first, SOSL for unknown numbers), owner, and the decision.
    async fn decide_all(
        &self,
        session: &Session<'_, K, S>,
        connection: &Connection,
        work: &mut [Claimed],
        policy: &MatchPolicy,
    ) -> Result<(), WorkError> {
        let tenant = session.tenant().clone();
        let store = &self.app.store;
        let region = connection.phone_region.as_str();
        // Candidates per call, from the index.
        let mut per_call: Vec<(Vec<Candidate>, Vec<Candidate>, Vec<String>)> = Vec::new();
        let mut unknown_numbers: Vec<String> = Vec::new();
        for w in work.iter() {
            let (mut who, mut accounts, mut missing) = (Vec::new(), Vec::new(), Vec::new());
            let internal_emails: HashSet<String> = w
                .call
                .participants
                .iter()
                .filter(|p| p.role == Role::Internal)
                .filter_map(|p| p.email.as_deref().and_then(normalize::email))
                .collect();
            for p in w
                .call
                .participants
                .iter()
                .filter(|p| p.role == Role::External)
            {
                if let Some(e164) = p
                    .phone
                    .as_deref()
                    .and_then(|ph| normalize::phone_e164(ph, region))
                {
                    let hits = store
                        .query_index(
                            &tenant,
                            &IndexKey {
                                kind: IndexKind::Phone,
                                value: e164.clone(),
                            },
                        )
                        .await?;
                    if hits.is_empty() {
                        missing.push(e164.clone());
                        if !unknown_numbers.contains(&e164) {
                            unknown_numbers.push(e164);
                        }
                    }
                    add_candidates(&hits, &mut who, &mut accounts);
                }
                if let Some(email) = p
                    .email
                    .as_deref()
                    .and_then(normalize::email)
                    .filter(|e| !internal_emails.contains(e))
                {
                    let hits = store
                        .query_index(
                            &tenant,
                            &IndexKey {
                                kind: IndexKind::Email,
                                value: email.clone(),
                            },
                        )
                        .await?;
                    add_candidates(&hits, &mut who, &mut accounts);
                    if w.call.direction == Direction::Meeting {
                        if let Some(domain) = normalize::email_domain(&email) {
                            let hits = store
                                .query_index(
                                    &tenant,
                                    &IndexKey {
                                        kind: IndexKind::Domain,
                                        value: domain,
                                    },
                                )
                                .await?;
                            for h in hits {
                                let account = if h.object == "Account" {
                                    Some((
                                        h.record_id.clone(),
                                        h.data
                                            .get("Name")
                                            .and_then(Value::as_str)
                                            .map(str::to_string),
                                    ))
                                } else {
                                    h.data
                                        .get("AccountId")
                                        .and_then(Value::as_str)
                                        .map(|a| (a.to_string(), None))
                                };
                                if let Some((id, name)) = account {
                                    if !accounts.iter().any(|a: &Candidate| a.id == id) {
                                        accounts.push(Candidate {
                                            id,
                                            kind: Kind::Account,
                                            name,
                                            account_id: None,
                                            owner_id: None,
                                            last_modified: None,
                                        });
                                    }
                                }
                            }
                        }
                    }
                }
            }
            per_call.push((who, accounts, missing));
        }
        // One SOSL search for the numbers the index does not know (records newer
        // than the last sync).
        if !unknown_numbers.is_empty() {
            let found = self
                .search_numbers(session, &unknown_numbers, region)
                .await?;
            for (who, _, missing) in per_call.iter_mut() {
                for number in missing.iter() {
                    for c in found.get(number).into_iter().flatten() {
                        if !who.iter().any(|x: &Candidate| x.id == c.id) {
                            who.push(c.clone());
                        }
                    }
                }
            }
        }
        // Owners: the mapped host, else the tenant's default owner, else the
        // connected (integration) user: never a silent failure.
        let mut owners: HashMap<String, Option<String>> = HashMap::new();
        for w in work.iter() {
            if let Some(host) = &w.call.host_user_id {
                if !owners.contains_key(host) {
                    owners.insert(
                        host.clone(),
                        store
                            .get_mapping(&tenant, host)
                            .await?
                            .map(|m| m.sf_user_id),
                    );
                }
            }
        }
        for (w, (who, accounts, _)) in work.iter_mut().zip(per_call) {
            let mapped = w
                .call
                .host_user_id
                .as_ref()
                .and_then(|h| owners.get(h).cloned().flatten());
            w.owner = match (mapped, &connection.default_owner_id, &connection.sf_user_id) {
                (Some(id), _, _) => Some((id, "mapped host")),
                (None, Some(default), _) => {
                    Some((default.clone(), "default owner (host not mapped)"))
                }
                (None, None, Some(integration)) => Some((
                    integration.clone(),
                    "connected user (host not mapped, no default owner)",
                )),
                (None, None, None) => None,
            };
            let host = w
                .owner
                .as_ref()
                .filter(|(_, s)| *s == "mapped host")
                .map(|(id, _)| id.as_str());
            let chosen = matching::choose_who(&who, host, policy);
            let opportunities = match &chosen {
                Some(c) if c.kind == Kind::Contact => {
                    self.opportunities_of(&tenant, &c.id, &mut w.names).await?
                }
                _ => Vec::new(),
            };
            let (what, reason) = matching::choose_what(
                chosen.as_ref(),
                &opportunities,
                &accounts,
                w.call.started_at,
                host,
                policy,
            );
            if let Some((id, _)) = &what {
                let known = accounts
                    .iter()
                    .find(|a| &a.id == id)
                    .and_then(|a| a.name.clone());
                let name = match known.or_else(|| w.names.get(id).cloned()) {
                    Some(n) => Some(n),
                    // The contact's account: its name is in the imported record.
                    None => store
                        .get_records(&tenant, std::slice::from_ref(id))
                        .await?
                        .into_iter()
                        .next()
                        .and_then(|r| {
                            r.fields
                                .get("Name")
                                .and_then(Value::as_str)
                                .map(str::to_string)
                        }),
                };
                if let Some(name) = name {
                    w.names.insert(id.clone(), name);
                }
            }
            let who_reason = match (&chosen, who.len()) {
                (None, _) => "no contact or lead matched".to_string(),
                (Some(c), 1) => format!("{:?} matched", c.kind),
                (Some(c), n) => format!("{:?} chosen among {n} matches", c.kind),
            };
            w.decision = Some(Decision {
                who: chosen,
                what,
                reason: format!("{who_reason}; {reason}"),
            });
        }
        Ok(())
    }

    async fn opportunities_of(
        &self,
        tenant: &TenantId,
        contact: &str,
        names: &mut HashMap<String, String>,
    ) -> Result<Vec<OpportunityCandidate>, StoreError> {
        let roles = self
            .app
            .store
            .query_index(
                tenant,
                &IndexKey {
                    kind: IndexKind::ContactOpportunity,
                    value: contact.to_string(),
                },
            )
            .await?;
        let primary: HashMap<String, bool> = roles
            .iter()
            .filter_map(|r| {
                let opp = r.data.get("OpportunityId")?.as_str()?.to_string();
                Some((
                    opp,
                    r.data
                        .get("IsPrimary")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                ))
            })
            .collect();
        if primary.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = primary.keys().cloned().collect();
        let records = self.app.store.get_records(tenant, &ids).await?;
        Ok(records
            .into_iter()
            .map(|r| {
                let f = &r.fields;
                let text = |k: &str| f.get(k).and_then(Value::as_str);
                if let Some(n) = text("Name") {
                    names.insert(r.id.clone(), n.to_string());
                }
                OpportunityCandidate {
                    primary_role: primary.get(&r.id).copied().unwrap_or(false),
                    name: text("Name").map(str::to_string),
                    owner_id: text("OwnerId").map(str::to_string),
                    last_modified: text("LastModifiedDate").and_then(parse_datetime),
                    created: text("CreatedDate").and_then(parse_datetime),
                    is_closed: f.get("IsClosed").and_then(Value::as_bool).unwrap_or(false),
                    close_date: text("CloseDate")
                        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
                    id: r.id,
                }
            })
            .collect())
    }

    /// One SOSL search for every variant of every number; results by E.164.
    async fn search_numbers(
        &self,
        session: &Session<'_, K, S>,
        numbers: &[String],
        region: &str,
    ) -> Result<HashMap<String, Vec<Candidate>>, WorkError> {
        let mut found: HashMap<String, Vec<Candidate>> = HashMap::new();
        let contact_fields = [
            &["Id", "Name", "AccountId", "OwnerId", "LastModifiedDate"][..],
            CONTACT_PHONES,
        ]
        .concat();
        let lead_fields = [
            &["Id", "Name", "OwnerId", "LastModifiedDate", "IsConverted"][..],
            LEAD_PHONES,
        ]
        .concat();
        for chunk in numbers.chunks(50) {
            // Each number's variants, computed once: searched for, then matched
            // against every record found.
            let searched: Vec<(&String, Vec<String>)> = chunk
                .iter()
                .map(|n| (n, normalize::phone_search_variants(n)))
                .collect();
            let variants: Vec<String> = searched
                .iter()
                .flat_map(|(_, v)| v.iter().cloned())
                .collect();
            let Some(sosl) = PhoneSearch::new(variants)
                .returning("Contact", &contact_fields)
                .returning("Lead", &lead_fields)
                .render()
            else {
                continue;
            };
            for r in session.search(&sosl).await? {
                let kind = match r
                    .get("attributes")
                    .and_then(|a| a.get("type"))
                    .and_then(Value::as_str)
                {
                    Some("Contact") => Kind::Contact,
                    Some("Lead") if r.get("IsConverted") != Some(&Value::Bool(true)) => Kind::Lead,
                    _ => continue,
                };
                let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
                let candidate = Candidate {
                    id: text("Id").unwrap_or_default(),
                    kind,
                    name: text("Name"),
                    account_id: text("AccountId"),
                    owner_id: text("OwnerId"),
                    last_modified: text("LastModifiedDate").and_then(|d| parse_datetime(&d)),
                };
                // Which searched numbers this record carries: a stored phone is
                // compared by its digits with every variant of each number, so one
                // typed in another country's national format still counts.
                let stored: Vec<String> = CONTACT_PHONES
                    .iter()
                    .filter_map(|f| r.get(*f).and_then(Value::as_str))
                    .flat_map(|p| {
                        let digits: String = p.chars().filter(char::is_ascii_digit).collect();
                        let e164 = normalize::phone_e164(p, region)
                            .map(|e| e.trim_start_matches('+').to_string());
                        [Some(digits), e164].into_iter().flatten()
                    })
                    .collect();
                for (number, number_variants) in &searched {
                    if number_variants.iter().any(|v| stored.contains(v)) {
                        let list = found.entry((*number).clone()).or_default();
                        if !list.iter().any(|c| c.id == candidate.id) {
                            list.push(candidate.clone());
                        }
                    }
                }
            }
        }
        Ok(found)
    }

    /// One query for the batch: our Tasks (CallObject) and candidate dialer Tasks.
    async fn lookup_tasks(
        &self,
        session: &Session<'_, K, S>,
        work: &[Claimed],
    ) -> Result<Vec<Map<String, Value>>, WorkError> {
        let call_objects: Vec<String> = work.iter().map(|w| w.call.call_object()).collect();
        let whos: Vec<String> = work
            .iter()
            .filter_map(|w| w.decision.as_ref()?.who.as_ref().map(|c| c.id.clone()))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let owners: Vec<String> = work
            .iter()
            .filter_map(|w| w.owner.as_ref().map(|(id, _)| id.clone()))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let from = work
            .iter()
            .map(|w| w.call.started_at)
            .min()
            .unwrap_or_else(Utc::now)
            - chrono::Duration::seconds(DIALER_BEFORE);
        let to = work
            .iter()
            .map(|w| w.call.started_at + chrono::Duration::seconds(w.call.duration_seconds as i64))
            .max()
            .unwrap_or_else(Utc::now)
            + chrono::Duration::seconds(DIALER_AFTER);
        let mut dialer_links = Vec::new();
        if !whos.is_empty() {
            dialer_links.push(Cond::is_in("WhoId", whos));
        }
        if !owners.is_empty() {
            dialer_links.push(Cond::and([
                Cond::eq("WhoId", Literal::Null),
                Cond::is_in("OwnerId", owners),
            ]));
        }
        let mut any = vec![Cond::is_in("CallObject", call_objects)];
        if !dialer_links.is_empty() {
            any.push(Cond::and([
                Cond::eq("TaskSubtype", "Call"),
                Cond::ge("CreatedDate", from),
                Cond::le("CreatedDate", to),
                Cond::or(dialer_links),
            ]));
        }
        let soql = Select::new(
            "Task",
            &[
                "Id",
                "Subject",
                "WhoId",
                "WhatId",
                "OwnerId",
                "CallObject",
                "CallType",
                "CallDisposition",
                "Description",
                "CreatedDate",
            ],
        )
        .filter(Cond::or(any))
        .render()
        .map_err(SalesforceError::from)?;
        Ok(session.query_all_pages(&soql, false).await?)
    }
}

/// The dialer's Task for this call: a call Task created around the call's start,
/// on the same Who (or, without one, with the call's number in its text, owned
/// by the same rep), in the same direction, not linked to another Modjo call.
fn find_dialer_task<'t>(
    tasks: &'t [Map<String, Value>],
    w: &Claimed,
    decision: &Decision,
    taken: &HashSet<String>,
    region: &str,
) -> Option<&'t Map<String, Value>> {
    let start = w.call.started_at;
    let from = start - chrono::Duration::seconds(DIALER_BEFORE);
    let to = start
        + chrono::Duration::seconds(w.call.duration_seconds as i64)
        + chrono::Duration::seconds(DIALER_AFTER);
    let digits: Vec<String> = w
        .call
        .participants
        .iter()
        .filter(|p| p.role == Role::External)
        .filter_map(|p| p.phone.as_deref())
        .flat_map(|p| match normalize::phone_e164(p, region) {
            Some(e) => normalize::phone_search_variants(&e),
            None => vec![p.chars().filter(char::is_ascii_digit).collect()],
        })
        .filter(|d| d.len() >= 6)
        .collect();
    let who = decision.who.as_ref().map(|c| c.id.as_str());
    let owner = w.owner.as_ref().map(|(id, _)| id.as_str());
    let our_url = w.call.url.trim();
    tasks
        .iter()
        .filter(|t| {
            let text = |k: &str| t.get(k).and_then(Value::as_str);
            let id = text("Id").unwrap_or_default();
            if taken.contains(id) || text("CallObject").is_some_and(|c| c.starts_with("modjo:")) {
                return false;
            }
            let Some(created) = text("CreatedDate").and_then(parse_datetime) else {
                return false;
            };
            if created < from || created > to {
                return false;
            }
            if let (Some(theirs), Some(ours)) = (text("CallType"), w.call.direction.call_type()) {
                if theirs != ours {
                    return false;
                }
            }
            if let Some(url) = text("Description").and_then(render::linked_call_url) {
                if url != our_url {
                    return false; // another Modjo call's Task
                }
            }
            match (text("WhoId"), who) {
                (Some(theirs), Some(ours)) => same_id(theirs, ours),
                (None, _) => {
                    let haystack: String = [
                        text("Subject"),
                        text("CallDisposition"),
                        text("Description"),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect();
                    owner.is_some()
                        && text("OwnerId")
                            .zip(owner)
                            .is_some_and(|(a, b)| same_id(a, b))
                        && digits.iter().any(|d| haystack.contains(d.as_str()))
                }
                _ => false,
            }
        })
        .min_by_key(|t| {
            t.get("CreatedDate")
                .and_then(Value::as_str)
                .and_then(parse_datetime)
                .map(|c| (c - start).num_seconds().abs())
                .unwrap_or(i64::MAX)
        })
}

struct ClaimRefused;

fn add_candidates(hits: &[IndexEntry], who: &mut Vec<Candidate>, accounts: &mut Vec<Candidate>) {
    for h in hits {
        let text = |k: &str| h.data.get(k).and_then(Value::as_str).map(str::to_string);
        let kind = match h.object.as_str() {
            "Contact" => Kind::Contact,
            "Lead" => Kind::Lead,
            "Account" => Kind::Account,
            _ => continue, // users are internal, never a call's contact
        };
        let candidate = Candidate {
            id: h.record_id.clone(),
            kind,
            name: text("Name"),
            account_id: text("AccountId"),
            owner_id: text("OwnerId"),
            last_modified: text("LastModifiedDate").and_then(|d| parse_datetime(&d)),
        };
        let list = if kind == Kind::Account {
            &mut *accounts
        } else {
            &mut *who
        };
        if !list.iter().any(|c| c.id == candidate.id) {
            list.push(candidate);
        }
    }
}

/// The Task we create for a call (DESIGN §6, step 3).
fn task_fields(w: &Claimed, decision: &Decision, description: String) -> Map<String, Value> {
    let who_name = decision.who.as_ref().and_then(|c| c.name.clone());
    let subject = w
        .call
        .title
        .as_deref()
        .map(render::one_line)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| match &who_name {
            Some(n) => format!("{} with {n}", w.call.direction.label()),
            None => w.call.direction.label().to_string(),
        });
    let subject: String = subject.chars().take(255).collect();
    let mut fields = Map::new();
    fields.insert("Subject".into(), json!(subject));
    fields.insert("TaskSubtype".into(), json!("Call"));
    if let Some(t) = w.call.direction.call_type() {
        fields.insert("CallType".into(), json!(t));
    }
    fields.insert(
        "CallDurationInSeconds".into(),
        json!(w.call.duration_seconds),
    );
    fields.insert("CallObject".into(), json!(w.call.call_object()));
    fields.insert(
        "ActivityDate".into(),
        json!(w.call.started_at.format("%Y-%m-%d").to_string()),
    );
    fields.insert("Status".into(), json!("Completed"));
    if let Some(who) = &decision.who {
        fields.insert("WhoId".into(), json!(who.id));
    }
    if let Some((what, _)) = &decision.what {
        fields.insert("WhatId".into(), json!(what));
    }
    if let Some((owner, _)) = &w.owner {
        fields.insert("OwnerId".into(), json!(owner));
    }
    fields.insert("Description".into(), json!(description));
    fields
}
