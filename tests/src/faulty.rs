//! A store that fails on purpose: it wraps the DynamoDB adapter and makes chosen
//! writes fail as if the Lambda had died at that instant (the write never lands).
//! It can also run a test's action right after a chosen write, to make something
//! happen at that exact point of a job (an edit in Salesforce, a clock jump).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::adapters::dynamo::DynamoStore;
use shared::domain::*;
use shared::ports::*;

/// An action run once after a write.
pub type Hook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Which write a hook follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// The cursor of this object (a SOQL page of it was written).
    Cursor(String),
    /// The replay id of this topic (a batch of its change events was applied).
    ReplayId(String),
    /// A page of the calls to re-match was read (a read, not a write).
    RematchListing,
    /// The call logger's Salesforce work is done: fired just before it writes its
    /// final outcomes (whether or not that write then lands).
    OutcomesAboutToBeWritten,
    /// Final outcomes of calls were written together (the call logger recorded them).
    OutcomesWritten,
}

/// Crashes on a chosen write: the n-th cursor save (after the page it follows was
/// written), or the n-th final call-outcome save (after the Salesforce write).
#[derive(Clone)]
pub struct FaultyStore {
    pub inner: DynamoStore,
    cursor_writes_until_crash: Arc<AtomicUsize>,
    outcome_writes_until_crash: Arc<AtomicUsize>,
    outcome_writes_until_death: Arc<AtomicUsize>,
    hooks: Arc<Mutex<Vec<(After, Hook)>>>,
}

