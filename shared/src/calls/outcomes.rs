//! Phase 8: what each call became, recorded. Outcomes are written together, each
//! only while this invocation's claim on its call holds; the verdict SQS gets
//! follows from what was recorded. Also: refusals (the dead-letter queue), the
//! mark of parked calls, and their replay once the tenant can log again.

use chrono::Utc;

use super::claim::Claimed;
use super::{CallLogger, CallLoggerStore, Delivery, Settled, Verdict};
use crate::domain::call_event::Invalid;
use crate::domain::{Activity, CallOutcome, CallState, LinkedRecord, ModjoMatch, TenantId};
use crate::error::{Classify, ErrorClass};
use crate::ports::{
    CallStore, ConnectionStore, JobQueue, SalesforceSessions, StoreError, TenantMessage,
};
use crate::salesforce::id::same_id;
use crate::salesforce::{ApiError, RecordResult, Written};
use crate::work::WorkError;
use crate::work::update_connection;

/// A call failing for a transient reason on this receive (or later) is parked
/// instead of retried: its remaining receives are kept for what a retry can fix,
/// and it never reaches the dead-letter queue for Salesforce's sake.
pub const PARK_AFTER_RECEIVES: u32 = 3;

/// How a call ended in this invocation.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum End {
    /// Its Task exists in Salesforce: created, or the dialer's enriched.
    Logged { state: CallState, task: TaskLinks },
    /// Nothing matched: no Task.
    Unmatched(String),
    /// Parked with its message, replayed when the tenant can log again.
    Waiting(String),
    /// Refused for good; `dead_letter` sends the message to the dead-letter queue.
    Failed { reason: String, dead_letter: bool },
    /// Given back after a transient failure: SQS redelivers it.
    Released(String),
}

/// The Task as Salesforce has it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TaskLinks {
    pub id: String,
    pub who_id: Option<String>,
    pub what_id: Option<String>,
}

/// How one row of a collections write of `activity`s (Tasks or Events) ends its
/// call: logged, released to be retried (a transient row error such as a row
/// lock), or failed with Salesforce's reason.
fn row_end(activity: Activity, state: CallState, links: TaskLinks, result: &RecordResult) -> End {
    if result.success {
        return End::Logged { state, task: links };
    }
    let codes: Vec<String> = result
        .errors
        .iter()
        .map(|e| format!("{}: {}", e.code, e.message))
        .collect();
    if result.errors.iter().any(ApiError::is_transient_row_error) {
        End::Released(codes.join("; "))
    } else {
        End::Failed {
            reason: format!(
                "Salesforce refused the {}: {}",
                activity.object(),
                codes.join("; ")
            ),
            dead_letter: true,
        }
    }
}

/// One call's activity in a write: which call, the state the write gives it,
/// and the links the activity will have.
pub(super) struct Row {
    pub call: usize,
    pub state: CallState,
    pub links: TaskLinks,
}

/// Ends the calls of a [`Written`] batch of `activity`s: each row of `created`
/// and `updated` (in the order they were sent) ends its own call, a created
/// row taking the new record's id. A side Salesforce refused as a whole is
/// returned as the error, after the other side's rows have ended their calls.
pub(super) fn end_rows(
    activity: Activity,
    work: &mut [Claimed],
    written: Written,
    created: Vec<Row>,
    updated: Vec<Row>,
) -> Result<(), WorkError> {
    let mut refused = None;
    for (rows, results) in [(created, written.created), (updated, written.updated)] {
        match results {
            Ok(results) => {
                for (mut row, result) in rows.into_iter().zip(results) {
                    if let Some(id) = result.id.clone() {
                        row.links.id = id;
                    }
                    work[row.call].end = Some(row_end(activity, row.state, row.links, &result));
                }
            }
            Err(e) => refused = refused.or(Some(e)),
        }
    }
    refused.map_or(Ok(()), |e| Err(e.into()))
}

