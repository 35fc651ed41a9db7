//! The call logger (DESIGN §6): every call in Salesforce exactly once, on the
//! right records, with the fewest Salesforce API calls and few DynamoDB requests.
//!
//! A batch (the template delivers up to 100 messages) is worked in phases, each
//! issuing batch-wide, concurrent requests. One call's conflict or failure never
//! fails the others: every phase records per call how it ended.
//!
//! 1. **Validate** each message ([`crate::domain::call_event`]). An invalid one goes to the dead-letter
//!    queue with its reason and changes nothing already recorded for its call.
//! 2. Per tenant (several tenants at once): read the connection.
//! 3. **Claim** every call of the tenant in one transaction, without reading first
//!    ([`claim`]): a final call is a duplicate, another invocation's live claim is
//!    retried when it ends. Calls that cannot be logged now are parked (`waiting`,
//!    message kept whole) or refused (disconnected).
//! 4. **Candidates** ([`candidates`]): index lookups de-duplicated across the batch,
//!    one SOSL search for the numbers the index does not know, the hosts' mappings,
//!    the contacts' opportunities and the records' names, then Who and What
//!    ([`crate::domain::matching`]).
//! 5. **Comments** ([`comments`]) of the calls that have some, from one read of their
//!    states; those stored while the call was logged are rendered after its outcome,
//!    and again when the call is delivered again.
//! 6. **Dialer Tasks** ([`dialer`]): one query finds the Tasks we created before (by
//!    `CallObject`) and the dialers' Tasks.
//! 7. **Event writes** ([`events`]): meetings with a calendar event, on the
//!    calendar's Event (found by one query for the batch) or a new one. Then the
//!    **Task writes** ([`tasks`]): the creates and the updates as two sObject
//!    Collections in one composite request.
//!    Then the **Notes** ([`notes`], a tenant setting): the logged calls'
//!    summaries as Salesforce Notes, in one composite request. A call delivered
//!    again after it was logged only has its Note brought up to date.
//! 8. **Outcomes** ([`outcomes`]): written together, each only while its claim holds.
//!
//! Exactly once: the claim keeps concurrent deliveries apart, and the Task we create
//! carries `CallObject = modjo:<callId>`, so a retry after a crash between the
//! Salesforce write and the outcome write finds it instead of creating another.
//! Nothing is lost: a call that cannot be logged now (reconnect needed, API budget
//! spent, Salesforce down) waits with its message and is replayed once when the
//! tenant can log again ([`outcomes::replay_parked`]).

mod calendar;
mod candidates;
mod claim;
mod comments;
mod dialer;
mod events;
pub mod handler;
pub mod link;
mod notes;
pub mod outcomes;
pub mod rematch;
mod tasks;

use std::collections::{HashMap, HashSet};

use tokio::time::Instant;

pub use crate::batch::{Delivery, Verdict};
use crate::config::BudgetThresholds;
use crate::domain::TenantId;
use crate::domain::call_event::CallEvent;
use crate::ports::{
    CallStore, CommentStore, ConnectionStore, JobQueue, RecordStore, SalesforceApi,
    SalesforceSessions, UserMappingStore,
};
use crate::work::WorkError;
use claim::Claimed;

/// Where a call was left: the state recorded for it, or the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Settled {
    State(crate::domain::CallState),
    DeadLettered,
}

/// The storage ports the call logger touches: calls and their comments, the
/// tenant's connection, and the record index and user mappings (matching).
pub trait CallLoggerStore:
    CallStore + CommentStore + ConnectionStore + RecordStore + UserMappingStore
{
}

impl<T> CallLoggerStore for T where
    T: CallStore + CommentStore + ConnectionStore + RecordStore + UserMappingStore
{
}

/// The call logging use case: what it touches is what it holds.
pub struct CallLogger<'a, S, C, Q> {
    store: &'a S,
    salesforce: C,
    /// The API budget's thresholds (calls wait when the org is near its limit).
    budget: &'a BudgetThresholds,
    /// The call-events queue: parked calls are replayed onto it.
    pub calls: &'a Q,
    /// The call-events dead-letter queue: invalid messages, calls of unknown
    /// tenants, calls Salesforce refused for good.
    pub dead_letters: &'a Q,
    /// Calls settled since [`CallLogger::take_settled`] was last called.
    settled: std::sync::Mutex<HashMap<Settled, u64>>,
}

