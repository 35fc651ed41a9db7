//! The 15-minute sync (DESIGN §5): a fan-out of one job per connected tenant, and
//! each tenant's incremental, resumable sync of every object into DynamoDB.
//!
//! Correctness rests on three rules:
//! - a page's records and index entries are written before its position is saved
//!   as the cursor, so a crash re-reads the page and the idempotent upserts
//!   converge (nothing lost, nothing duplicated);
//! - the cursor is `(SystemModstamp, Id)`, so ties on one timestamp, across page
//!   boundaries too, neither lose nor repeat records;
//! - one lease per tenant: two jobs of one tenant never run at once.

pub mod cdc;
mod cursor;
pub mod handler;
mod job;
pub mod objects;
mod rematch;
mod status;
pub mod survivors;
mod timeline;

use cursor::CursorResync;
pub use job::{FanOut, JobOutcome, SyncJob, fan_out};
use rematch::REMATCH_ON;
use status::pause_message;
pub use timeline::email_timeline;

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::config::BudgetThresholds;
use crate::domain::hosts::PubSubEndpoint;
use crate::domain::{
    ApiUsage, ChangeSource, Connection, ConnectionStatus, CrmRecord, IndexEntry, IndexKey,
    SourceReason, SyncCursor, SyncState, SyncStatus, TenantId,
};
use crate::error::{Classify, ErrorClass};
use crate::ports::{
    CallStore, CommentStore, ConnectionStore, CursorStore, ErasureStore, JobQueue, LeaseStore,
    RecordChange, RecordStore, SalesforceApi, SalesforceReads, SalesforceSessions, StoreError,
    TenantMessage, UserMappingStore,
};
use crate::salesforce::keyset::Position;
use crate::salesforce::limits::{BudgetDecision, Work, decide};
use crate::work::WorkError;
use crate::work::update_connection;
use cdc::{CdcFailure, CdcFeed, Resync};
use objects::SyncObject;

const LEASE: &str = "sync";
/// How far before a caught-up cursor the next pass starts reading again, when the
/// cursor was read less than this after its own time. Records changed in the
/// cursor's second after it was read (`SystemModstamp` has second precision), or
/// whose transaction committed after a later one was read, sort at or before the
/// cursor: this window reads them. Once a pass has read the cursor this long after
/// its time, everything up to it was visible, and the next pass starts exactly
/// after it. Unchanged records read again are not written.
const LOOKBACK: Duration = Duration::from_secs(60);

/// What one object's run did.
#[derive(Debug, Default)]
pub(crate) struct ObjectRun {
    read: u64,
    written: u64,
    deleted: u64,
    stop: Option<Stop>,
}

impl ObjectRun {
    fn add(&mut self, other: &ObjectRun) {
        self.read += other.read;
        self.written += other.written;
        self.deleted += other.deleted;
        self.stop = self.stop.or(other.stop);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Deadline,
    Budget { used_percent: u8 },
}

/// Where each object's changes come from. The SOQL cursor serves every object;
/// Change Data Capture takes over Opportunity and OpportunityContactRole when the
/// Pub/Sub API is configured (and falls back on the cursor where the org has not
/// enabled it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Soql,
    Cdc,
}

/// The objects Change Data Capture feeds when the Pub/Sub API is configured.
const CDC_OBJECTS: [&str; 2] = [
    objects::OPPORTUNITY.key,
    objects::OPPORTUNITY_CONTACT_ROLE.key,
];

/// The sync status entry that reports re-matching.
pub const REMATCH_STATUS: &str = "rematch";

/// Which source feeds each object.
#[derive(Debug, Clone)]
pub struct Plan {
    pub objects: Vec<(SyncObject, Source)>,
}

impl Plan {
    /// Every object by SOQL.
    pub fn polling() -> Self {
        Self {
            objects: objects::ALL.iter().map(|o| (*o, Source::Soql)).collect(),
        }
    }

    /// Opportunity and OpportunityContactRole by Change Data Capture, after the
    /// polled objects: a first subscription may wait for the Pub/Sub API's first
    /// answer (up to 270 s on a quiet org), which must not delay the others.
    pub fn with_cdc() -> Self {
        let (fed, polled): (Vec<SyncObject>, Vec<SyncObject>) = objects::ALL
            .iter()
            .partition(|o| CDC_OBJECTS.contains(&o.key));
        Self {
            objects: polled
                .into_iter()
                .map(|o| (o, Source::Soql))
                .chain(fed.into_iter().map(|o| (o, Source::Cdc)))
                .collect(),
        }
    }
}

