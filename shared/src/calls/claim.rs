//! Phase 3: claims. Every call of a tenant's batch is claimed in one transaction,
//! without reading it first; what a refused claim found comes back with the
//! refusal. And whether the tenant can log calls now at all.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::outcomes::End;
use super::{CallLogger, CallLoggerStore, Delivery, Verdict};
use crate::domain::call_event::CallEvent;
use crate::domain::matching::Decision;
use crate::domain::{ApiUsage, Connection, ConnectionStatus, StoredComment, TenantId};
use crate::ports::{CallClaim, CallStore, ClaimResult, JobQueue, SalesforceSessions};
use crate::salesforce::Usage;
use crate::salesforce::limits::{BudgetDecision, Work, decide};

/// How long a claim protects a call being logged: longer than the call logger's
/// Lambda timeout (120 s), so that no live invocation outlives its claim.
pub const CLAIM_TTL: Duration = Duration::from_secs(180);

/// A call this invocation claimed, and what becomes of it.
pub(super) struct Claimed {
    /// Its delivery in the batch.
    pub delivery: usize,
    pub call: CallEvent,
    /// The claim's version: the outcome is written only while it holds.
    pub version: u64,
    pub decision: Option<Decision>,
    pub owner: Option<Owner>,
    /// Names of the records the call may be linked to, by id.
    pub names: HashMap<String, String>,
    pub comments: Vec<StoredComment>,
    /// The call's comment-state version when its comments were read (`None`: it
    /// had none), to tell whether more came while it was being logged.
    pub comments_version: Option<u64>,
    /// How the call ended in this invocation; `None` while it is being worked.
    pub end: Option<End>,
    /// The activity it is logged as (an Event for a meeting with its calendar event).
    pub activity: crate::domain::Activity,
    /// Its activity was found already written (an earlier invocation got that
    /// far, then lost its outcome): its Note may exist too.
    pub written_before: bool,
    /// Its Note, when one was written ([`super::notes`]).
    pub note: Option<crate::domain::CallNote>,
    /// Why it has no Note although the tenant asked for one.
    pub note_problem: Option<String>,
}

/// Who owns the call's Task, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Owner {
    pub id: String,
    pub source: OwnerSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OwnerSource {
    /// The call's host, mapped to a Salesforce user.
    MappedHost,
    /// The tenant's default owner: the host is not mapped.
    DefaultOwner,
    /// The connected (integration) user: no mapping, no default owner.
    ConnectedUser,
}

impl OwnerSource {
    pub fn describe(self) -> &'static str {
        match self {
            OwnerSource::MappedHost => "mapped host",
            OwnerSource::DefaultOwner => "default owner (host not mapped)",
            OwnerSource::ConnectedUser => "connected user (host not mapped, no default owner)",
        }
    }
}

impl Claimed {
    /// A call being matched again (issue 19): no delivery, and its outcome's
    /// version in place of a claim's (its outcome is written only if unchanged).
    pub fn rematching(call: CallEvent, version: u64) -> Self {
        Self::new(0, call, version)
    }

    /// The call of delivery `delivery`, claimed at `version`, before any work.
    fn new(delivery: usize, call: CallEvent, version: u64) -> Self {
        Self {
            delivery,
            call,
            version,
            decision: None,
            owner: None,
            names: HashMap::new(),
            comments: Vec::new(),
            comments_version: None,
            end: None,
            activity: crate::domain::Activity::Task,
            written_before: false,
            note: None,
            note_problem: None,
        }
    }

    /// Whether the call matched a Who or a What (it will have a Task).
    pub fn matched(&self) -> bool {
        self.decision
            .as_ref()
            .is_some_and(|d| d.who.is_some() || d.what.is_some())
    }

    pub fn is_waiting(&self) -> bool {
        matches!(self.end, Some(End::Waiting(_)))
    }

    /// The mapped host's Salesforce user, when the owner is the host.
    pub fn host(&self) -> Option<&str> {
        self.owner
            .as_ref()
            .filter(|o| o.source == OwnerSource::MappedHost)
            .map(|o| o.id.as_str())
    }
}

/// The distinct owners of `work`'s activities, for a batch-wide lookup.
pub(super) fn owners(work: &[&Claimed]) -> Vec<String> {
    let owners: std::collections::HashSet<&str> = work
        .iter()
        .filter_map(|w| w.owner.as_ref().map(|o| o.id.as_str()))
        .collect();
    owners.into_iter().map(str::to_string).collect()
}

