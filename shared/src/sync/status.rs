//! What a pass reports: each object's sync status, and pauses for the API
//! budget told in words an admin understands.

use super::*;

impl<'a, S: SyncStore, C: SalesforceSessions, Q: JobQueue> Syncer<'a, S, C, Q> {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn save_status(
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
        self.store.put_sync_status(tenant, &status).await
    }

    pub(super) async fn record_pause(
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
        self.store.put_sync_status(tenant, &status).await
    }
}

/// What the status says while the sync waits for API budget.
pub(super) fn pause_message(used_percent: u8, threshold: u8) -> String {
    format!(
        "paused: the org has used {used_percent}% of its daily API allocation (sync pauses at {threshold}%)"
    )
}