/// The storage ports the sync touches: cursors and statuses, the record index
/// (without erased people), the tenant's connection, the leases (one job per
/// tenant at a time), and, for the calls it re-matches and the comments it
/// renders, those of call logging.
pub trait SyncStore:
    CursorStore
    + RecordStore
    + ErasureStore
    + ConnectionStore
    + LeaseStore
    + CallStore
    + CommentStore
    + UserMappingStore
{
}

impl<T> SyncStore for T where
    T: CursorStore
        + RecordStore
        + ErasureStore
        + ConnectionStore
        + LeaseStore
        + CallStore
        + CommentStore
        + UserMappingStore
{
}

/// Runs sync jobs for one function invocation.
pub struct Syncer<'a, S, C, Q> {
    store: &'a S,
    salesforce: C,
    /// The API budget's thresholds: the sync pauses first, calls wait last.
    budget: &'a BudgetThresholds,
    pub jobs: &'a Q,
    /// Where calls parked by the call logger are replayed once the tenant is
    /// connected and under its API budget.
    pub calls: Option<&'a Q>,
    /// The sync-jobs dead-letter queue: messages that are not valid jobs.
    pub dead_letters: Option<&'a Q>,
    pub plan: Plan,
    /// The Change Data Capture subscriber, when the Pub/Sub API is configured.
    pub cdc: Option<CdcFeed>,
}

impl<'a, S: SyncStore, C: SalesforceSessions, Q: JobQueue> Syncer<'a, S, C, Q> {
    /// `pubsub`: the Pub/Sub API, when Change Data Capture feeds the sync.
    pub fn new(
        store: &'a S,
        salesforce: C,
        budget: &'a BudgetThresholds,
        pubsub: Option<PubSubEndpoint>,
        jobs: &'a Q,
    ) -> Self {
        let cdc = pubsub.map(CdcFeed::new);
        Self {
            store,
            salesforce,
            budget,
            jobs,
            calls: None,
            dead_letters: None,
            plan: if cdc.is_some() {
                Plan::with_cdc()
            } else {
                Plan::polling()
            },
            cdc,
        }
    }

    pub fn with_call_replay(mut self, calls: &'a Q) -> Self {
        self.calls = Some(calls);
        self
    }

    pub fn with_dead_letters(mut self, dead_letters: &'a Q) -> Self {
        self.dead_letters = Some(dead_letters);
        self
    }

    /// Runs one tenant's job. Stops between pages once `stop_at` has passed (and
    /// queues a continuation); Salesforce requests never run past `hard_deadline`.
    pub async fn run(
        &self,
        job: &SyncJob,
        stop_at: Instant,
        hard_deadline: Instant,
    ) -> Result<JobOutcome, WorkError> {
        let tenant = &job.tenant_id;
        let store = self.store;
        let Some(connection) = store.get_connection(tenant).await? else {
            return Ok(JobOutcome::Skipped("unknown tenant".into()));
        };
        if connection.status != ConnectionStatus::Connected {
            tracing::info!(tenant_id = %tenant, status = connection.status.as_str(), "sync skipped: not connected");
            return Ok(JobOutcome::Skipped(format!(
                "status {}",
                connection.status.as_str()
            )));
        }
        let holder = format!("sync-{:016x}", rand::random::<u64>());
        let ttl = hard_deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(60);
        if store
            .acquire_lease(tenant, LEASE, &holder, ttl, Utc::now())
            .await?
            .is_none()
        {
            tracing::info!(tenant_id = %tenant, "sync skipped: another job of this tenant is running");
            return Ok(JobOutcome::AlreadyRunning);
        }
        let outcome = self
            .run_holding_lease(job, &connection, stop_at, hard_deadline)
            .await;
        if let Err(e) = store.release_lease(tenant, LEASE, &holder).await {
            tracing::warn!(tenant_id = %tenant, error = %e, "sync lease not released; it will expire");
        }
        if matches!(outcome, Ok(JobOutcome::Completed | JobOutcome::Continued)) {
            self.replay_parked_calls(tenant).await?;
        }
        outcome
    }