/// A call delivered again after it was logged: its message and its outcome.
/// Nothing is logged again; only its Note may change ([`super::notes::refresh`]).
pub(super) struct Final {
    pub delivery: usize,
    pub call: CallEvent,
    pub outcome: crate::domain::CallOutcome,
}

/// Claims `calls` for this invocation. Returns the claimed calls, the final
/// ones (duplicates: done, but for their Note), and the verdicts of the others:
/// another invocation's live claim is retried once it has expired, a claim that
/// could not be written is retried.
pub(super) async fn claim<S: CallStore>(
    store: &S,
    tenant: &TenantId,
    calls: Vec<(usize, CallEvent)>,
    deliveries: &[Delivery],
) -> (Vec<Claimed>, Vec<Final>, Vec<(usize, Verdict)>) {
    let now = Utc::now();
    let version = claim_version(now);
    let until = now + chrono::Duration::from_std(CLAIM_TTL).unwrap_or_default();
    let claims: Vec<CallClaim> = calls
        .iter()
        .map(|(_, call)| CallClaim {
            call_id: call.call_id.clone(),
            until,
            version,
        })
        .collect();
    let results = match store.claim_calls(tenant, &claims, now).await {
        Ok(results) => results,
        Err(e) => calls
            .iter()
            .map(|_| Err(crate::ports::StoreError::Unavailable(e.to_string())))
            .collect(),
    };
    let mut claimed = Vec::new();
    let mut finals = Vec::new();
    let mut verdicts = Vec::new();
    for ((i, call), result) in calls.into_iter().zip(results) {
        match result {
            Ok(ClaimResult::Claimed) => claimed.push(Claimed::new(i, call, version)),
            Ok(ClaimResult::Final(outcome)) => finals.push(Final {
                delivery: i,
                call,
                outcome: *outcome,
            }),
            Ok(ClaimResult::Busy { until }) => {
                // Back when the other invocation's claim has expired, not sooner.
                let left = (until - Utc::now()).to_std().unwrap_or_default();
                tracing::info!(tenant_id = %tenant, call_id = %call.call_id, message_id = %deliveries[i].message_id, "call claimed by another invocation");
                verdicts.push((i, Verdict::RetryAfter(left + Duration::from_secs(1))));
            }
            Err(e) => {
                tracing::warn!(tenant_id = %tenant, call_id = %call.call_id, error = %e, "call not claimed; SQS redelivers it");
                verdicts.push((i, Verdict::Retry));
            }
        }
    }
    (claimed, finals, verdicts)
}

/// A claim's version: a fresh number, larger than any earlier claim's of the call.
fn claim_version(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp_micros()).unwrap_or(1)
}

impl<S: CallLoggerStore, C: SalesforceSessions, Q: JobQueue> CallLogger<'_, S, C, Q> {
    /// How the calls end when the tenant cannot log now: parked until it can, or
    /// refused. `None` when it can.
    pub(super) fn blocked(&self, tenant: &TenantId, connection: &Connection) -> Option<End> {
        match connection.status {
            ConnectionStatus::Connected => self.over_budget(tenant, connection).map(End::Waiting),
            ConnectionStatus::NeedsReauth => Some(End::Waiting(
                "waiting: the Salesforce connection must be re-authorised".into(),
            )),
            ConnectionStatus::Pending => Some(End::Waiting(
                "waiting: Salesforce is not connected yet".into(),
            )),
            ConnectionStatus::Disconnected => Some(End::Failed {
                reason: "Salesforce is disconnected".into(),
                dead_letter: false,
            }),
        }
    }

    /// The reason to defer, when the org's usage is at or above the call-logging threshold.
    fn over_budget(&self, tenant: &TenantId, connection: &Connection) -> Option<String> {
        // The most recent fresh reading: this container's, or the one a job stored.
        let live = self.salesforce.fresh_usage(tenant).map(Usage::to_api_usage);
        let usage = [live, connection.api_usage]
            .into_iter()
            .flatten()
            .filter(ApiUsage::is_fresh)
            .max_by_key(|u| u.observed_at)?;
        match decide(self.budget, Work::CallLogging, usage.used, usage.max) {
            BudgetDecision::Wait {
                used_percent,
                threshold,
            } => Some(format!(
                "waiting: the org has used {used_percent}% of its daily API allocation (call logging waits at {threshold}%)"
            )),
            BudgetDecision::Proceed => None,
        }
    }
}