/// How an error of the batch's Salesforce work ends the calls it left open.
pub(super) fn ended_by(
    e: &WorkError,
    answered: bool,
    claimed: &mut [Claimed],
    deliveries: &[Delivery],
) {
    let class = e.class();
    let salesforce = match e {
        WorkError::Salesforce(sf) => Some(sf),
        WorkError::Store(_) => None,
    };
    tracing::warn!(error = %e, class = %class, "batch not logged");
    for c in claimed.iter_mut().filter(|c| c.end.is_none()) {
        let receives = deliveries[c.delivery].receive_count;
        c.end = Some(match (class, salesforce) {
            (ErrorClass::NeedsReauth, _) => {
                End::Waiting("waiting: the Salesforce connection must be re-authorised".into())
            }
            (_, Some(sf)) if sf.is_allocation_spent() => End::Waiting(format!(
                "waiting: the org's daily API allocation is spent ({sf})"
            )),
            // Salesforce down or out of reach: an outage is not this call's failure.
            (ErrorClass::Retryable, Some(sf)) if sf.is_unavailability() && !answered => {
                End::Waiting(format!(
                    "waiting: Salesforce is unavailable ({sf}); the call is logged when it answers again"
                ))
            }
            (ErrorClass::Retryable, Some(sf)) if receives >= PARK_AFTER_RECEIVES => {
                End::Waiting(format!(
                    "waiting: Salesforce kept failing ({sf}); the call is logged when it answers again"
                ))
            }
            (ErrorClass::Retryable, _) => End::Released(e.to_string()),
            (ErrorClass::Permanent, _) => End::Failed {
                reason: e.to_string(),
                dead_letter: salesforce.is_some(),
            },
        });
    }
}

/// The outcome recorded for a claimed call that has ended; it expires
/// `retention_days` after the call started.
pub(super) fn outcome_of(w: &Claimed, body: &str, retention_days: u16) -> CallOutcome {
    let now = Utc::now();
    let mut outcome = CallOutcome {
        message: Some(body.to_string()),
        started_at: Some(w.call.started_at),
        expires_at: Some(crate::domain::retention::expires_at(
            w.call.started_at,
            retention_days,
        )),
        version: w.version,
        ..CallOutcome::new(&w.call.call_id, CallState::InProgress, now)
    };
    match w.end.clone() {
        Some(End::Logged { state, task }) => logged(&mut outcome, w, state, task),
        Some(End::Unmatched(reason)) => {
            outcome.state = CallState::Unmatched;
            outcome.reason = Some(reason);
        }
        Some(End::Waiting(reason)) => {
            outcome.state = CallState::Waiting;
            outcome.reason = Some(reason);
        }
        Some(End::Failed { reason, .. }) => {
            outcome.state = CallState::Failed;
            outcome.reason = Some(reason);
        }
        Some(End::Released(why)) => {
            outcome.claimed_until = Some(now);
            outcome.reason = Some(format!("retrying: {why}"));
        }
        None => {
            outcome.claimed_until = Some(now);
            outcome.reason = Some("retrying: not worked in this invocation".into());
        }
    }
    outcome
}

/// A logged call: the Task's own Who and What, and Modjo's match when it differs.
fn logged(outcome: &mut CallOutcome, w: &Claimed, state: CallState, task: TaskLinks) {
    let decision = w.decision.as_ref();
    let matched_who = decision.and_then(|d| d.who.as_ref());
    let matched_what = decision.and_then(|d| d.what.as_ref());
    let link = |id: &str, object: &str| LinkedRecord {
        id: id.to_string(),
        object: object.to_string(),
        name: w.names.get(id).cloned().or_else(|| {
            matched_who
                .filter(|c| same_id(&c.id, id))
                .and_then(|c| c.name.clone())
        }),
    };
    let links = |who: Option<&str>, what: Option<&str>| -> Vec<LinkedRecord> {
        who.map(|id| link(id, object_of(id)))
            .into_iter()
            .chain(what.map(|id| link(id, object_of(id))))
            .collect()
    };
    outcome.state = state;
    outcome.activity = w.activity;
    outcome.note = w.note.clone();
    outcome.note_problem = w.note_problem.clone();
    outcome.task_id = Some(task.id.clone());
    outcome.owner_id = w.owner.as_ref().map(|o| o.id.clone());
    outcome.linked = links(task.who_id.as_deref(), task.what_id.as_deref());
    outcome.who_id = task.who_id.clone();
    outcome.what_id = task.what_id.clone();
    if let Some(d) = decision.filter(|d| !d.others.is_empty()) {
        outcome.candidates = d
            .who
            .iter()
            .chain(&d.others)
            .map(|c| LinkedRecord {
                id: c.id.clone(),
                object: object_of(&c.id).to_string(),
                name: c.name.clone(),
            })
            .collect();
    }
    outcome.reason = decision.map(|d| match &w.owner {
        Some(o) => format!("{}; owner: {}", d.reason, o.source.describe()),
        None => d.reason.clone(),
    });
    let same = |a: Option<&str>, b: Option<&str>| match (a, b) {
        (Some(a), Some(b)) => same_id(a, b),
        (None, None) => true,
        _ => false,
    };
    let (who, what) = (
        matched_who.map(|c| c.id.as_str()),
        matched_what.map(|(id, _)| id.as_str()),
    );
    if !same(who, task.who_id.as_deref()) || !same(what, task.what_id.as_deref()) {
        let reason = match (state, w.activity) {
            (CallState::Enriched, crate::domain::Activity::Event) => {
                "the calendar's Event keeps the Who and What it had"
            }
            (CallState::Enriched, _) => "the dialer's Task keeps the Who and What its dialer set",
            _ => "the activity's Who and What were changed in Salesforce",
        };
        outcome.modjo_match = Some(ModjoMatch {
            who_id: who.map(str::to_string),
            what_id: what.map(str::to_string),
            linked: links(who, what),
            reason: reason.to_string(),
        });
    }
}

