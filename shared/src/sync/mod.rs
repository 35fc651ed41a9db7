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
pub mod handler;
pub mod objects;
pub mod survivors;

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::app::WorkError;
use crate::app::{App, Store, update_connection};
use crate::domain::{
    ApiUsage, ChangeSource, Connection, ConnectionStatus, CrmRecord, IndexEntry, IndexKey,
    SourceReason, SyncCursor, SyncState, SyncStatus, TenantId,
};
use crate::error::{Classify, ErrorClass};
use crate::ports::{JobQueue, RecordChange, SecretStore, StoreError, TenantMessage};
use crate::salesforce::Session;
use crate::salesforce::keyset::Position;
use crate::salesforce::limits::{BudgetDecision, Work, decide};
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

/// A message of the sync-jobs queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncJob {
    pub version: u32,
    pub tenant_id: TenantId,
    /// `schedule`, or `continuation` when a job carries on where the previous stopped.
    #[serde(default = "default_reason")]
    pub reason: String,
}

fn default_reason() -> String {
    "schedule".to_string()
}

impl SyncJob {
    pub fn new(tenant_id: TenantId, reason: &str) -> Self {
        Self {
            version: 1,
            tenant_id,
            reason: reason.to_string(),
        }
    }

    pub fn parse(body: &str) -> Result<Self, String> {
        let job: SyncJob =
            serde_json::from_str(body).map_err(|e| format!("invalid sync job: {e}"))?;
        if job.version != 1 {
            return Err(format!("unsupported sync job version {}", job.version));
        }
        Ok(job)
    }

    pub fn to_body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// How a tenant's job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Every object is up to date.
    Completed,
    /// Stopped before the deadline; a continuation job was queued.
    Continued,
    /// API usage reached the pause threshold.
    Paused { used_percent: u8 },
    /// Another job of this tenant holds the lease.
    AlreadyRunning,
    /// The tenant is not connected (or no longer).
    Skipped(String),
}

/// The fan-out's tally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanOut {
    pub queued: usize,
    pub skipped: usize,
}

