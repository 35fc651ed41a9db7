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
//! 5. **Comments** of the calls that have some, from one read of their states.
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
mod dialer;
mod events;
pub mod handler;
pub mod link;
mod notes;
pub mod outcomes;
pub mod rematch;
mod tasks;

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use tokio::time::Instant;

use crate::app::Store;
use crate::app::WorkError;
pub use crate::batch::{Delivery, Verdict};
use crate::config::BudgetThresholds;
use crate::domain::call_event::CallEvent;
use crate::domain::{StoredComment, TenantId};
use crate::ports::{CommentStore, JobQueue, SecretStore};
use crate::salesforce::{Session, Sessions};
use claim::Claimed;

/// Calls whose comments are read at once.
const COMMENT_READS: usize = 16;

/// Where a call was left: the state recorded for it, or the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Settled {
    State(crate::domain::CallState),
    DeadLettered,
}

/// The call logging use case: what it touches is what it holds.
pub struct CallLogger<'a, S, K, Q> {
    store: &'a S,
    salesforce: Sessions<'a, K, S>,
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

impl<'a, S: Store, K: SecretStore, Q: JobQueue> CallLogger<'a, S, K, Q> {
    pub fn new(
        store: &'a S,
        salesforce: Sessions<'a, K, S>,
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
            verdicts.extend(
                notes::refresh(
                    self.store,
                    session.as_ref(),
                    &connection,
                    finals,
                    deliveries,
                )
                .await,
            );
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
            self.comments_since(session, &claimed, logged).await;
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
        session: &Session<'_, K, S>,
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
        load_comments(self.store, session.tenant(), claimed).await?;
        events::write(session, claimed).await?;
        tasks::write(session, connection, claimed).await?;
        notes::write(self.store, session, connection, claimed).await;
        Ok(())
    }

    /// Comments stored while their calls were being logged (after this invocation
    /// read them; comment-sync leaves a call being logged to its logger): the
    /// Tasks just written are rendered again. What cannot be shown now waits as
    /// pending comments for the next sync.
    async fn comments_since(
        &self,
        session: &Session<'_, K, S>,
        claimed: &[Claimed],
        logged: Vec<crate::domain::CallOutcome>,
    ) {
        if logged.is_empty() {
            return;
        }
        let tenant = session.tenant();
        let ids: Vec<String> = logged.iter().map(|o| o.call_id.clone()).collect();
        let now = match self.store.comment_versions(tenant, &ids).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(tenant_id = %tenant, error = %e, "comment states not re-read; pending comments wait for the sync");
                return;
            }
        };
        let read_then = |call_id: &str| {
            claimed
                .iter()
                .find(|c| c.call.call_id == call_id)
                .and_then(|c| c.comments_version)
        };
        let changed: Vec<crate::domain::CallOutcome> = logged
            .into_iter()
            .filter(|o| now.get(&o.call_id).copied() != read_then(&o.call_id))
            .collect();
        if changed.is_empty() {
            return;
        }
        tracing::info!(tenant_id = %tenant, calls = changed.len(), "comments came in while logging: rendering again");
        let verdicts = crate::comments::render_calls(self.store, session, &changed).await;
        let left: Vec<crate::domain::CallOutcome> = changed
            .into_iter()
            .zip(verdicts)
            .filter(|(_, v)| v.is_retry())
            .map(|(o, _)| o)
            .collect();
        if !left.is_empty() {
            crate::comments::render::mark_pending(
                self.store,
                tenant,
                &left,
                "comments came in while the call was being logged",
            )
            .await;
        }
    }
}

/// The comments of the calls that will have a Task: one read of their comment
/// states, then each call's comments, several at a time.
async fn load_comments<S: CommentStore>(
    store: &S,
    tenant: &TenantId,
    claimed: &mut [Claimed],
) -> Result<(), WorkError> {
    let ids: Vec<String> = claimed
        .iter()
        .filter(|c| c.end.is_none() && c.matched())
        .map(|c| c.call.call_id.clone())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let with_comments = store.comment_versions(tenant, &ids).await?;
    for c in claimed.iter_mut() {
        c.comments_version = with_comments.get(&c.call.call_id).copied();
    }
    let reads = with_comments.into_keys().map(|call_id| async move {
        let comments = store.comments_for_call(tenant, &call_id).await?;
        Ok::<_, WorkError>((call_id, comments))
    });
    let mut comments: HashMap<String, Vec<StoredComment>> = futures::stream::iter(reads)
        .buffer_unordered(COMMENT_READS)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    for c in claimed.iter_mut() {
        c.comments = comments.remove(&c.call.call_id).unwrap_or_default();
    }
    Ok(())
}