/// The object of a Salesforce id, by its key prefix.
pub(super) fn object_of(id: &str) -> &'static str {
    match id.get(..3) {
        Some("003") => "Contact",
        Some("00Q") => "Lead",
        Some("001") => "Account",
        Some("006") => "Opportunity",
        Some("005") => "User",
        _ => "Record",
    }
}

/// A delivery's verdict, and where its call was left when that changed.
pub(super) type Recorded = ((usize, Verdict), Option<Settled>);

/// Records every claimed call's outcome in few requests, then the verdicts: what
/// was recorded is done (a refusal also reaches the dead-letter queue), what was
/// given back or could not be recorded comes back from SQS. Also returns the
/// outcomes recorded for calls whose Task now exists.
pub(super) async fn record<S: CallStore, Q: JobQueue>(
    store: &S,
    dead_letters: &Q,
    tenant: &TenantId,
    retention_days: u16,
    claimed: &[Claimed],
    deliveries: &[Delivery],
) -> (Vec<Recorded>, Vec<CallOutcome>) {
    let outcomes: Vec<CallOutcome> = claimed
        .iter()
        .map(|c| outcome_of(c, &deliveries[c.delivery].body, retention_days))
        .collect();
    let results = match store.save_outcomes(tenant, &outcomes).await {
        Ok(results) => results,
        Err(e) => {
            tracing::warn!(tenant_id = %tenant, error = %e, "outcomes not saved; SQS redelivers the calls");
            let verdicts = claimed
                .iter()
                .map(|c| ((c.delivery, Verdict::Retry), None))
                .collect();
            return (verdicts, Vec::new());
        }
    };
    let mut verdicts = Vec::with_capacity(claimed.len());
    let mut logged = Vec::new();
    for ((c, outcome), saved) in claimed.iter().zip(&outcomes).zip(results) {
        let d = &deliveries[c.delivery];
        if let (Ok(stored), Some(End::Logged { .. })) = (&saved, &c.end) {
            logged.push(stored.clone());
        }
        let settled = match (&saved, &c.end) {
            (Ok(_), Some(End::Released(_)) | None) | (Err(_), _) => None,
            (
                Ok(_),
                Some(End::Failed {
                    dead_letter: true, ..
                }),
            ) => Some(Settled::DeadLettered),
            (Ok(_), Some(_)) => Some(Settled::State(outcome.state)),
        };
        let verdict = match (saved, &c.end) {
            (_, Some(End::Released(_)) | None) => Verdict::Retry,
            (
                Ok(_),
                Some(End::Failed {
                    reason,
                    dead_letter: true,
                }),
            ) => {
                tracing::warn!(tenant_id = %tenant, call_id = %c.call.call_id, reason, "call failed");
                dead_letter(dead_letters, d, reason).await
            }
            (Ok(_), _) => {
                tracing::info!(tenant_id = %tenant, call_id = %c.call.call_id, state = ?outcome.state, task_id = ?outcome.task_id, "call recorded");
                Verdict::Done
            }
            // Another invocation took the call over (this one's claim had expired).
            (Err(StoreError::Conflict(_)), _) => Verdict::Done,
            (Err(e), _) => {
                tracing::warn!(tenant_id = %tenant, call_id = %c.call.call_id, error = %e, "outcome not saved; SQS redelivers the call");
                Verdict::Retry
            }
        };
        // A refusal whose dead-letter send failed comes back from SQS: not counted yet.
        let settled = settled.filter(|_| verdict == Verdict::Done);
        verdicts.push(((c.delivery, verdict), settled));
    }
    (verdicts, logged)
}