    /// Calls parked while the tenant could not log (disconnected, over budget,
    /// Salesforce down) go again, once, now that a sync worked, if the budget
    /// allows call logging.
    async fn replay_parked_calls(&self, tenant: &TenantId) -> Result<(), StoreError> {
        let Some(calls) = self.calls else {
            return Ok(());
        };
        if let Some(u) = self.salesforce.fresh_usage(tenant) {
            if matches!(
                decide(self.budget, Work::CallLogging, u.used, u.max),
                BudgetDecision::Wait { .. }
            ) {
                return Ok(());
            }
        }
        let replayed = crate::calls::outcomes::replay_parked(self.store, tenant, calls).await?;
        if replayed > 0 {
            tracing::info!(tenant_id = %tenant, replayed, "parked calls replayed");
        }
        // Comments that could not be shown while the tenant was disconnected.
        let session = self.salesforce.open(
            tenant,
            tokio::time::Instant::now() + Duration::from_secs(60),
        );
        let rendered = crate::comments::render_pending(self.store, &session).await?;
        if rendered > 0 {
            tracing::info!(tenant_id = %tenant, rendered, "pending comments rendered");
        }
        Ok(())
    }

    async fn run_holding_lease(
        &self,
        job: &SyncJob,
        connection: &Connection,
        stop_at: Instant,
        hard_deadline: Instant,
    ) -> Result<JobOutcome, WorkError> {
        let tenant = &job.tenant_id;
        let phone_region = connection.phone_region.as_str();
        let last_usage = connection.api_usage;
        let thresholds = *self.budget;
        // Trust a recent usage reading to avoid spending a call only to learn we must pause.
        if let Some(u) = last_usage.filter(ApiUsage::is_fresh) {
            if let BudgetDecision::Wait {
                used_percent,
                threshold,
            } = decide(&thresholds, Work::Sync, u.used, u.max)
            {
                self.record_pause(tenant, used_percent, threshold).await?;
                return Ok(JobOutcome::Paused { used_percent });
            }
        }
        let session = self.salesforce.open(tenant, hard_deadline);
        let mut outcome = JobOutcome::Completed;
        // The last run of each object, for the running totals (this job holds the
        // tenant's lease: nothing else writes them meanwhile).
        let previous: HashMap<String, SyncStatus> = self
            .store
            .sync_statuses(tenant)
            .await?
            .into_iter()
            .map(|s| (s.object.clone(), s))
            .collect();
        // Records calls may now match: contacts, leads, accounts written.
        let mut matchable_changed = false;
        for (object, source) in &self.plan.objects {
            let started = Instant::now();
            let calls_before = self.salesforce.calls_made();
            let mut fed_by = (
                ChangeSource::Polling,
                match (&self.cdc, CDC_OBJECTS.contains(&object.key)) {
                    (None, true) => SourceReason::PubSubOff,
                    (Some(_), true) => SourceReason::CdcFailed,
                    (_, false) => SourceReason::PolledByDesign,
                },
            );
            let result = match (source, &self.cdc, &connection.org_id) {
                (Source::Cdc, Some(feed), Some(org_id)) => self
                    .sync_by_cdc(feed, &session, org_id, object, phone_region, stop_at)
                    .await
                    .map(|(run, note, by)| {
                        fed_by = by;
                        (run, note)
                    }),
                _ => self
                    .sync_object(&session, object, phone_region, stop_at)
                    .await
                    .map(|run| (run, None)),
            };
            let calls = self.salesforce.calls_made() - calls_before;
            let duration_ms = started.elapsed().as_millis() as u64;
            match result {
                Ok((run, note)) => {
                    matchable_changed |= run.written > 0 && REMATCH_ON.contains(&object.key);
                    let (state, message) = match run.stop {
                        None => (SyncState::UpToDate, note),
                        Some(Stop::Deadline) => (
                            SyncState::Continuing,
                            Some("continuing in a follow-up job".to_string()),
                        ),
                        Some(Stop::Budget { used_percent }) => (
                            SyncState::Paused,
                            Some(pause_message(
                                used_percent,
                                thresholds.sync_pause_at_percent,
                            )),
                        ),
                    };
                    self.save_status(
                        tenant,
                        object,
                        previous.get(object.key),
                        state,
                        message,
                        None,
                        fed_by,
                        &run,
                        calls,
                        duration_ms,
                    )
                    .await?;
                    match run.stop {
                        Some(Stop::Deadline) => {
                            let continuation = SyncJob::new(tenant.clone(), "continuation");
                            self.jobs
                                .send_all(&[TenantMessage::new(tenant, continuation.to_body())])
                                .await?;
                            outcome = JobOutcome::Continued;
                            break;
                        }
                        Some(Stop::Budget { used_percent }) => {
                            outcome = JobOutcome::Paused { used_percent };
                            break;
                        }
                        None => {}
                    }
                }
                Err(e) => {
                    let run = ObjectRun::default();
                    self.save_status(
                        tenant,
                        object,
                        previous.get(object.key),
                        SyncState::Failed,
                        None,
                        Some(e.to_string()),
                        fed_by,
                        &run,
                        calls,
                        duration_ms,
                    )
                    .await?;
                    match e.class() {
                        // One object the org will not serve (no access, field missing)
                        // must not stop the others.
                        ErrorClass::Permanent => {
                            tracing::error!(tenant_id = %tenant, object = object.key, error = %e, "object sync failed");
                        }
                        ErrorClass::Retryable | ErrorClass::NeedsReauth => return Err(e),
                    }
                }
            }
        }
        if matchable_changed {
            crate::calls::rematch::request(self.store, tenant).await?;
        }
        if outcome == JobOutcome::Completed {
            outcome = self
                .rematch(&session, previous.get(REMATCH_STATUS), stop_at)
                .await?;
        }
        let usage = self.salesforce.fresh_usage(tenant);
        update_connection(self.store, tenant, |c| {
            if outcome == JobOutcome::Completed {
                c.last_sync_at = Some(Utc::now());
            }
            if let Some(u) = usage {
                c.api_usage = Some(u.to_api_usage());
            }
            true
        })
        .await?;
        Ok(outcome)
    }