impl FaultyStore {
    pub fn new(inner: DynamoStore) -> Self {
        Self {
            inner,
            cursor_writes_until_crash: Arc::new(AtomicUsize::new(0)),
            outcome_writes_until_crash: Arc::new(AtomicUsize::new(0)),
            outcome_writes_until_death: Arc::new(AtomicUsize::new(0)),
            hooks: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs `action` once, right after the next write of `after` lands.
    pub fn after<F, Fut>(&self, after: After, action: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: Hook = Box::new(move || Box::pin(action()));
        self.hooks.lock().unwrap().push((after, hook));
    }

    async fn fire(&self, what: After) {
        let hook = {
            let mut hooks = self.hooks.lock().unwrap();
            hooks
                .iter()
                .position(|(a, _)| *a == what)
                .map(|i| hooks.remove(i).1)
        };
        if let Some(hook) = hook {
            hook().await;
        }
    }

    /// The `n`-th cursor write from now fails (1: the next one).
    pub fn crash_on_cursor_write(&self, n: usize) {
        self.cursor_writes_until_crash.store(n, Ordering::SeqCst);
    }

    /// The `n`-th final call-outcome write from now fails.
    pub fn crash_on_outcome_write(&self, n: usize) {
        self.outcome_writes_until_crash.store(n, Ordering::SeqCst);
    }

    /// The `n`-th final call-outcome write from now lands, and the process dies
    /// right after it: the caller never learns it landed, and does nothing more.
    pub fn die_after_outcome_write(&self, n: usize) {
        self.outcome_writes_until_death.store(n, Ordering::SeqCst);
    }

    /// Counts a write down; true when this one must crash.
    fn crashes(counter: &AtomicUsize) -> bool {
        counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) == Ok(1)
    }
}

fn crash() -> StoreError {
    StoreError::Unavailable("injected crash: the process died before this write".into())
}

impl StoreRequests for FaultyStore {
    fn requests_by_operation(&self) -> std::collections::BTreeMap<String, u64> {
        self.inner.requests_by_operation()
    }
}

impl ConnectionStore for FaultyStore {
    async fn get_connection(&self, t: &TenantId) -> StoreResult<Option<Connection>> {
        self.inner.get_connection(t).await
    }
    async fn save_connection(&self, c: &Connection) -> StoreResult<Connection> {
        self.inner.save_connection(c).await
    }
    async fn tenants_with_status(
        &self,
        s: ConnectionStatus,
        p: Option<String>,
    ) -> StoreResult<Page<TenantId>> {
        self.inner.tenants_with_status(s, p).await
    }
    async fn append_audit(&self, t: &TenantId, e: &AuditEntry) -> StoreResult<()> {
        self.inner.append_audit(t, e).await
    }
    async fn audit_trail(&self, t: &TenantId) -> StoreResult<Vec<AuditEntry>> {
        self.inner.audit_trail(t).await
    }
}

impl UserMappingStore for FaultyStore {
    async fn put_mapping(&self, t: &TenantId, m: &UserMapping) -> StoreResult<bool> {
        self.inner.put_mapping(t, m).await
    }
    async fn get_mapping(&self, t: &TenantId, id: &str) -> StoreResult<Option<UserMapping>> {
        self.inner.get_mapping(t, id).await
    }
    async fn get_mappings(&self, t: &TenantId, ids: &[String]) -> StoreResult<Vec<UserMapping>> {
        self.inner.get_mappings(t, ids).await
    }
    async fn list_mappings(&self, t: &TenantId) -> StoreResult<Vec<UserMapping>> {
        self.inner.list_mappings(t).await
    }
    async fn delete_mapping(&self, t: &TenantId, id: &str) -> StoreResult<bool> {
        self.inner.delete_mapping(t, id).await
    }
    async fn replace_modjo_users(&self, t: &TenantId, u: &[ModjoUser]) -> StoreResult<()> {
        self.inner.replace_modjo_users(t, u).await
    }
    async fn modjo_users(&self, t: &TenantId) -> StoreResult<Vec<ModjoUser>> {
        self.inner.modjo_users(t).await
    }
}

impl CursorStore for FaultyStore {
    async fn get_cursor(&self, t: &TenantId, o: &str) -> StoreResult<Option<SyncCursor>> {
        self.inner.get_cursor(t, o).await
    }
    async fn put_cursor(&self, t: &TenantId, c: &SyncCursor) -> StoreResult<()> {
        if Self::crashes(&self.cursor_writes_until_crash) {
            return Err(crash());
        }
        self.inner.put_cursor(t, c).await?;
        self.fire(After::Cursor(c.object.clone())).await;
        Ok(())
    }
    async fn get_replay_id(&self, t: &TenantId, topic: &str) -> StoreResult<Option<Vec<u8>>> {
        self.inner.get_replay_id(t, topic).await
    }
    async fn put_replay_id(&self, t: &TenantId, topic: &str, id: &[u8]) -> StoreResult<()> {
        self.inner.put_replay_id(t, topic, id).await?;
        self.fire(After::ReplayId(topic.to_string())).await;
        Ok(())
    }
    async fn put_sync_status(&self, t: &TenantId, s: &SyncStatus) -> StoreResult<()> {
        self.inner.put_sync_status(t, s).await
    }
    async fn sync_statuses(&self, t: &TenantId) -> StoreResult<Vec<SyncStatus>> {
        self.inner.sync_statuses(t).await
    }
}

impl LeaseStore for FaultyStore {
    async fn acquire_lease(
        &self,
        t: &TenantId,
        n: &str,
        h: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Lease>> {
        self.inner.acquire_lease(t, n, h, ttl, now).await
    }
    async fn release_lease(&self, t: &TenantId, n: &str, h: &str) -> StoreResult<bool> {
        self.inner.release_lease(t, n, h).await
    }
}

impl RecordStore for FaultyStore {
    async fn get_records(&self, t: &TenantId, ids: &[String]) -> StoreResult<Vec<CrmRecord>> {
        self.inner.get_records(t, ids).await
    }
    async fn apply_record_changes(&self, t: &TenantId, c: &[RecordChange]) -> StoreResult<()> {
        self.inner.apply_record_changes(t, c).await
    }
    async fn query_index(&self, t: &TenantId, k: &IndexKey) -> StoreResult<Vec<IndexEntry>> {
        self.inner.query_index(t, k).await
    }
    async fn query_index_many(
        &self,
        t: &TenantId,
        k: &[IndexKey],
    ) -> StoreResult<std::collections::HashMap<IndexKey, Vec<IndexEntry>>> {
        self.inner.query_index_many(t, k).await
    }
}

impl CallStore for FaultyStore {
    async fn get_outcome(&self, t: &TenantId, c: &str) -> StoreResult<Option<CallOutcome>> {
        self.inner.get_outcome(t, c).await
    }
    async fn get_outcomes(&self, t: &TenantId, c: &[String]) -> StoreResult<Vec<CallOutcome>> {
        self.inner.get_outcomes(t, c).await
    }
    async fn save_outcome(&self, t: &TenantId, o: &CallOutcome) -> StoreResult<CallOutcome> {
        if o.state != CallState::InProgress && Self::crashes(&self.outcome_writes_until_crash) {
            return Err(crash());
        }
        self.inner.save_outcome(t, o).await
    }
    /// A crash here loses the whole write (the process died before it).
    async fn save_outcomes(
        &self,
        t: &TenantId,
        o: &[CallOutcome],
    ) -> StoreResult<Vec<StoreResult<CallOutcome>>> {
        let settles = o.iter().any(|o| o.state != CallState::InProgress);
        if settles {
            self.fire(After::OutcomesAboutToBeWritten).await;
        }
        if settles && Self::crashes(&self.outcome_writes_until_crash) {
            return Err(crash());
        }
        let written = self.inner.save_outcomes(t, o).await;
        if settles {
            self.fire(After::OutcomesWritten).await;
        }
        if settles && Self::crashes(&self.outcome_writes_until_death) {
            return Err(crash());
        }
        written
    }
    async fn claim_calls(
        &self,
        t: &TenantId,
        c: &[CallClaim],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<StoreResult<ClaimResult>>> {
        self.inner.claim_calls(t, c, now).await
    }
    async fn recent_calls(
        &self,
        t: &TenantId,
        s: Option<CallState>,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        self.inner.recent_calls(t, s, limit, cursor).await
    }
    async fn calls_linked_to(
        &self,
        t: &TenantId,
        ids: &[String],
        cursor: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        self.inner.calls_linked_to(t, ids, cursor).await
    }
    async fn calls_needing_attention(
        &self,
        t: &TenantId,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        self.inner.calls_needing_attention(t, limit, cursor).await
    }
    async fn rematch_calls(
        &self,
        t: &TenantId,
        since: DateTime<Utc>,
        limit: usize,
        p: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        let page = self.inner.rematch_calls(t, since, limit, p).await;
        self.fire(After::RematchListing).await;
        page
    }
    async fn waiting_calls(
        &self,
        t: &TenantId,
        p: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        self.inner.waiting_calls(t, p).await
    }
    async fn pending_comment_calls(
        &self,
        t: &TenantId,
        p: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        self.inner.pending_comment_calls(t, p).await
    }
}

impl CommentStore for FaultyStore {
    async fn upsert_comment(&self, t: &TenantId, c: &StoredComment) -> StoreResult<bool> {
        self.inner.upsert_comment(t, c).await
    }
    async fn comments_for_call(&self, t: &TenantId, c: &str) -> StoreResult<Vec<StoredComment>> {
        self.inner.comments_for_call(t, c).await
    }
    async fn comment_versions(
        &self,
        t: &TenantId,
        c: &[String],
    ) -> StoreResult<std::collections::HashMap<String, u64>> {
        self.inner.comment_versions(t, c).await
    }
}

impl OAuthStateStore for FaultyStore {
    async fn put_pending(&self, t: &TenantId, p: &PendingAuthorization) -> StoreResult<()> {
        self.inner.put_pending(t, p).await
    }
    async fn take_pending(
        &self,
        t: &TenantId,
        n: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<PendingAuthorization>> {
        self.inner.take_pending(t, n, now).await
    }
}

impl shared::erase::ErasureStore for FaultyStore {
    async fn erased_ids(&self, t: &TenantId) -> StoreResult<std::collections::HashSet<String>> {
        self.inner.erased_ids(t).await
    }
    async fn add_erased_ids(&self, t: &TenantId, ids: &[String]) -> StoreResult<()> {
        self.inner.add_erased_ids(t, ids).await
    }
    async fn purge_step(
        &self,
        t: &TenantId,
        max_requests: usize,
    ) -> StoreResult<shared::erase::PurgeProgress> {
        self.inner.purge_step(t, max_requests).await
    }
}