/// Sends the message to the dead-letter queue with its reason. If that fails the
/// message is not acknowledged: SQS delivers it again rather than lose it.
async fn dead_letter<Q: JobQueue>(queue: &Q, d: &Delivery, reason: &str) -> Verdict {
    match queue.dead_letter(&d.body, reason).await {
        Ok(()) => Verdict::Done,
        Err(e) => {
            tracing::error!(message_id = %d.message_id, error = %e, "dead-letter send failed; SQS redelivers the message");
            Verdict::Retry
        }
    }
}

impl<S: CallLoggerStore, C: SalesforceSessions, Q: JobQueue> CallLogger<'_, S, C, Q> {
    /// A message that cannot be a valid call goes to the dead-letter queue with its
    /// reason. It changes no call already recorded: a failed outcome is written only
    /// where the call has none (and the tenant exists).
    pub(super) async fn refuse(&self, d: &Delivery, invalid: Invalid) -> Verdict {
        tracing::warn!(message_id = %d.message_id, reason = %invalid.reason, "call event refused");
        if let (Some(tenant), Some(call_id)) = (&invalid.tenant, &invalid.call_id) {
            if let Ok(Some(connection)) = self.store.get_connection(tenant).await {
                let outcome = CallOutcome {
                    reason: Some(format!("invalid message: {}", invalid.reason)),
                    message: Some(d.body.clone()),
                    expires_at: Some(crate::domain::retention::expires_at(
                        Utc::now(),
                        connection.retention_days,
                    )),
                    ..CallOutcome::new(call_id, CallState::Failed, Utc::now())
                };
                // Version 0: only if the call has no outcome yet.
                match self.store.save_outcome(tenant, &outcome).await {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => {
                        tracing::warn!(tenant_id = %tenant, error = %e, "refusal not recorded")
                    }
                }
            }
        }
        let verdict = dead_letter(self.dead_letters, d, &invalid.reason).await;
        if verdict == Verdict::Done {
            self.count(Settled::DeadLettered);
        }
        verdict
    }

    /// Calls of a tenant that has no connection: dead-lettered, nothing stored.
    pub(super) async fn unknown_tenant(
        &self,
        tenant: &TenantId,
        calls: &[(usize, crate::domain::call_event::CallEvent)],
        deliveries: &[Delivery],
    ) -> Vec<(usize, Verdict)> {
        let reason = format!("unknown tenant {tenant}: no Salesforce connection");
        let mut out = Vec::with_capacity(calls.len());
        for (i, call) in calls {
            tracing::warn!(tenant_id = %tenant, call_id = %call.call_id, "{reason}");
            out.push((
                *i,
                dead_letter(self.dead_letters, &deliveries[*i], &reason).await,
            ));
        }
        out
    }
}

/// Marks the tenant as having parked calls (if not marked already).
pub async fn mark_waiting<S: ConnectionStore>(
    store: &S,
    tenant: &TenantId,
) -> Result<(), StoreError> {
    update_connection(store, tenant, |c| {
        if c.calls_waiting_since.is_some() {
            return false;
        }
        c.calls_waiting_since = Some(Utc::now());
        true
    })
    .await
    .map(|_| ())
}

/// Replays the tenant's parked calls once: whoever clears the tenant's mark sends
/// every waiting call to `queue` (the call logger is idempotent); the others send
/// nothing. A call parked after the mark was cleared marks it again, so it waits
/// for the next chance. Returns how many calls were sent.
pub async fn replay_parked<S: ConnectionStore + CallStore, Q: JobQueue>(
    store: &S,
    tenant: &TenantId,
    queue: &Q,
) -> Result<usize, StoreError> {
    let mut took = false;
    update_connection(store, tenant, |c| {
        took = c.calls_waiting_since.take().is_some();
        took
    })
    .await?;
    if !took {
        return Ok(0);
    }
    let sent = send_waiting(store, tenant, queue).await;
    if sent.is_err() {
        // Not all sent: the next chance replays them.
        mark_waiting(store, tenant).await?;
    }
    sent
}

async fn send_waiting<S: CallStore, Q: JobQueue>(
    store: &S,
    tenant: &TenantId,
    queue: &Q,
) -> Result<usize, StoreError> {
    let mut replayed = 0;
    let mut token = None;
    loop {
        let page = store.waiting_calls(tenant, token).await?;
        let messages: Vec<TenantMessage> = page
            .items
            .iter()
            .filter_map(|o| {
                o.message
                    .as_ref()
                    .map(|m| TenantMessage::new(tenant, m.clone()))
            })
            .collect();
        queue.send_all(&messages).await?;
        replayed += messages.len();
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(replayed),
        }
    }
}