    /// An object fed by Change Data Capture; the status note says when it had to
    /// be polled instead.
    async fn sync_by_cdc(
        &self,
        feed: &CdcFeed,
        session: &C::Session,
        org_id: &str,
        object: &SyncObject,
        phone_region: &str,
        stop_at: Instant,
    ) -> Result<(ObjectRun, Option<String>, (ChangeSource, SourceReason)), WorkError> {
        let tenant = session.tenant();
        let resync = CursorResync {
            syncer: self,
            session,
            phone_region,
            stop_at,
        };
        let store = self.store;
        let failure = match feed
            .sync(
                store,
                session,
                org_id,
                object,
                phone_region,
                stop_at,
                &resync,
            )
            .await
        {
            Ok(run) => {
                tracing::info!(tenant_id = %tenant, object = object.name, events = run.events, reread = run.reread, resynced = run.resynced, "change events applied");
                let note = format!(
                    "Change Data Capture: {} change events{}",
                    run.events,
                    if run.resynced {
                        ", after a re-sync through the SOQL cursor"
                    } else {
                        ""
                    }
                );
                let reason = if run.resynced {
                    SourceReason::CdcResynced
                } else {
                    SourceReason::CdcEnabled
                };
                return Ok((run.totals, Some(note), (ChangeSource::Cdc, reason)));
            }
            Err(CdcFailure::Sync(e)) => return Err(e),
            Err(e) => e,
        };
        let (note, reason) = match &failure {
            CdcFailure::NotEnabled(name) => {
                tracing::info!(tenant_id = %tenant, object = name, "Change Data Capture not enabled: polling");
                (
                    format!("Change Data Capture is not enabled for {name}; polling instead"),
                    SourceReason::CdcNotEnabled,
                )
            }
            other => {
                tracing::warn!(tenant_id = %tenant, object = object.name, error = %other, "Change Data Capture failed: polling");
                (format!("{other}; polling instead"), SourceReason::CdcFailed)
            }
        };
        let run = self
            .sync_object(session, object, phone_region, stop_at)
            .await?;
        Ok((run, Some(note), (ChangeSource::Polling, reason)))
    }
}