impl<'a, S: CallLoggerStore, C: SalesforceSessions, Q: JobQueue> CallLogger<'a, S, C, Q> {
    pub fn new(
        store: &'a S,
        salesforce: C,
        budget: &'a BudgetThresholds,
        calls: &'a Q,
        dead_letters: &'a Q,
    ) -> Self {
        Self {
            store,
            salesforce,
            budget,
            calls,
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
    pub async fn log_batch(&self, deliveries: &[Delivery], deadline: Instant) -> Vec<Verdict> {
        let mut verdicts = vec![Verdict::Done; deliveries.len()];
        let mut by_tenant: Vec<(TenantId, Vec<(usize, CallEvent)>)> = Vec::new();
        let mut refused = Vec::new();
        for (i, d) in deliveries.iter().enumerate() {
            match CallEvent::parse(&d.body) {
                Ok(call) => match by_tenant.iter_mut().find(|(t, _)| *t == call.tenant_id) {
                    Some((_, calls)) => calls.push((i, call)),
                    None => by_tenant.push((call.tenant_id.clone(), vec![(i, call)])),
                },
                Err(invalid) => refused.push((i, invalid)),
            }
        }
        for (i, verdict) in futures::future::join_all(
            refused
                .into_iter()
                .map(|(i, invalid)| async move { (i, self.refuse(&deliveries[i], invalid).await) }),
        )
        .await
        {
            verdicts[i] = verdict;
        }
        let work = by_tenant.into_iter().map(|(tenant, calls)| async move {
            // Duplicates inside one batch: the first copy does the work, the others
            // come back when it is done.
            let mut seen = HashSet::new();
            let (unique, duplicates): (Vec<_>, Vec<_>) = calls
                .into_iter()
                .partition(|(_, call)| seen.insert(call.call_id.clone()));
            let mut out: Vec<(usize, Verdict)> = duplicates
                .into_iter()
                .map(|(i, _)| (i, Verdict::Retry))
                .collect();
            out.extend(self.log_tenant(&tenant, unique, deliveries, deadline).await);
            out
        });
        crate::batch::settle_by_tenant(&mut verdicts, work).await;
        verdicts
    }

    /// One tenant's calls: claimed, then logged, parked or refused, then recorded.
    async fn log_tenant(
        &self,
        tenant: &TenantId,
        calls: Vec<(usize, CallEvent)>,
        deliveries: &[Delivery],
        deadline: Instant,
    ) -> Vec<(usize, Verdict)> {
        let connection = match self.store.get_connection(tenant).await {
            Ok(Some(c)) => c,
            Ok(None) => return self.unknown_tenant(tenant, &calls, deliveries).await,
            Err(e) => {
                tracing::warn!(tenant_id = %tenant, error = %e, "store unavailable");
                return calls.iter().map(|(i, _)| (*i, Verdict::Retry)).collect();
            }
        };
        let (mut claimed, finals, mut verdicts) =
            claim::claim(self.store, tenant, calls, deliveries).await;
        if claimed.is_empty() && finals.is_empty() {
            return verdicts;
        }
        let session = match self.blocked(tenant, &connection) {
            Some(end) => {
                claimed.iter_mut().for_each(|c| c.end = Some(end.clone()));
                None
            }
            None => {
                let session = self.salesforce.open(tenant, deadline);
                if !claimed.is_empty() {
                    if let Err(e) = self.work(&session, &connection, &mut claimed).await {
                        outcomes::ended_by(&e, session.was_answered(), &mut claimed, deliveries);
                    }
                }
                Some(session)
            }
        };
        if !finals.is_empty() {
            let again =
                comments::of_redelivered(self.store, session.as_ref(), tenant, &finals).await;
            let refreshed = notes::refresh(
                self.store,
                session.as_ref(),
                &connection,
                finals,
                deliveries,
            )
            .await;
            // A delivery whose comments are neither shown nor pending comes again.
            verdicts.extend(refreshed.into_iter().map(|(i, v)| {
                let v = if again.contains(&i) {
                    Verdict::Retry
                } else {
                    v
                };
                (i, v)
            }));
        }
        if claimed.is_empty() {
            return verdicts;
        }
        let (recorded, logged) = outcomes::record(
            self.store,
            self.dead_letters,
            tenant,
            connection.retention_days,
            &claimed,
            deliveries,
        )
        .await;
        for (_, settled) in &recorded {
            if let Some(settled) = settled {
                self.count(*settled);
            }
        }
        verdicts.extend(recorded.into_iter().map(|(verdict, _)| verdict));
        if let Some(session) = &session {
            let left = comments::since_logging(self.store, session, &claimed, logged).await;
            for (i, verdict) in verdicts.iter_mut() {
                let call_id = claimed
                    .iter()
                    .find(|c| c.delivery == *i)
                    .map(|c| &c.call.call_id);
                if call_id.is_some_and(|id| left.contains(id)) {
                    *verdict = Verdict::Retry;
                }
            }
        }
        let parked = claimed.iter().any(|c| c.is_waiting());
        if parked && connection.calls_waiting_since.is_none() {
            if let Err(e) = outcomes::mark_waiting(self.store, tenant).await {
                tracing::warn!(tenant_id = %tenant, error = %e, "parked calls not marked; the next park marks them");
            }
        }
        // Salesforce answered and calls of this tenant wait: they go again, once.
        let healthy = session.as_ref().is_some_and(|s| s.was_answered()) && !parked;
        if healthy && connection.calls_waiting_since.is_some() {
            match outcomes::replay_parked(self.store, tenant, self.calls).await {
                Ok(n) if n > 0 => {
                    tracing::info!(tenant_id = %tenant, replayed = n, "parked calls replayed")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(tenant_id = %tenant, error = %e, "parked calls not replayed; the next chance will")
                }
            }
        }
        verdicts
    }

    /// The work that needs Salesforce: candidates, comments, Tasks.
    async fn work(
        &self,
        session: &C::Session,
        connection: &crate::domain::Connection,
        claimed: &mut [Claimed],
    ) -> Result<(), WorkError> {
        candidates::decide(
            self.store,
            session,
            connection,
            claimed,
            candidates::Lookup::IndexThenSearch,
        )
        .await?;
        comments::load(self.store, session.tenant(), claimed).await?;
        events::write(session, claimed).await?;
        tasks::write(session, connection, claimed).await?;
        notes::write(self.store, session, connection, claimed).await;
        Ok(())
    }
}