/// One job per connected tenant onto the sync-jobs queue; tenants waiting for a
/// reconnect are skipped with a log line.
pub async fn fan_out<S: Store, Q: JobQueue>(store: &S, jobs: &Q) -> Result<FanOut, StoreError> {
    let mut tally = FanOut::default();
    let mut token = None;
    loop {
        let page = store
            .tenants_with_status(ConnectionStatus::Connected, token)
            .await?;
        let messages: Vec<TenantMessage> = page
            .items
            .iter()
            .map(|t| TenantMessage::new(t, SyncJob::new(t.clone(), &default_reason()).to_body()))
            .collect();
        jobs.send_all(&messages).await?;
        tally.queued += messages.len();
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    let mut token = None;
    loop {
        let page = store
            .tenants_with_status(ConnectionStatus::NeedsReauth, token)
            .await?;
        for tenant in &page.items {
            tracing::info!(tenant_id = %tenant, "sync skipped: the tenant must reconnect Salesforce");
        }
        tally.skipped += page.items.len();
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    Ok(tally)
}

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

/// Objects whose new or changed records can give calls a better match.
const REMATCH_ON: [&str; 3] = [
    objects::CONTACT.key,
    objects::LEAD.key,
    objects::ACCOUNT.key,
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

/// Runs sync jobs for one function invocation.
pub struct Syncer<'a, S, K, Q> {
    pub app: &'a App<S, K>,
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

impl<'a, S: Store, K: SecretStore, Q: JobQueue> Syncer<'a, S, K, Q> {
    pub fn new(app: &'a App<S, K>, jobs: &'a Q) -> Self {
        let cdc = app
            .config
            .salesforce
            .pubsub_endpoint
            .clone()
            .map(CdcFeed::new);
        Self {
            app,
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
        let store = &self.app.store;
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
        if let Some(u) = self.app.salesforce.fresh_usage(tenant) {
            if matches!(
                decide(&self.app.config.budget, Work::CallLogging, u.used, u.max),
                BudgetDecision::Wait { .. }
            ) {
                return Ok(());
            }
        }
        let replayed =
            crate::calls::outcomes::replay_parked(&self.app.store, tenant, calls).await?;
        if replayed > 0 {
            tracing::info!(tenant_id = %tenant, replayed, "parked calls replayed");
        }
        // Comments that could not be shown while the tenant was disconnected.
        let session = self.app.salesforce.session(
            tenant,
            &self.app.secrets,
            &self.app.store,
            tokio::time::Instant::now() + Duration::from_secs(60),
        );
        let rendered = crate::comments::render_pending(self.app, &session).await?;
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
        let thresholds = self.app.config.budget;
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
        let session =
            self.app
                .salesforce
                .session(tenant, &self.app.secrets, &self.app.store, hard_deadline);
        let mut outcome = JobOutcome::Completed;
        // The last run of each object, for the running totals (this job holds the
        // tenant's lease: nothing else writes them meanwhile).
        let previous: HashMap<String, SyncStatus> = self
            .app
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
            let calls_before = self.app.salesforce.counters().total();
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
            let calls = self.app.salesforce.counters().total() - calls_before;
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
            crate::calls::rematch::request(&self.app.store, tenant).await?;
        }
        if outcome == JobOutcome::Completed {
            outcome = self
                .rematch(&session, previous.get(REMATCH_STATUS), stop_at)
                .await?;
        }
        let usage = self.app.salesforce.fresh_usage(tenant);
        update_connection(&self.app.store, tenant, |c| {
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

    /// Re-matches the calls owed a pass (issue 19) with what is left of the job's
    /// time and budget; its API calls are reported in the sync status, under
    /// `rematch`. A pass cut short carries on in a continuation job.
    async fn rematch(
        &self,
        session: &Session<'_, K, S>,
        previous: Option<&SyncStatus>,
        stop_at: Instant,
    ) -> Result<JobOutcome, WorkError> {
        let tenant = session.tenant();
        let owed = self
            .app
            .store
            .get_connection(tenant)
            .await?
            .is_some_and(|c| c.rematch.is_some());
        if !owed {
            return Ok(JobOutcome::Completed);
        }
        let started = Instant::now();
        let calls_before = self.app.salesforce.counters().total();
        let result = crate::calls::rematch::run(self.app, session, stop_at, || {
            self.over_budget(tenant).is_some()
        })
        .await;
        let calls = self.app.salesforce.counters().total() - calls_before;
        let duration_ms = started.elapsed().as_millis() as u64;
        let mut status = SyncStatus {
            api_calls: calls,
            duration_ms,
            total_records_read: previous.map_or(0, |p| p.total_records_read),
            total_api_calls: previous.map_or(0, |p| p.total_api_calls) + calls,
            ..SyncStatus::new(REMATCH_STATUS, SyncState::UpToDate)
        };
        let outcome = match &result {
            Ok(run) => {
                status.records_read = run.examined;
                status.records_written = run.rematched;
                status.total_records_read += run.examined;
                status.message = Some(format!(
                    "calls re-matched: {} of {} examined; {} Tasks left alone (changed or deleted in Salesforce)",
                    run.rematched, run.examined, run.left_alone
                ));
                match run.stopped {
                    None => JobOutcome::Completed,
                    Some(crate::calls::rematch::RematchStop::Deadline) => {
                        status.state = SyncState::Continuing;
                        let continuation = SyncJob::new(tenant.clone(), "continuation");
                        self.jobs
                            .send_all(&[TenantMessage::new(tenant, continuation.to_body())])
                            .await?;
                        JobOutcome::Continued
                    }
                    Some(crate::calls::rematch::RematchStop::Budget) => {
                        status.state = SyncState::Paused;
                        let used_percent = self.over_budget(tenant).unwrap_or_default();
                        status.message = Some(pause_message(
                            used_percent,
                            self.app.config.budget.sync_pause_at_percent,
                        ));
                        JobOutcome::Paused { used_percent }
                    }
                }
            }
            Err(e) => {
                status.state = SyncState::Failed;
                status.last_error = Some(e.to_string());
                JobOutcome::Completed
            }
        };
        // A pass with no call in its window leaves no status.
        let idle = matches!(&result, Ok(r) if r.examined == 0 && r.stopped.is_none());
        if !(idle && calls == 0) {
            self.app.store.put_sync_status(tenant, &status).await?;
        }
        match result {
            Err(e) if e.class() != ErrorClass::Permanent => Err(e),
            Err(e) => {
                tracing::error!(tenant_id = %tenant, error = %e, "re-matching failed");
                Ok(outcome)
            }
            Ok(_) => Ok(outcome),
        }
    }

    /// An object fed by Change Data Capture; the status note says when it had to
    /// be polled instead.
    async fn sync_by_cdc(
        &self,
        feed: &CdcFeed,
        session: &Session<'_, K, S>,
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
        let store = &self.app.store;
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

    async fn sync_object(
        &self,
        session: &Session<'_, K, S>,
        object: &SyncObject,
        phone_region: &str,
        stop_at: Instant,
    ) -> Result<ObjectRun, WorkError> {
        let tenant = session.tenant().clone();
        let store = &self.app.store;
        let stored = store.get_cursor(&tenant, object.key).await?;
        let lookback = chrono::Duration::from_std(LOOKBACK).unwrap_or_default();
        let start = stored.as_ref().map(|c| {
            if c.caught_up && c.updated_at - c.system_modstamp < lookback {
                Position {
                    system_modstamp: c.system_modstamp - lookback,
                    id: String::new(),
                }
            } else {
                Position {
                    system_modstamp: c.system_modstamp,
                    id: c.last_id.clone(),
                }
            }
        });
        let query = object.keyset_query();
        let mut run = ObjectRun::default();
        if let Some(used_percent) = self.over_budget(&tenant) {
            run.stop = Some(Stop::Budget { used_percent });
            return Ok(run);
        }
        let mut pages = Box::pin(session.keyset_pages(query, start));
        while let Some(page) = pages.try_next().await? {
            run.read += page.records.len() as u64;
            let (written, deleted) = self
                .apply_page(&tenant, object, &page.records, phone_region)
                .await?;
            run.written += written;
            run.deleted += deleted;
            // Only now, with the page durably written, does the cursor move.
            let saved = match (&page.position, &stored) {
                (Some(position), _) => Some(SyncCursor {
                    object: object.key.to_string(),
                    system_modstamp: position.system_modstamp,
                    last_id: position.id.clone(),
                    updated_at: Utc::now(),
                    caught_up: page.done,
                }),
                // Nothing after a cut-short pass: it has now reached the end.
                (None, Some(c)) if page.done && !c.caught_up => Some(SyncCursor {
                    caught_up: true,
                    updated_at: Utc::now(),
                    ..c.clone()
                }),
                (None, _) => None,
            };
            if let Some(cursor) = saved {
                store.put_cursor(&tenant, &cursor).await?;
            }
            if page.done {
                break;
            }
            if let Some(used_percent) = self.over_budget(&tenant) {
                run.stop = Some(Stop::Budget { used_percent });
                break;
            }
            if Instant::now() >= stop_at {
                run.stop = Some(Stop::Deadline);
                break;
            }
        }
        Ok(run)
    }

    /// The live usage, when it is at or above the sync's pause threshold.
    fn over_budget(&self, tenant: &TenantId) -> Option<u8> {
        let u = self.app.salesforce.fresh_usage(tenant)?;
        match decide(&self.app.config.budget, Work::Sync, u.used, u.max) {
            BudgetDecision::Wait { used_percent, .. } => Some(used_percent),
            BudgetDecision::Proceed => None,
        }
    }

    /// Writes one page: upserts with their index entries (stale entries removed),
    /// deletions with theirs. Idempotent.
    async fn apply_page(
        &self,
        tenant: &TenantId,
        object: &SyncObject,
        records: &[Map<String, Value>],
        phone_region: &str,
    ) -> Result<(u64, u64), WorkError> {
        let store = &self.app.store;
        let ids: Vec<String> = records
            .iter()
            .filter_map(|r| r.get("Id").and_then(Value::as_str).map(str::to_string))
            .collect();
        let previous: HashMap<String, CrmRecord> = store
            .get_records(tenant, &ids)
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        // Relations carry their email's summary onto the contact's timeline.
        let emails: HashMap<String, CrmRecord> =
            if object.key == objects::EMAIL_MESSAGE_RELATION.key {
                let email_ids: Vec<String> = records
                    .iter()
                    .filter_map(|r| {
                        r.get("EmailMessageId")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect();
                store
                    .get_records(tenant, &email_ids)
                    .await?
                    .into_iter()
                    .map(|r| (r.id.clone(), r))
                    .collect()
            } else {
                HashMap::new()
            };
        let mut changes = Vec::with_capacity(records.len());
        let (mut written, mut deleted) = (0, 0);
        for raw in records {
            let Some(id) = raw.get("Id").and_then(Value::as_str) else {
                continue;
            };
            let stored = previous.get(id);
            let previous_keys = stored.map(|r| r.index_keys.clone()).unwrap_or_default();
            if raw.get("IsDeleted") == Some(&Value::Bool(true)) {
                changes.push(RecordChange::Delete {
                    id: id.to_string(),
                    previous_keys,
                });
                deleted += 1;
                continue;
            }
            let email = raw
                .get("EmailMessageId")
                .and_then(Value::as_str)
                .and_then(|e| emails.get(e));
            match objects::derive(object, raw, phone_region, email) {
                // Read again (the look-back window) and unchanged: nothing to write.
                Some((record, _)) if stored.is_some_and(|s| same_record(s, &record)) => {}
                Some((record, index)) => {
                    changes.push(RecordChange::Upsert {
                        record,
                        index,
                        previous_keys,
                    });
                    written += 1;
                }
                None => {
                    tracing::warn!(tenant_id = %tenant, object = object.name, id, "record without SystemModstamp skipped")
                }
            }
        }
        let changes = crate::erase::tombstones::without_erased(store, tenant, changes).await?;
        store.apply_record_changes(tenant, &changes).await?;
        // Records Salesforce merged away or converted: their calls follow the
        // survivors (before the cursor moves past them).
        if REMATCH_ON.contains(&object.key) {
            let moved = survivors::survivors(object.name, records);
            survivors::follow_survivors(store, tenant, &moved).await?;
        }
        Ok((written, deleted))
    }

    #[allow(clippy::too_many_arguments)]
    async fn save_status(
        &self,
        tenant: &TenantId,
        object: &SyncObject,
        previous: Option<&SyncStatus>,
        state: SyncState,
        message: Option<String>,
        last_error: Option<String>,
        (source, source_reason): (ChangeSource, SourceReason),
        run: &ObjectRun,
        calls: u64,
        duration_ms: u64,
    ) -> Result<(), StoreError> {
        let status = SyncStatus {
            object: object.key.to_string(),
            state,
            message,
            last_error,
            source: Some(source),
            source_reason: Some(source_reason),
            records_read: run.read,
            records_written: run.written,
            records_deleted: run.deleted,
            api_calls: calls,
            duration_ms,
            finished_at: Utc::now(),
            total_records_read: previous.map_or(0, |p| p.total_records_read) + run.read,
            total_api_calls: previous.map_or(0, |p| p.total_api_calls) + calls,
        };
        self.app.store.put_sync_status(tenant, &status).await
    }

    async fn record_pause(
        &self,
        tenant: &TenantId,
        used_percent: u8,
        threshold: u8,
    ) -> Result<(), StoreError> {
        tracing::info!(tenant_id = %tenant, used_percent, threshold, "sync paused: API budget");
        let status = SyncStatus {
            message: Some(pause_message(used_percent, threshold)),
            ..SyncStatus::new("*", SyncState::Paused)
        };
        self.app.store.put_sync_status(tenant, &status).await
    }
}

/// What the status says while the sync waits for API budget.
fn pause_message(used_percent: u8, threshold: u8) -> String {
    format!(
        "paused: the org has used {used_percent}% of its daily API allocation (sync pauses at {threshold}%)"
    )
}

/// The same version of a record: same `SystemModstamp` and field values (numbers
/// compare by value: `12000` and `12000.0` are one amount).
fn same_record(stored: &CrmRecord, read: &CrmRecord) -> bool {
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            (Value::Object(x), Value::Object(y)) => same_map(x, y),
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
            }
            _ => a == b,
        }
    }
    fn same_map(x: &Map<String, Value>, y: &Map<String, Value>) -> bool {
        x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
    }
    stored.system_modstamp == read.system_modstamp && same_map(&stored.fields, &read.fields)
}

/// The SOQL cursor path, which Change Data Capture falls back on.
struct CursorResync<'r, 'a, 's, S, K, Q> {
    syncer: &'r Syncer<'a, S, K, Q>,
    session: &'r Session<'s, K, S>,
    phone_region: &'r str,
    stop_at: Instant,
}

impl<S: Store, K: SecretStore, Q: JobQueue> Resync for CursorResync<'_, '_, '_, S, K, Q> {
    async fn resync(&self, object: &SyncObject) -> Result<ObjectRun, WorkError> {
        self.syncer
            .sync_object(self.session, object, self.phone_region, self.stop_at)
            .await
    }
}

/// A record's email timeline, newest first.
pub async fn email_timeline<S: Store>(
    store: &S,
    tenant: &TenantId,
    record_id: &str,
    limit: usize,
) -> Result<Vec<IndexEntry>, StoreError> {
    let key = IndexKey {
        kind: crate::domain::IndexKind::Timeline,
        value: record_id.to_string(),
    };
    let mut entries = store.query_index(tenant, &key).await?;
    entries.sort_by(|a, b| {
        let at = |e: &IndexEntry| {
            e.data
                .get("occurredAt")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        at(b).cmp(&at(a))
    });
    entries.truncate(limit);
    Ok(entries)
}
